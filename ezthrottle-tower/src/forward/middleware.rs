//! [`ForwardMiddleware`]: the same forwarding for `reqwest-middleware` clients.

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

use super::decision::{
    Head, HeaderBlob, NotCaptured, Plan, Submission, accepted, call_span, mark_forwarded, maybe_forwarded,
    not_forwarded, record_outcome, submission_failed,
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
/// The request is kept with `Request::try_clone` before it is sent (a cheap clone for a
/// buffered body). A streaming body cannot be cloned: that request is sent untouched and,
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

#[async_trait::async_trait]
impl<P> Middleware for ForwardMiddleware<P>
where
    P: ForwardPolicy<(), reqwest_middleware::Error> + Send + Sync + 'static,
{
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        // Only the calls awaited here (all boxed) run in the span, and the events name it
        // as their parent: wrapping this whole future in it would move the future, which
        // costs more on the pass-through path than everything else here.
        let span = call_span(request.method(), request.url().host_str());
        let answer = 'call: {
            let settings = &self.config.settings;
            let kept = keep(&mut request, settings.max_replay_bytes);
            let host = settings.breaker.as_ref().and_then(|_| lane_key_of_url(request.url()));
            let (mut probe, ahead) = match settings.plan(host.as_deref()) {
                Plan::Call { probe } => (probe, None),
                Plan::ForwardFirst { reason, retry_at } => (None, Some((reason, retry_at))),
            };
            let mut failed: Option<ForwardFailed> = None;
            match (ahead, &kept) {
                (Some((reason, retry_at)), Ok(copy)) => {
                    // Boxed: the pass-through path's own future stays small.
                    match Box::pin(self.forward_first(copy, &request, reason, retry_at, &span)).await {
                        Ok(answer) => break 'call Ok(answer),
                        Err(why) => failed = Some(why),
                    }
                }
                (Some((reason, _)), Err(not_captured)) => {
                    tracing::debug!(target: TARGET_FORWARD, parent: &span, url = %RedactedUrl::new(request.url().as_str()), %reason, "{not_captured}: calling the target instead of forwarding");
                }
                (None, _) => {}
            }

            let outcome = next.run(request, extensions).instrument(span.clone()).await;
            let (forwardable, outcome) = decide(&self.config.policy, outcome);
            let retry_at = match &outcome {
                Ok(response) if forwardable => settings.retry_at_of(response.headers()),
                _ => None,
            };
            settings.record(host.as_deref(), forwardable, retry_at, probe.as_mut());
            drop(probe);
            if !forwardable {
                break 'call outcome;
            }
            if let Some(failed) = failed {
                break 'call not_forwarded_outcome(outcome, failed);
            }
            let reason = match &outcome {
                Ok(response) => ForwardReason::Status(response.status()),
                Err(_) => ForwardReason::TransportError,
            };
            let copy = match kept {
                Ok(copy) => copy,
                Err(not_captured) => {
                    tracing::debug!(target: TARGET_FORWARD, parent: &span, %reason, "not forwarded: {not_captured}");
                    break 'call not_forwarded_outcome(outcome, not_forwarded(not_captured.to_string()));
                }
            };
            let failure = match &outcome {
                Ok(response) => CallFailure::of_status(response.status()),
                Err(error) => failure_of_error(error, &settings.not_sent),
            };
            if let Some(refused) = settings.replay_refused_for(copy.request.method(), &copy.headers, failure, reason) {
                break 'call not_forwarded_outcome(outcome, refused);
            }
            // Boxed, the outcome moved in: the pass-through path's own future stays small.
            Box::pin(self.submit_outcome(copy, outcome, reason, retry_at, &span)).await
        };
        record_outcome(&span, answer.as_ref().ok().map(Response::extensions));
        answer
    }
}

