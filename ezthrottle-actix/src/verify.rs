//! [`ActixVerifyWebhook`]: webhook signature verification as actix-web middleware.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage as _};
use ezthrottle_core::webhook::Verifier;
use ezthrottle_tower::webhook::engine::{check_signature, verify_body};
use ezthrottle_tower::webhook::{SIGNATURE_HEADER, WebhookRejection};

use super::{body_rejection, not_configured, registered_verifier, rejection_response};

/// actix-web middleware verifying `X-EZThrottle-Signature` before the inner service runs:
/// the actix counterpart of [`VerifyWebhookLayer`](ezthrottle_tower::webhook::VerifyWebhookLayer).
///
/// The signature header is checked first (present, well formed, its timestamp within the
/// tolerance): a request failing that is refused before a single body byte is read. Then
/// the body is buffered (within the app's `web::PayloadConfig` limit, else `413`) and
/// verified as raw bytes; a verified request goes on with the same bytes and a
/// [`VerifiedRequest`](ezthrottle_tower::webhook::VerifiedRequest) extension bound to them
/// (the [`VerifiedDelivery`](super::VerifiedDelivery) extractor then does not verify those
/// bytes again; a body swapped in between is verified again, and refused unless signed). Refusals never reach the inner service and get the
/// statuses of [`WebhookRejection`] (400, 401, 413).
///
/// Wrap it *around* (after, in actix's `wrap` order) [`ActixIdempotency`](super::ActixIdempotency),
/// so an unverified request can never be answered from the idempotency store:
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use ezthrottle_actix::{ActixIdempotency, ActixVerifyWebhook, VerifiedDelivery};
/// use ezthrottle_core::webhook::Verifier;
///
/// async fn webhook(delivery: VerifiedDelivery) -> HttpResponse {
///     HttpResponse::Ok().body(delivery.into_inner().job_id)
/// }
///
/// let idempotency = ActixIdempotency::memory(); // made once: every worker shares the store
/// let app = App::new()
///     .app_data(Verifier::new("whsec_current_0123")?)
///     .route("/webhook", web::post().to(webhook))
///     .wrap(idempotency.clone())
///     .wrap(ActixVerifyWebhook::new()); // the last `wrap` runs first
/// # let _ = app;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ActixVerifyWebhook {
    verifier: Option<Verifier>,
}

impl ActixVerifyWebhook {
    /// Verifies with the [`Verifier`] registered in the app (`App::app_data`, or as
    /// `web::Data<Verifier>`); without one, requests get `500` (logged).
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies with `verifier`, whatever the app registered.
    pub fn with_verifier(verifier: Verifier) -> Self {
        Self { verifier: Some(verifier) }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ActixVerifyWebhook
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = VerifyWebhookMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(VerifyWebhookMiddleware { service: Rc::new(service), verifier: self.verifier.clone() }))
    }
}

/// The service of [`ActixVerifyWebhook`] (made by actix when the app starts).
pub struct VerifyWebhookMiddleware<S> {
    service: Rc<S>,
    verifier: Option<Verifier>,
}

impl<S> std::fmt::Debug for VerifyWebhookMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyWebhookMiddleware").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for VerifyWebhookMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let verifier = self.verifier.clone().or_else(|| registered_verifier(req.request()));
        Box::pin(async move {
            let verified = async {
                let verifier = verifier.ok_or_else(not_configured)?;
                // Not a body byte is read for a request without a usable signature.
                let signature = req.headers().get(SIGNATURE_HEADER).map(|value| value.as_bytes().to_vec());
                check_signature(&verifier, signature.as_deref())?;
                let body = req.extract::<Bytes>().await.map_err(body_rejection)?;
                let verified = verify_body(&verifier, body.clone(), signature.as_deref())?;
                // The next middleware and the handler read the same bytes again.
                req.set_payload(Payload::from(body));
                Ok::<_, WebhookRejection>(verified)
            };
            match verified.await {
                Ok(verified) => {
                    req.extensions_mut().insert(verified);
                    Ok(service.call(req).await?.map_into_left_body())
                }
                Err(rejection) => Ok(req.into_response(rejection_response(&rejection)).map_into_right_body()),
            }
        })
    }
}
