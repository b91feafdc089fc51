//! What running a step produced.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::error::Error;
use crate::protocol::SubmitReceipt;
use crate::replay::CallFailure;

/// The result of [`Step::execute`](crate::Step::execute).
pub type StepResult = Result<StepOutcome, Error>;

/// How a step ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepOutcome {
    /// FRUGAL: the request (or one of its FRUGAL fallbacks) succeeded here.
    ExecutedLocally {
        /// The 2xx answer.
        response: LocalResponse,
        /// What the `on_success` step produced, when there is one (it ran here, after the
        /// response, and was not sent to EZThrottle).
        on_success: Option<Box<StepResult>>,
    },
    /// EZThrottle accepted the step as a job (PERFORMANCE, or FRUGAL after a local failure).
    Forwarded(SubmitReceipt),
    /// FRUGAL: the target answered a status that is neither 2xx nor in
    /// `fallback_on_error`; nothing was forwarded.
    FailedLocally {
        /// The answer.
        response: LocalResponse,
        /// What the `on_failure` step produced, when there is one.
        on_failure: Option<Box<StepResult>>,
    },
    /// FRUGAL: the request failed here in a way that means the API may have run it (no
    /// answer came, or it answered a status other than 429), and the step's
    /// [`ReplayPolicy`](crate::ReplayPolicy) does not allow running it again: a `POST` or
    /// `PATCH` without an `Idempotency-Key` header, under the default
    /// [`WhenSafe`](crate::ReplayPolicy::WhenSafe). Nothing was forwarded (see
    /// [`replay`](crate::replay)); the `on_failure` step ran here, as for `FailedLocally`.
    ReplayRefused {
        /// The failure made here (the primary's, or that of a FRUGAL fallback tried here).
        failure: LocalFailure,
        /// How far that call got.
        call_failure: CallFailure,
        /// What the `on_failure` step produced, when there is one.
        on_failure: Option<Box<StepResult>>,
    },
}

impl StepOutcome {
    /// The receipt, when the step was forwarded.
    pub fn receipt(&self) -> Option<&SubmitReceipt> {
        match self {
            Self::Forwarded(receipt) => Some(receipt),
            _ => None,
        }
    }

    /// The local answer, when the step ran here.
    pub fn local_response(&self) -> Option<&LocalResponse> {
        match self {
            Self::ExecutedLocally { response, .. }
            | Self::FailedLocally { response, .. }
            | Self::ReplayRefused { failure: LocalFailure::Status(response), .. } => Some(response),
            Self::Forwarded(_) | Self::ReplayRefused { .. } => None,
        }
    }
}

/// An answer a target gave to a request made here.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LocalResponse {
    /// The URL that answered (the primary's, or a fallback's).
    pub url: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body, at most [`MAX_LOCAL_BODY_BYTES`](crate::step::MAX_LOCAL_BODY_BYTES).
    pub body: Bytes,
    /// Whether the body was cut at that bound.
    pub body_truncated: bool,
}

/// Why a FRUGAL request made here did not succeed.
#[derive(Debug)]
#[non_exhaustive]
pub enum LocalFailure {
    /// The target answered a status listed in `fallback_on_error`.
    Status(LocalResponse),
    /// The target did not answer within `local_timeout`.
    Timeout {
        /// The URL that was called.
        url: String,
    },
    /// The request failed in transport (connection refused, reset, ...).
    Transport {
        /// The URL that was called.
        url: String,
        /// The underlying failure.
        source: reqwest::Error,
    },
}

impl std::fmt::Display for LocalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(response) => write!(f, "{} answered {}", response.url, response.status),
            Self::Timeout { url } => write!(f, "{url} did not answer in time"),
            Self::Transport { url, source } => write!(f, "{url} failed in transport: {source}"),
        }
    }
}
