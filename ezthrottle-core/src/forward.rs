//! `ForwardToEZThrottle`: the request legacy code hands to EZThrottle when it fails.

use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::client::EZThrottle;
use crate::headers::forwardable_headers;
use crate::protocol::{Headers, Job, Metadata, RetryPolicy, Webhook};
use crate::step::{DEFAULT_FALLBACK_ON_ERROR, IdempotentStrategy, Step, StepResult, StepType};

/// A request to hand to EZThrottle instead of failing: what legacy code returns (as its
/// error) when a call should be retried by EZThrottle.
///
/// It implements [`std::error::Error`], so `Result<T, ForwardToEZThrottle>` works with `?`,
/// and [`Forwardable`], so `#[auto_forward]` and the tower layer can submit it.
///
/// Without an explicit key it gets a fresh UUID (as the Python SDK's decorator does);
/// choose [`IdempotentStrategy::Hash`] to let EZThrottle deduplicate identical requests.
///
/// ```
/// use ezthrottle_core::{ForwardToEZThrottle, Webhook};
/// let forward = ForwardToEZThrottle::post("https://api.example.com/charge", r#"{"amount":100}"#)
///     .header("Authorization", "Bearer token")
///     .idempotent_key("charge-42")
///     .webhook(Webhook::new("https://app.example.com/webhook"));
/// let job = forward.to_job();
/// assert_eq!(job.method, http::Method::POST);
/// assert_eq!(job.idempotent_key.as_deref(), Some("charge-42"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct ForwardToEZThrottle {
    // Boxed: errors are passed by value through `Result`, so the type stays one pointer wide
    // (no `clippy::result_large_err` in users' code).
    fields: Box<Fields>,
}

#[derive(Debug, Clone, PartialEq)]
struct Fields {
    method: Method,
    url: String,
    headers: Headers,
    body: Option<String>,
    idempotent_key: Option<String>,
    idempotent_strategy: IdempotentStrategy,
    metadata: Metadata,
    webhooks: Vec<Webhook>,
    webhook_quorum: u32,
    regions: Vec<String>,
    retry_policy: Option<RetryPolicy>,
    retry_at: Option<u64>,
    step_type: StepType,
    fallback_on_error: Vec<u16>,
    local_timeout: Option<Duration>,
}

