//! [`ForwardMiddleware`]: the same forwarding for `reqwest-middleware` clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use ezthrottle_core::protocol::lane_key_of_url;
use ezthrottle_core::protocol::redact::RedactedUrl;
use ezthrottle_core::telemetry::TARGET_FORWARD;
use ezthrottle_core::{EZThrottle, SubmitReceipt};
use http::Extensions;
use reqwest::{Request, Response, ResponseBuilderExt, Url};
use reqwest_middleware::{Middleware, Next};
use tracing::Instrument as _;

use super::capture::{Capture, Kept};
use super::decision::{
    BreakerCall, Submission, accepted, call_span, in_span, mark_forwarded, maybe_forwarded, record_outcome,
    submission_failed,
};
use super::extension::{ForwardFailed, ForwardReason, ForwardResponse};
use super::layer::ForwardLayer;
use super::policy::{DefaultForwardPolicy, ForwardPolicy};
use super::replay::{failure_of_error, maybe_accepted};
use super::settings::{Config, Settings, config_handle_impls, policy_setters, settings_setters};
use ezthrottle_core::replay::CallFailure;

/// A [`reqwest_middleware::Middleware`] that hands failing calls to EZThrottle, with the
/// same options, decisions and answers as [`ForwardLayer`].
///
/// The request is kept before it is sent: its URL, headers and a small body copied into one
/// buffer, a larger buffered body shared. A streaming body cannot be cloned: that request is sent untouched and,
/// if it fails, its original answer is returned (with a `tracing` event), never an
/// upfront error.
///
/// A forwarded call answers a synthesized `reqwest::Response`: `202 Accepted`, the JSON
/// receipt, `x-ezthrottle-job-id`, `x-ezthrottle-forwarded: true` and the
/// [`ForwardedJob`](crate::ForwardedJob) extension (`response.extensions()`); its `url()`
/// is the original request's (or, with `respond_with(ForwardResponse::Original)`, the
/// target's own response with the extension). If the submission fails, the original
/// response is returned with a [`ForwardFailed`](crate::ForwardFailed) extension, or the
/// original error. The replay rule and the open-circuit behaviour are the layer's (see
/// [Which calls forward](crate::forward#which-calls-forward)); a `reqwest::Error` from
/// connecting is "not sent".
///
/// The policy is a `ForwardPolicy<(), reqwest_middleware::Error>`: it sees the response's
/// status, version and headers with an empty body.
///
/// ```
/// use ezthrottle_core::{EZThrottle, Webhook};
/// use ezthrottle_tower::ForwardMiddleware;
///
/// # fn main() -> Result<(), ezthrottle_core::Error> {
/// let ezthrottle = EZThrottle::builder().direct("http://127.0.0.1:8080").build()?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ForwardMiddleware::new(ezthrottle).with_template(|job| job.webhook(Webhook::new("https://app.example.com/hook"))))
///     .build();
/// # let _ = client; Ok(()) }
/// ```
pub struct ForwardMiddleware<P = DefaultForwardPolicy> {
    config: Arc<Config<P>>,
}

impl ForwardMiddleware {
    /// Forwards to `client` with the default policy and settings (as [`ForwardLayer::new`]).
    pub fn new(client: EZThrottle) -> Self {
        ForwardLayer::new(client).into()
    }
}

impl<P> From<ForwardLayer<P>> for ForwardMiddleware<P> {
    /// The middleware with the layer's settings, policy and circuit breaker (shared).
    fn from(layer: ForwardLayer<P>) -> Self {
        Self { config: layer.config }
    }
}

impl<P: Clone> ForwardMiddleware<P> {
    settings_setters!();
}

policy_setters!(ForwardMiddleware);
config_handle_impls!(ForwardMiddleware);

/// `reqwest_middleware`'s boxed future (the type of `Middleware::handle` and `Next::run`).
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a call keeps while the target answers.
struct Pending {
    /// The request kept, or why not, or why forwarding before the call did not answer
    /// (the circuit was open, or PERFORMANCE).
    capture: Capture,
    circuit: Option<Box<BreakerCall>>,
    /// The call's span; `None` when nothing listens to it.
    span: Option<tracing::Span>,
}

impl Pending {
    /// The call's span, disabled when there is none: the parent of the call's events.
    fn span(&self) -> &tracing::Span {
        static NONE: tracing::Span = tracing::Span::none();
        self.span.as_ref().unwrap_or(&NONE)
    }
}

