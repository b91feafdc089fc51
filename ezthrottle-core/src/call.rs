//! A reqwest call that keeps its request: [`KeepRequest::send_keeping_request`] and its
//! error, [`FailedCall`], which `on_status = [..]` (and
//! [`EZThrottle::run_or_forward_on`](crate::EZThrottle::run_or_forward_on)) can forward as
//! the very request that failed.
//!
//! Why a method of its own: the `reqwest::Error` of `error_for_status()` knows the status
//! and the URL, but neither the method, the headers nor the body. Forwarding it would hand
//! EZThrottle a different request (a bare `GET`), so it is never forwarded.

use std::future::Future;

use http::{HeaderMap, StatusCode};

use crate::forward::{ForwardBuildError, ForwardToEZThrottle};
use crate::protocol::redact::RedactedHeaders;
use crate::replay::CallFailure;
use crate::step::Step;

/// Sending a `reqwest` request while keeping a copy of it, so that a failure can be
/// forwarded to EZThrottle exactly as it was made.
///
/// ```no_run
/// use ezthrottle_core::{FailedCall, KeepRequest};
///
/// # async fn run() -> Result<(), FailedCall> {
/// let response = reqwest::Client::new()
///     .post("https://api.example.com/orders?region=eu")
///     .bearer_auth("sk_live_...")
///     .header("idempotency-key", "order-7")
///     .body(r#"{"sku":"A-1"}"#)
///     .send_keeping_request()
///     .await?; // a 4xx/5xx is an error too, as with `error_for_status()`
/// # let _ = response; Ok(()) }
/// ```
pub trait KeepRequest {
    /// Sends the request; on failure, the error keeps the request: its method, full URL
    /// (query included), end-to-end headers and buffered body.
    ///
    /// A 4xx or 5xx answer is an error, as with `reqwest::Response::error_for_status`.
    /// The request is copied before it is sent (`reqwest::Request::try_clone`); a streaming
    /// body cannot be copied, and such a failure is never forwarded. Headers a
    /// `reqwest::Client` adds itself (`ClientBuilder::default_headers`) are not part of the
    /// request and are not kept: set credentials on the request.
    ///
    /// # Errors
    ///
    /// [`FailedCall`]: the request could not be built or sent, no answer came, or the
    /// answer was a 4xx or 5xx.
    fn send_keeping_request(self) -> impl Future<Output = Result<reqwest::Response, FailedCall>> + Send;
}

impl KeepRequest for reqwest::RequestBuilder {
    fn send_keeping_request(self) -> impl Future<Output = Result<reqwest::Response, FailedCall>> + Send {
        let (client, request) = self.build_split();
        async move {
            let request = request.map_err(FailedCall::from)?;
            let kept = request.try_clone();
            let failed = |source, response_headers| {
                let request = match &kept {
                    Some(kept) => Kept::from_reqwest(kept),
                    None => Kept::Unbuildable(ForwardBuildError::StreamingBody),
                };
                FailedCall::new(request, source, response_headers)
            };
            match client.execute(request).await {
                Ok(response) => match response.error_for_status_ref() {
                    Ok(_) => Ok(response),
                    Err(source) => Err(failed(source, Some(response.headers().clone()))),
                },
                Err(source) => Err(failed(source, None)),
            }
        }
    }
}

/// A reqwest call that failed, with the request that was made (see [`KeepRequest`]).
///
/// `#[auto_forward(on_status = [429, 503])]` on a function returning `Result<T, FailedCall>`
/// (or a boxed error holding one) forwards exactly this request when its status is listed
/// and the [replay rule](crate::replay) allows it: a `POST` without an `Idempotency-Key`
/// that answered 503 may have run, so it is not forwarded (unless the step's policy is
/// [`ReplayPolicy::Always`](crate::ReplayPolicy::Always), set with
/// [`map_step`](Self::map_step)).
///
/// Its `Debug` shows header names without credential values, and never the body.
pub struct FailedCall {
    // Boxed: an error travels by value through `Result`; one pointer keeps that cheap.
    inner: Box<Inner>,
}