impl ForwardToEZThrottle {
    /// A `method` request to `url`.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        let fields = Fields {
            method,
            url: url.into(),
            headers: Headers::new(),
            body: None,
            idempotent_key: None,
            idempotent_strategy: IdempotentStrategy::Unique,
            metadata: Metadata::new(),
            webhooks: Vec::new(),
            webhook_quorum: 1,
            regions: Vec::new(),
            retry_policy: None,
            retry_at: None,
            step_type: StepType::Performance,
            fallback_on_error: DEFAULT_FALLBACK_ON_ERROR.to_vec(),
            local_timeout: None,
        };
        Self { fields: Box::new(fields) }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(Method::POST, url).body(body)
    }

    /// The request that failed, so it can be forwarded as it was made.
    ///
    /// Hop-by-hop headers are dropped; `Authorization` and every other end-to-end header
    /// is kept (the target needs them).
    ///
    /// # Errors
    ///
    /// A relative URI, a body or header value that is not UTF-8 (a job carries text).
    pub fn from_http_request(request: &http::Request<Bytes>) -> Result<Self, ForwardBuildError> {
        Self::from_parts(request.method(), &request.uri().to_string(), request.headers(), Some(request.body()))
    }

    /// The `reqwest::Request` that failed. Its body must be buffered (not a stream).
    ///
    /// # Errors
    ///
    /// A streaming body, or a body or header value that is not UTF-8.
    pub fn from_reqwest(request: &reqwest::Request) -> Result<Self, ForwardBuildError> {
        let body = match request.body() {
            None => None,
            Some(body) => Some(body.as_bytes().ok_or(ForwardBuildError::StreamingBody)?),
        };
        Self::from_parts(request.method(), request.url().as_str(), request.headers(), body)
    }

    fn from_parts(
        method: &Method,
        url: &str,
        headers: &http::HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Self, ForwardBuildError> {
        crate::protocol::check_absolute_url(url)
            .map_err(|reason| ForwardBuildError::Url { url: url.to_owned(), reason })?;
        let headers =
            forwardable_headers(headers).map_err(|name| ForwardBuildError::NonUtf8Header(name.as_str().to_owned()))?;
        let body = match body.filter(|bytes| !bytes.is_empty()) {
            None => None,
            Some(bytes) => Some(String::from_utf8(bytes.to_vec()).map_err(|_| ForwardBuildError::NonUtf8Body)?),
        };
        let mut forward = Self::new(method.clone(), url);
        forward.fields.headers = headers;
        forward.fields.body = body;
        Ok(forward)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.headers.insert(name.into(), value.into());
        self
    }

    /// Replaces the headers.
    pub fn headers(mut self, headers: Headers) -> Self {
        self.fields.headers = headers;
        self
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.fields.body = Some(body.into());
        self
    }

    /// An explicit idempotency key.
    pub fn idempotent_key(mut self, key: impl Into<String>) -> Self {
        self.fields.idempotent_key = Some(key.into());
        self
    }

    /// How the key is chosen when none is set (default [`IdempotentStrategy::Unique`]).
    pub fn idempotent_strategy(mut self, strategy: IdempotentStrategy) -> Self {
        self.fields.idempotent_strategy = strategy;
        self
    }

    /// Replaces the metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.fields.metadata = metadata;
        self
    }

    /// Adds one metadata entry.
    pub fn metadata_entry(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.fields.metadata.insert(key.into(), value.into());
        self
    }

    /// Replaces the webhooks.
    pub fn webhooks(mut self, webhooks: impl IntoIterator<Item = Webhook>) -> Self {
        self.fields.webhooks = webhooks.into_iter().collect();
        self
    }

    /// Adds a webhook.
    pub fn webhook(mut self, webhook: Webhook) -> Self {
        self.fields.webhooks.push(webhook);
        self
    }

    /// How many voting webhooks must answer 2xx.
    pub fn webhook_quorum(mut self, quorum: u32) -> Self {
        self.fields.webhook_quorum = quorum;
        self
    }

    /// Regions to execute in.
    pub fn regions<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields.regions = regions.into_iter().map(Into::into).collect();
        self
    }

    /// The server-side retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.fields.retry_policy = Some(policy);
        self
    }

    /// Do not execute before this instant (Unix ms), e.g. from the target's `Retry-After`.
    pub fn retry_at(mut self, unix_ms: u64) -> Self {
        self.fields.retry_at = Some(unix_ms);
        self
    }

    /// PERFORMANCE (default: submit at once) or FRUGAL (run here again first).
    pub fn step_type(mut self, step_type: StepType) -> Self {
        self.fields.step_type = step_type;
        self
    }

    /// FRUGAL: the statuses that forward (default 429, 500, 502, 503, 504).
    pub fn fallback_on_error(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.fields.fallback_on_error = codes.into_iter().collect();
        self
    }

    /// FRUGAL: how long the local attempt may take.
    pub fn local_timeout(mut self, timeout: Duration) -> Self {
        self.fields.local_timeout = Some(timeout);
        self
    }

    /// The HTTP method.
    pub fn method_ref(&self) -> &Method {
        &self.fields.method
    }

    /// The target URL.
    pub fn url_ref(&self) -> &str {
        &self.fields.url
    }

    /// The step that runs this request.
    pub fn to_step(&self) -> Step {
        let mut step = Step::new(self.fields.url.clone())
            .method(self.fields.method.clone())
            .headers(self.fields.headers.clone())
            .metadata(self.fields.metadata.clone())
            .webhooks(self.fields.webhooks.clone())
            .webhook_quorum(self.fields.webhook_quorum)
            .regions(self.fields.regions.clone())
            .idempotent_strategy(self.fields.idempotent_strategy)
            .step_type(self.fields.step_type)
            .fallback_on_error(self.fields.fallback_on_error.clone());
        if let Some(body) = &self.fields.body {
            step = step.body(body.clone());
        }
        if let Some(key) = &self.fields.idempotent_key {
            step = step.idempotent_key(key.clone());
        }
        if let Some(policy) = &self.fields.retry_policy {
            step = step.retry_policy(policy.clone());
        }
        if let Some(at) = self.fields.retry_at {
            step = step.retry_at(at);
        }
        if let Some(timeout) = self.fields.local_timeout {
            step = step.local_timeout(timeout);
        }
        step
    }

    /// The job EZThrottle runs for this request.
    pub fn to_job(&self) -> Job {
        self.to_step().to_job()
    }
}

impl std::fmt::Display for ForwardToEZThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "forward {} {} to EZThrottle", self.fields.method, self.fields.url)
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
        request.to_step().execute(self).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_type_stays_small() {
        assert_eq!(std::mem::size_of::<super::ForwardToEZThrottle>(), std::mem::size_of::<usize>());
    }
}