// Written out rather than with `#[async_trait]`: the work before the call runs here, not
// in the future boxed on every call, and the request is handed to `next` before that
// future is made, so the future holds no request (an async fn would hold its arguments
// twice). The box of a future past 1 KiB leaves the allocator's fast path: it was the
// largest cost of the pass-through path.
impl<P> Middleware for ForwardMiddleware<P>
where
    P: ForwardPolicy<(), reqwest_middleware::Error> + Send + Sync + 'static,
{
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        mut request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> BoxFuture<'async_trait, reqwest_middleware::Result<Response>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let span = call_span(request.method(), || request.url().host_str());
        let settings = &self.config.settings;
        let capture = Kept::of(&mut request, settings.max_replay_bytes).map_or_else(Capture::Missing, Capture::Kept);
        let (circuit, first) = settings.route(|| lane_key_of_url(request.url()));
        let pending = Pending { capture, circuit, span };
        match first {
            None => {
                let call = in_span(pending.span.as_ref(), || next.run(request, extensions));
                Box::pin(self.after_call(call, pending))
            }
            Some((reason, retry_at)) => {
                Box::pin(self.forward_first_then_call(request, extensions, next, pending, reason, retry_at))
            }
        }
    }
}

impl<P> ForwardMiddleware<P>
where
    P: ForwardPolicy<(), reqwest_middleware::Error> + Send + Sync + 'static,
{
    /// Forwards before calling the target (the circuit is open, or PERFORMANCE); calls it
    /// if that does not answer.
    async fn forward_first_then_call(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        mut pending: Pending,
        reason: ForwardReason,
        retry_at: Option<SystemTime>,
    ) -> reqwest_middleware::Result<Response> {
        match &pending.capture {
            Capture::Kept(copy) => match self.forward_first(copy, &request, reason, retry_at, pending.span()).await {
                Ok(answer) => {
                    record_outcome(pending.span.as_ref(), Some(answer.extensions()));
                    return Ok(answer);
                }
                Err(why) => pending.capture = Capture::Tried(Box::new(why)),
            },
            // Made only below, when a forward first fails.
            Capture::Tried(_) => {}
            Capture::Missing(not_captured) => {
                tracing::debug!(target: TARGET_FORWARD, parent: pending.span(), url = %RedactedUrl::new(request.url().as_str()), %reason, "{not_captured}: calling the target instead of forwarding");
            }
        }
        let call = in_span(pending.span.as_ref(), || next.run(request, extensions));
        self.after_call(call, pending).await
    }

    /// Awaits the target's answer and forwards it if the policy says so: the answer.
    ///
    /// An `async` block, not an `async fn`: the fn's future would hold `pending` twice
    /// (the argument, and the local it is moved into).
    #[allow(clippy::manual_async_fn, reason = "an async fn's future holds its arguments twice")]
    fn after_call<'a>(
        &'a self,
        call: BoxFuture<'a, reqwest_middleware::Result<Response>>,
        mut pending: Pending,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'a {
        async move {
            let settings = &self.config.settings;
            // No span is attached when nothing listens: `Instrumented` would enter a
            // disabled one at every poll and at drop, for nothing.
            let mut outcome = match &pending.span {
                None => call.await,
                Some(span) => call.instrument(span.clone()).await,
            };
            let answer = 'call: {
                // The response is looked at where it is: moving it costs more than the look.
                let forwardable = match outcome {
                    Ok(ref mut response) => forwards_response(&self.config.policy, response),
                    Err(error) => {
                        let (forward, error) = forwards_error(&self.config.policy, error);
                        outcome = Err(error);
                        forward
                    }
                };
                let retry_at = match &outcome {
                    Ok(response) if forwardable => settings.retry_at_of(response.headers()),
                    _ => None,
                };
                settings.record(pending.circuit.as_deref_mut(), forwardable, retry_at);
                if !forwardable {
                    break 'call outcome;
                }
                let reason = match &outcome {
                    Ok(response) => ForwardReason::Status(response.status()),
                    Err(_) => ForwardReason::TransportError,
                };
                let failure = match &outcome {
                    Ok(response) => CallFailure::of_status(response.status()),
                    Err(error) => failure_of_error(error, &settings.not_sent),
                };
                let copy = match settings.to_forward(&pending.capture, failure, reason, pending.span()) {
                    Ok(copy) => copy,
                    Err(not_forwarded) => break 'call not_forwarded_outcome(outcome, not_forwarded),
                };
                // Boxed, the outcome moved in: the pass-through path's own future stays small.
                Box::pin(self.submit_outcome(copy, outcome, reason, retry_at, pending.span())).await
            };
            record_outcome(pending.span.as_ref(), answer.as_ref().ok().map(Response::extensions));
            answer
        }
    }
}

impl<P> ForwardMiddleware<P> {
    /// Forwards a call whose outcome the policy forwards: the receipt's answer (or the
    /// original one with its [`ForwardedJob`](crate::ForwardedJob)), or the original
    /// outcome with why it was not forwarded.
    async fn submit_outcome(
        &self,
        copy: &Kept,
        outcome: reqwest_middleware::Result<Response>,
        reason: ForwardReason,
        retry_at: Option<SystemTime>,
        span: &tracing::Span,
    ) -> reqwest_middleware::Result<Response> {
        let settings = &self.config.settings;
        let submitted = match submission(settings, copy, retry_at) {
            Ok((submission, url)) => submission
                .instrument(span.clone())
                .await
                .map(|receipt| (receipt, url))
                .map_err(|error| submission_failed(&error)),
            Err(not_built) => Err(not_built),
        };
        match submitted {
            Ok((receipt, url)) => match outcome {
                Ok(mut response) if settings.respond_with == ForwardResponse::Original => {
                    let job = mark_forwarded(response.headers_mut(), receipt, reason);
                    response.extensions_mut().insert(job);
                    Ok(response)
                }
                _ => Ok(accepted_response(receipt, reason, &url)),
            },
            Err(not_submitted) => {
                tracing::warn!(target: TARGET_FORWARD, parent: span, url = %RedactedUrl::new(copy.url()), %reason, "{not_submitted}; returning the original answer");
                not_forwarded_outcome(outcome, not_submitted)
            }
        }
    }