impl<P> ForwardMiddleware<P> {
    /// Forwards a call whose outcome the policy forwards: the receipt's answer (or the
    /// original one with its [`ForwardedJob`](crate::ForwardedJob)), or the original
    /// outcome with why it was not forwarded.
    async fn submit_outcome(
        &self,
        copy: Box<Kept>,
        outcome: reqwest_middleware::Result<Response>,
        reason: ForwardReason,
        retry_at: Option<SystemTime>,
        span: &tracing::Span,
    ) -> reqwest_middleware::Result<Response> {
        let settings = &self.config.settings;
        let submitted = match submission(settings, &copy, retry_at) {
            Ok(submission) => submission.instrument(span.clone()).await.map_err(|error| submission_failed(&error)),
            Err(not_built) => Err(not_built),
        };
        match submitted {
            Ok(receipt) => match outcome {
                Ok(mut response) if settings.respond_with == ForwardResponse::Original => {
                    let job = mark_forwarded(response.headers_mut(), receipt, reason);
                    response.extensions_mut().insert(job);
                    Ok(response)
                }
                _ => Ok(accepted_response(receipt, reason, copy.request.url())),
            },
            Err(not_submitted) => {
                tracing::warn!(target: TARGET_FORWARD, parent: span, url = %RedactedUrl::new(copy.request.url().as_str()), %reason, "{not_submitted}; returning the original answer");
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
        let url = || RedactedUrl::new(copy.request.url().as_str()).to_string();
        let submission = submission(settings, copy, retry_at).inspect_err(|not_built| {
            tracing::warn!(target: TARGET_FORWARD, parent: span, url = url(), %reason, "{not_built}; calling the target instead");
        })?;
        match submission.instrument(span.clone()).await {
            Ok(receipt) => Ok(accepted_response(receipt, reason, copy.request.url())),
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

/// What the job is built from if the call is forwarded.
struct Kept {
    /// A clone of the request, without its headers.
    request: Request,
    /// The headers, copied into one buffer (cheaper than cloning the map).
    headers: HeaderBlob,
}

/// A copy of the request for the job, if its body can be kept (a cheap clone of a buffered
/// body). Boxed: it keeps the middleware's own future (boxed by `async_trait`) small.
fn keep(request: &mut Request, cap: usize) -> Result<Box<Kept>, NotCaptured> {
    if let Some(bytes) = request.body().map(|body| body.as_bytes()) {
        match bytes {
            None => return Err(NotCaptured::NotCloneable),
            Some(bytes) if bytes.len() > cap => return Err(NotCaptured::TooLarge { upper: bytes.len() as u64, cap }),
            Some(_) => {}
        }
    }
    // Clone the request without its headers, which are copied into a blob instead.
    let headers = std::mem::take(request.headers_mut());
    let copy = request.try_clone();
    let kept = copy.map(|copy| Box::new(Kept { request: copy, headers: HeaderBlob::of(&headers) }));
    *request.headers_mut() = headers;
    kept.ok_or(NotCaptured::NotCloneable)
}

/// Builds the job from the kept request and starts its submission (boxed, so the
/// middleware's own future stays small on the pass-through path).
fn submission(settings: &Settings, kept: &Kept, retry_at: Option<SystemTime>) -> Result<Submission, ForwardFailed> {
    let copy = &kept.request;
    let uri = copy
        .url()
        .as_str()
        .parse()
        .map_err(|err| not_forwarded(format!("the URL {} is not a valid URI: {err}", copy.url())))?;
    let head = Head { method: copy.method().clone(), uri, version: copy.version(), headers: kept.headers.clone() };
    let body = copy.body().and_then(|body| body.as_bytes()).map(Bytes::copy_from_slice).unwrap_or_default();
    let job = settings.job(&head, &body, retry_at)?;
    Ok(settings.submit(job))
}

/// Applies the policy to a reqwest outcome, through a view of the response's head (its
/// headers are moved into the view and back: nothing is copied).
fn decide<P>(policy: &P, outcome: reqwest_middleware::Result<Response>) -> (bool, reqwest_middleware::Result<Response>)
where
    P: ForwardPolicy<(), reqwest_middleware::Error>,
{
    match outcome {
        Ok(mut response) => {
            let mut view = http::Response::new(());
            *view.status_mut() = response.status();
            *view.version_mut() = response.version();
            std::mem::swap(view.headers_mut(), response.headers_mut());
            let view: Result<http::Response<()>, reqwest_middleware::Error> = Ok(view);
            let forward = policy.should_forward(&view);
            if let Ok(mut view) = view {
                std::mem::swap(view.headers_mut(), response.headers_mut());
            }
            (forward, Ok(response))
        }
        Err(error) => {
            let view: Result<http::Response<()>, reqwest_middleware::Error> = Err(error);
            let forward = policy.should_forward(&view);
            match view {
                Err(error) => (forward, Err(error)),
                Ok(_) => unreachable!("the view was built from an error"),
            }
        }
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
