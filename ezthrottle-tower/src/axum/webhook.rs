//! The [`VerifiedWebhook`] extractor and [`webhook_routes`].

use ::axum::Router;
use ::axum::body::Bytes;
use ::axum::extract::{FromRef, FromRequest, Request, State};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::post;
use ezthrottle_core::inbox::{Inbox, InboxError};
use ezthrottle_core::webhook::Verifier;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::webhook::engine::verify_extracted;
use crate::webhook::{SIGNATURE_HEADER, VerifiedRequest, VerifiedWebhook, WebhookRejection};

impl<S, T> FromRequest<S> for VerifiedWebhook<T>
where
    Verifier: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let signature = request.headers().get(SIGNATURE_HEADER).cloned();
        let already = request.extensions().get::<VerifiedRequest>().cloned();
        let body = async {
            Bytes::from_request(request, state).await.map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    WebhookRejection::PayloadTooLarge
                } else {
                    WebhookRejection::BodyRead(rejection.body_text())
                }
            })
        };
        let signature = signature.as_ref().map(HeaderValue::as_bytes);
        let (verified, body) = verify_extracted(|| Ok(Verifier::from_ref(state)), already, signature, body).await?;
        let payload = crate::webhook::engine::parse(&body)?;
        Ok(Self { payload, verified, body })
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        (self.status(), [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.body_text()).into_response()
    }
}

#[derive(Clone)]
struct RoutesState<I> {
    verifier: Verifier,
    inbox: I,
}

impl<I> FromRef<RoutesState<I>> for Verifier {
    fn from_ref(state: &RoutesState<I>) -> Self {
        state.verifier.clone()
    }
}

/// A router mounting `POST /webhook`: verifies each delivery, records it in `inbox`
/// (where [`Inbox::wait`] and
/// [`EZThrottle::queue_and_wait`](ezthrottle_core::EZThrottle::queue_and_wait) find it)
/// and answers 200.
///
/// `inbox` is any [`Inbox`]: the in-process
/// [`WebhookInbox`](ezthrottle_core::inbox::WebhookInbox) for one instance, the shared
/// `ezthrottle_tower::webhook::RedisInbox` (features `redis`, `webhook`) when several replicas
/// receive and wait.
///
/// A PERFORMANCE job's FRUGAL `on_success` / `on_failure` child comes back in its
/// webhook, to run here: pass a
/// [`WorkflowInbox`](ezthrottle_core::inbox::WorkflowInbox) (it wraps any inbox and holds
/// the client to forward the child with), and each child runs once, however many times
/// and to however many replicas the delivery comes. With another inbox such a delivery is
/// recorded and a warning logged.
///
/// Repeated deliveries of a job are absorbed by the inbox (the stored payload is replaced,
/// waiters resolve once); the answer is 200 for both, with `X-Idempotent-Replay: true` on
/// a repeat. When the inbox refuses the delivery the answer is `413` (payload over the
/// inbox's limit) or `503` with `Retry-After: 1` (its store is unavailable: EZThrottle
/// retries the delivery); the reason is logged at `warn` (target `ezthrottle::webhook`),
/// not sent.
///
/// ```
/// use ezthrottle_core::inbox::WebhookInbox;
/// use ezthrottle_core::webhook::Verifier;
/// use ezthrottle_tower::axum::webhook_routes;
///
/// let inbox = WebhookInbox::new();
/// let app: axum::Router = webhook_routes(Verifier::new("whsec_current_0123")?, inbox.clone());
/// # let _ = app;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn webhook_routes<I>(verifier: Verifier, inbox: I) -> Router
where
    I: Inbox + Clone + 'static,
{
    Router::new().route("/webhook", post(receive::<I>)).with_state(RoutesState { verifier, inbox })
}

async fn receive<I: Inbox + Clone + 'static>(
    State(state): State<RoutesState<I>>,
    delivery: VerifiedWebhook,
) -> Response {
    if !state.inbox.runs_carried_steps()
        && delivery.payload.metadata.contains_key(ezthrottle_core::protocol::LOCAL_STEPS_METADATA_KEY)
    {
        tracing::warn!(
            target: ezthrottle_core::telemetry::TARGET_WEBHOOK, job_id = %delivery.payload.job_id,
            "the delivery carries a FRUGAL child, and this inbox does not run children: wrap it in a WorkflowInbox"
        );
    }
    match Inbox::record(&state.inbox, delivery.payload).await {
        Ok(true) => (StatusCode::OK, "ok").into_response(),
        Ok(false) => (StatusCode::OK, [(crate::REPLAY_HEADER, "true")], "ok").into_response(),
        Err(err @ InboxError::PayloadTooLarge { .. }) => {
            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_WEBHOOK, %err, "webhook delivery refused by the inbox");
            (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response()
        }
        Err(err) => {
            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_WEBHOOK, %err, "webhook delivery not recorded");
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "inbox unavailable").into_response()
        }
    }
}