    /// Forwards before calling the target (the circuit is open, or PERFORMANCE): the
    /// answer, or why the target is to be called after all.
    async fn forward_first(
        &self,
        copy: &Kept,
        request: &Request,
        reason: ForwardReason,
        retry_at: Option<SystemTime>,
        span: &tracing::Span,
    ) -> Result<Response, ForwardFailed> {
        let settings = &self.config.settings;
        let url = || RedactedUrl::new(copy.url()).to_string();
        let (submission, _) = submission(settings, copy, retry_at).inspect_err(|not_built| {
            tracing::warn!(target: TARGET_FORWARD, parent: span, url = url(), %reason, "{not_built}; calling the target instead");
        })?;
        match submission.instrument(span.clone()).await {
            Ok(receipt) => Ok(accepted_response(receipt, reason, request.url())),
            Err(error) if !settings.may_call_after(&error, request.method(), request.headers()) => {
                // EZThrottle may run the job: calling the target could run the request twice.
                tracing::warn!(target: TARGET_FORWARD, parent: span, url = url(), %reason, %error, "EZThrottle may have accepted the job; not calling the target");
                Ok(with_url(maybe_forwarded(maybe_accepted(&error), |bytes| bytes), request.url()))
            }
            Err(error) => {
                tracing::warn!(target: TARGET_FORWARD, parent: span, url = url(), %reason, %error, "forwarding to EZThrottle failed; calling the target instead");
                Err(submission_failed(&error))
            }
        }
    }
}

/// Builds the job from the kept request and starts its submission (boxed, so the
/// middleware's own future stays small on the pass-through path), with the request's URL
/// for the answer.
fn submission(
    settings: &Settings,
    kept: &Kept,
    retry_at: Option<SystemTime>,
) -> Result<(Submission, Url), ForwardFailed> {
    let url = kept.parsed_url()?;
    let job = settings.job(kept.head(), kept.body(), retry_at)?;
    Ok((settings.submit(job), url))
}

/// Applies the policy to a reqwest response, through a view of its head: its headers are
/// moved into the view and back (nothing is copied, the response stays where it is).
fn forwards_response<P>(policy: &P, response: &mut Response) -> bool
where
    P: ForwardPolicy<(), reqwest_middleware::Error>,
{
    let mut view = http::Response::new(());
    *view.status_mut() = response.status();
    *view.version_mut() = response.version();
    std::mem::swap(view.headers_mut(), response.headers_mut());
    let view: Result<http::Response<()>, reqwest_middleware::Error> = Ok(view);
    let forward = policy.should_forward(&view);
    if let Ok(mut view) = view {
        std::mem::swap(view.headers_mut(), response.headers_mut());
    }
    forward
}

/// Applies the policy to a reqwest error, moved into the policy's view and back.
fn forwards_error<P>(policy: &P, error: reqwest_middleware::Error) -> (bool, reqwest_middleware::Error)
where
    P: ForwardPolicy<(), reqwest_middleware::Error>,
{
    let view: Result<http::Response<()>, reqwest_middleware::Error> = Err(error);
    let forward = policy.should_forward(&view);
    match view {
        Err(error) => (forward, error),
        Ok(_) => unreachable!("the view was built from an error"),
    }
}

fn not_forwarded_outcome(
    outcome: reqwest_middleware::Result<Response>,
    failed: ForwardFailed,
) -> reqwest_middleware::Result<Response> {
    match outcome {
        Ok(mut response) => {
            response.extensions_mut().insert(failed);
            Ok(response)
        }
        Err(error) => {
            tracing::warn!(target: TARGET_FORWARD, "returning the original error: {failed}");
            Err(error)
        }
    }
}

/// The synthesized `202 Accepted`, its `url()` the original request's.
fn accepted_response(receipt: SubmitReceipt, reason: ForwardReason, url: &Url) -> Response {
    with_url(accepted(receipt, reason, |bytes| bytes), url)
}

/// A synthesized answer as a `reqwest::Response` whose `url()` is the original request's.
fn with_url(response: http::Response<Bytes>, url: &Url) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Ok(carrier) = http::Response::builder().url(url.clone()).body(()) {
        parts.extensions.extend(carrier.into_parts().0.extensions);
    }
    Response::from(http::Response::from_parts(parts, body))
}
