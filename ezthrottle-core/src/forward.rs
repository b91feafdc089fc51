//! `ForwardToEZThrottle`: the request legacy code hands to EZThrottle when it fails.

use bytes::Bytes;
use http::Method;

use crate::client::EZThrottle;
use crate::protocol::Job;
use crate::step::{Step, StepResult};

/// A request to hand to EZThrottle instead of failing: what legacy code returns (as its
/// error) when a call should be retried by EZThrottle.
///
/// It implements [`std::error::Error`], so `Result<T, ForwardToEZThrottle>` works with `?`,
/// and [`Forwardable`], so `#[auto_forward]` and the tower layer can submit it.
///
/// It wraps a [`Step`], the one place job options are set: build the step, then wrap it
/// (`ForwardToEZThrottle::new(step)` or `step.into()`), or adjust a wrapped one with
/// [`map_step`](Self::map_step). Without an explicit key the job gets the default
/// [`IdempotentStrategy::CredentialHash`](crate::IdempotentStrategy::CredentialHash) key.
///
/// ```
/// use ezthrottle_core::{ForwardToEZThrottle, Method, Step, Webhook};
/// let forward = ForwardToEZThrottle::new(
///     Step::new("https://api.example.com/charge")
///         .method(Method::POST)
///         .body(r#"{"amount":100}"#)
///         .header("Authorization", "Bearer token")
///         .idempotent_key("charge-42")
///         .webhook(Webhook::new("https://app.example.com/webhook")),
/// );
/// let job = forward.to_job();
/// assert_eq!(job.method, http::Method::POST);
/// assert_eq!(job.idempotent_key.as_deref(), Some("charge-42"));
/// ```
///
/// Its `Debug` (what `unwrap()` prints) is the step's: header names without the values of
/// credential headers, the body's length without its text.
#[derive(Clone, PartialEq)]
#[must_use]
pub struct ForwardToEZThrottle {
    // Boxed: errors are passed by value through `Result`, so the type stays one pointer wide
    // (no `clippy::result_large_err` in users' code).
    step: Box<Step>,
}

impl ForwardToEZThrottle {
    /// Forwards `step`.
    pub fn new(step: Step) -> Self {
        Self { step: Box::new(step) }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Step::new(url))
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(Step::new(url).method(Method::POST).body(body))
    }

    /// The request that failed, so it can be forwarded as it was made (see
    /// [`Step::for_http_request`]).
    ///
    /// # Errors
    ///
    /// A relative URI, a body or header value that is not UTF-8 (a job carries text).
    pub fn from_http_request(request: &http::Request<Bytes>) -> Result<Self, ForwardBuildError> {
        Step::default().for_http_request(request).map(Self::new)
    }

    /// The `reqwest::Request` that failed. Its body must be buffered (not a stream).
    ///
    /// # Errors
    ///
    /// A streaming body, or a body or header value that is not UTF-8.
    pub fn from_reqwest(request: &reqwest::Request) -> Result<Self, ForwardBuildError> {
        Step::default().for_reqwest(request).map(Self::new)
    }

    /// The same request with its step changed by `change`, e.g. to add a webhook:
    /// `forward.map_step(|step| step.webhook(hook))`.
    pub fn map_step(mut self, change: impl FnOnce(Step) -> Step) -> Self {
        *self.step = change(*self.step);
        self
    }

    /// The step that runs this request.
    pub fn step(&self) -> &Step {
        &self.step
    }

    /// The step that runs this request, unwrapped.
    pub fn into_step(self) -> Step {
        *self.step
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.step.request().method
    }

    /// The target URL.
    pub fn url(&self) -> &str {
        &self.step.request().url
    }

    /// The job EZThrottle runs for this request.
    pub fn to_job(&self) -> Job {
        self.step.to_job()
    }
}

impl From<Step> for ForwardToEZThrottle {
    fn from(step: Step) -> Self {
        Self::new(step)
    }
}

impl std::fmt::Debug for ForwardToEZThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Step`'s `Debug` redacts the request.
        f.debug_struct("ForwardToEZThrottle").field("step", &self.step).finish_non_exhaustive()
    }
}

impl std::fmt::Display for ForwardToEZThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "forward {} {} to EZThrottle", self.method(), self.url())
    }
}

impl std::error::Error for ForwardToEZThrottle {}

/// Why a request could not be turned into a [`ForwardToEZThrottle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardBuildError {
    /// The URI is not an absolute http(s) URL.
    #[error("cannot forward {url:?}: the URL {reason}")]
    Url {
        /// The URI as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body is a stream and cannot be replayed.
    #[error("cannot forward a streaming body; buffer it first")]
    StreamingBody,
    /// The body is not UTF-8; an EZThrottle job carries its body as text.
    #[error("cannot forward a body that is not UTF-8 text")]
    NonUtf8Body,
    /// A header value is not text.
    #[error("cannot forward header {0:?}: its value is not text")]
    NonUtf8Header(String),
}

/// An error that may carry a request to hand to EZThrottle.
///
/// `#[auto_forward]` and the tower layer call it on failures: `Some` forwards, `None`
/// returns the error unchanged.
///
/// ```
/// use ezthrottle_core::{ForwardToEZThrottle, Forwardable};
///
/// #[derive(Debug)]
/// enum BillingError {
///     RateLimited(ForwardToEZThrottle),
///     CardDeclined,
/// }
///
/// impl Forwardable for BillingError {
///     fn forward_request(&self) -> Option<ForwardToEZThrottle> {
///         match self {
///             Self::RateLimited(forward) => Some(forward.clone()),
///             Self::CardDeclined => None,
///         }
///     }
/// }
/// assert!(BillingError::CardDeclined.forward_request().is_none());
/// ```
pub trait Forwardable {
    /// The request to forward, if this error should be forwarded.
    fn forward_request(&self) -> Option<ForwardToEZThrottle>;
}

impl Forwardable for ForwardToEZThrottle {
    fn forward_request(&self) -> Option<ForwardToEZThrottle> {
        Some(self.clone())
    }
}

impl<T: Forwardable + ?Sized> Forwardable for Box<T> {
    fn forward_request(&self) -> Option<ForwardToEZThrottle> {
        (**self).forward_request()
    }
}

impl EZThrottle {
    /// Hands `request` to EZThrottle: submits it (PERFORMANCE) or runs it here first
    /// (FRUGAL), as its step type says.
    ///
    /// # Errors
    ///
    /// As [`Step::execute`].
    pub async fn forward(&self, request: &ForwardToEZThrottle) -> StepResult {
        request.step().execute(self).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_type_stays_small() {
        assert_eq!(std::mem::size_of::<super::ForwardToEZThrottle>(), std::mem::size_of::<usize>());
    }
}