struct Inner {
    request: Kept,
    failure: CallFailure,
    response_headers: Option<HeaderMap>,
    source: reqwest::Error,
}

/// What is known of the request that failed.
pub(crate) enum Kept {
    /// The request, as a job can carry it.
    Request(ForwardToEZThrottle),
    /// The request was made, but a job cannot carry it (a streaming or binary body, ...).
    Unbuildable(ForwardBuildError),
    /// Not known: the error came from a bare `reqwest::Error`, or the request could not
    /// even be built.
    Unknown,
}

impl Kept {
    fn from_reqwest(request: &reqwest::Request) -> Self {
        match Step::default().for_reqwest(request) {
            Ok(step) => Self::Request(ForwardToEZThrottle::new(step)),
            Err(error) => Self::Unbuildable(error),
        }
    }
}

impl FailedCall {
    fn new(request: Kept, source: reqwest::Error, response_headers: Option<HeaderMap>) -> Self {
        let failure = match source.status() {
            Some(status) => CallFailure::of_status(status),
            None => CallFailure::of_error(&source),
        };
        Self { inner: Box::new(Inner { request, failure, response_headers, source }) }
    }

    /// The request that failed, as EZThrottle would run it; `None` when it is not known
    /// (the error was converted from a bare `reqwest::Error`) or a job cannot carry it
    /// (a streaming or binary body).
    pub fn request(&self) -> Option<&ForwardToEZThrottle> {
        match &self.inner.request {
            Kept::Request(request) => Some(request),
            Kept::Unbuildable(_) | Kept::Unknown => None,
        }
    }

    /// How far the call got: what the [replay rule](crate::replay) decides on.
    pub fn failure(&self) -> CallFailure {
        self.inner.failure
    }

    /// The status of the answer, when the API answered a 4xx or 5xx.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.source.status()
    }

    /// The headers of that answer (a `Retry-After`, say).
    pub fn response_headers(&self) -> Option<&HeaderMap> {
        self.inner.response_headers.as_ref()
    }

    /// The reqwest error (also the [`source`](std::error::Error::source)).
    pub fn reqwest_error(&self) -> &reqwest::Error {
        &self.inner.source
    }

    /// The reqwest error, dropping the rest.
    pub fn into_reqwest_error(self) -> reqwest::Error {
        self.inner.source
    }

    /// The same failure with the step of its request changed by `change`: a webhook, a
    /// step type, or the explicit opt-in
    /// `failed.map_step(|step| step.replay(ReplayPolicy::Always))`.
    #[must_use]
    pub fn map_step(mut self, change: impl FnOnce(Step) -> Step) -> Self {
        self.inner.request = match self.inner.request {
            Kept::Request(request) => Kept::Request(request.map_step(change)),
            other => other,
        };
        self
    }

    pub(crate) fn kept(&self) -> &Kept {
        &self.inner.request
    }
}

/// A bare `reqwest::Error` (from `.text().await?`, say): its request is not known, so it is
/// never forwarded.
impl From<reqwest::Error> for FailedCall {
    fn from(source: reqwest::Error) -> Self {
        Self::new(Kept::Unknown, source, None)
    }
}

impl std::fmt::Debug for FailedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &*self.inner;
        let mut debug = f.debug_struct("FailedCall");
        match &inner.request {
            // Its `Debug` is the step's, redacted.
            Kept::Request(request) => debug.field("request", request),
            Kept::Unbuildable(error) => debug.field("request", error),
            Kept::Unknown => debug.field("request", &None::<()>),
        };
        debug
            .field("failure", &inner.failure)
            .field("response_headers", &inner.response_headers.as_ref().map(RedactedHeaders::new))
            .field("source", &inner.source)
            .finish()
    }
}

impl std::fmt::Display for FailedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.request() {
            Some(request) => write!(f, "{} {} failed: {}", request.method(), request.url(), self.inner.failure),
            None => write!(f, "the call failed: {}", self.inner.failure),
        }
    }
}

impl std::error::Error for FailedCall {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner.source)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_type_stays_small() {
        assert_eq!(std::mem::size_of::<super::FailedCall>(), std::mem::size_of::<usize>());
    }
}
