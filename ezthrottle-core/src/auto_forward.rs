//! What a function annotated with `#[auto_forward]` returns: [`Outcome`] and
//! [`AutoForwardError`] (with [`Unforwardable`]), and the trait `on_status` needs,
//! [`HttpFailure`].
//!
//! The attribute (crate `ezthrottle-macros`, re-exported by the `ezthrottle` facade) turns
//! `fn f(..) -> Result<T, E>` into `fn f(..) -> Result<Outcome<T>, AutoForwardError<E>>`;
//! [`EZThrottle::run_or_forward`](crate::EZThrottle::run_or_forward) gives the same result
//! without a macro.

use crate::error::Error;
use crate::forward::ForwardBuildError;
use crate::protocol::SubmitReceipt;
use crate::replay::CallFailure;
use crate::step::LocalResponse;

/// How a function annotated with `#[auto_forward]` ended, when it did not fail.
///
/// ```
/// use ezthrottle_core::Outcome;
///
/// fn describe(outcome: &Outcome<u32>) -> String {
///     match outcome {
///         Outcome::Completed(value) => format!("done here: {value}"),
///         Outcome::Forwarded(receipt) => format!("handed to EZThrottle as {}", receipt.job_id),
///         Outcome::ExecutedLocally(response) => format!("retried here: {}", response.status),
///     }
/// }
/// assert_eq!(describe(&Outcome::Completed(7)), "done here: 7");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub enum Outcome<T> {
    /// The function returned `Ok`: its value, untouched.
    Completed(T),
    /// The function failed with a forwardable error and EZThrottle accepted the request as
    /// a job: the result will arrive on the request's webhooks.
    Forwarded(SubmitReceipt),
    /// FRUGAL only (`step = frugal`, or a request built with
    /// [`StepType::Frugal`](crate::StepType::Frugal)): the failed request was made here
    /// once more and this time the target answered 2xx, so nothing was forwarded. This is
    /// the target's answer, not a value of the function (whose body failed); boxed, so the
    /// common variants stay small.
    ExecutedLocally(Box<LocalResponse>),
}

impl<T> Outcome<T> {
    /// The function's value, if it completed.
    pub fn completed(self) -> Option<T> {
        match self {
            Self::Completed(value) => Some(value),
            Self::Forwarded(_) | Self::ExecutedLocally(_) => None,
        }
    }

    /// The receipt, if the work was forwarded.
    pub fn receipt(&self) -> Option<&SubmitReceipt> {
        match self {
            Self::Forwarded(receipt) => Some(receipt),
            Self::Completed(_) | Self::ExecutedLocally(_) => None,
        }
    }

    /// Whether the work was handed to EZThrottle.
    pub fn is_forwarded(&self) -> bool {
        matches!(self, Self::Forwarded(_))
    }
}

/// Why a function annotated with `#[auto_forward]` failed. Nothing is swallowed: every
/// variant keeps the function's own error.
///
/// `?` works both ways: inside the annotated function `?` still converts into the
/// function's declared `E`; a caller returning `Result<_, AutoForwardError<E>>` can use `?`
/// on a plain `Result<_, E>` (through `From<E>`); and when `E: std::error::Error`, so is
/// this type (for `Box<dyn Error>` or `anyhow`).
///
/// ```
/// use ezthrottle_core::{AutoForwardError, ForwardToEZThrottle};
///
/// fn legacy() -> Result<u32, ForwardToEZThrottle> {
///     Err(ForwardToEZThrottle::get("https://api.example.com/orders"))
/// }
///
/// fn caller() -> Result<u32, AutoForwardError<ForwardToEZThrottle>> {
///     Ok(legacy()? + 1) // `From<E>`: a plain failure becomes `AutoForwardError::Failed`
/// }
///
/// let error = caller().unwrap_err();
/// assert!(matches!(error, AutoForwardError::Failed(_)));
/// assert_eq!(error.into_original().url(), "https://api.example.com/orders");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AutoForwardError<E> {
    /// The error carries no request to forward (or, with `on_status`, its status is not
    /// listed): returned as it was.
    Failed(E),
    /// The error was to be forwarded, but the forward failed (EZThrottle unreachable or
    /// refusing, no client could be built from the environment, ...).
    ForwardFailed {
        /// The function's error.
        original: E,
        /// Why the forward failed (boxed, so the error type stays close to `E`'s size).
        error: Box<Error>,
    },
    /// The failure was selected for forwarding, but forwarding it would not run the request
    /// that failed, or could run it twice; nothing was forwarded. `reason` says why and
    /// names the fix.
    NotForwardable {
        /// The function's error.
        original: E,
        /// Why it was not forwarded.
        reason: Unforwardable,
    },
    /// FRUGAL only: the failed request was made here once more and the target answered a
    /// status that is neither 2xx nor one that forwards, so nothing was forwarded.
    FailedLocally {
        /// The function's error.
        original: E,
        /// What the target answered to the repeated request (boxed: it is large, and
        /// this is a rare case).
        response: Box<LocalResponse>,
    },
}

impl<E> AutoForwardError<E> {
    /// The function's own error.
    pub fn original(&self) -> &E {
        match self {
            Self::Failed(original)
            | Self::ForwardFailed { original, .. }
            | Self::NotForwardable { original, .. }
            | Self::FailedLocally { original, .. } => original,
        }
    }

    /// The function's own error, dropping what the forward added.
    pub fn into_original(self) -> E {
        match self {
            Self::Failed(original)
            | Self::ForwardFailed { original, .. }
            | Self::NotForwardable { original, .. }
            | Self::FailedLocally { original, .. } => original,
        }
    }

    /// Why the forward failed, when it was attempted and failed.
    pub fn forward_error(&self) -> Option<&Error> {
        match self {
            Self::ForwardFailed { error, .. } => Some(error),
            Self::Failed(_) | Self::NotForwardable { .. } | Self::FailedLocally { .. } => None,
        }
    }

    /// Why the failure was not forwarded, when it was selected but could not be.
    pub fn unforwardable(&self) -> Option<&Unforwardable> {
        match self {
            Self::NotForwardable { reason, .. } => Some(reason),
            Self::Failed(_) | Self::ForwardFailed { .. } | Self::FailedLocally { .. } => None,
        }
    }
}

impl<E> From<E> for AutoForwardError<E> {
    fn from(original: E) -> Self {
        Self::Failed(original)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for AutoForwardError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(original) => original.fmt(f),
            // The forward's error is the `source`, so it is not repeated here.
            Self::ForwardFailed { original, .. } => write!(f, "{original}; forwarding it to EZThrottle failed"),
            Self::NotForwardable { original, reason } => write!(f, "{original}; not forwarded: {reason}"),
            Self::FailedLocally { original, response } => write!(
                f,
                "{original}; made again here, {} answered {}, which does not forward",
                response.url, response.status
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AutoForwardError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(original) | Self::NotForwardable { original, .. } | Self::FailedLocally { original, .. } => {
                original.source()
            }
            Self::ForwardFailed { error, .. } => Some(&**error),
        }
    }
}

/// Why a failure selected for forwarding was not forwarded (see
/// [`AutoForwardError::NotForwardable`]). Each reason's `Display` names the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unforwardable {
    /// The failure does not keep its request: a bare `reqwest::Error` (from
    /// `error_for_status()`) knows the status and the URL, but neither the method, the
    /// headers nor the body.
    RequestUnknown,
    /// The request is known, but a job cannot carry it (a streaming or binary body, ...).
    Unbuildable(ForwardBuildError),
    /// The [replay rule](crate::replay): the request is neither idempotent nor carries an
    /// `Idempotency-Key`, and the API may have run it (it answered this status, or no
    /// answer came).
    MayHaveRun(CallFailure),
}

impl std::fmt::Display for Unforwardable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RequestUnknown => f.write_str(
                "a `reqwest::Error` does not keep its request (method, headers, body); send the request with \
                 `.send_keeping_request()` (trait `KeepRequest`), whose error, `FailedCall`, keeps it",
            ),
            Self::Unbuildable(error) => write!(f, "{error}"),
            Self::MayHaveRun(failure) => write!(
                f,
                "{failure}, so the API may have run it; a POST or PATCH is forwarded only with an \
                 `Idempotency-Key` header or the explicit opt-in `Step::replay(ReplayPolicy::Always)`"
            ),
        }
    }
}

/// An error `on_status = [..]` (and [`run_or_forward_on`](crate::EZThrottle::run_or_forward_on))
/// can forward when its status is listed: one that keeps the request that failed.
///
/// Implemented by [`FailedCall`](crate::FailedCall) (from
/// [`send_keeping_request`](crate::KeepRequest::send_keeping_request)), by every
/// [`Forwardable`](crate::Forwardable) error (which decides for itself: `on_status` does not
/// filter it), and by `Box<dyn Error (+ Send + Sync)>`, which looks for either in its chain
/// of sources. A bare `reqwest::Error` does not implement it: it knows neither the method,
/// the headers nor the body, and forwarding it would run a different request.
#[diagnostic::on_unimplemented(
    message = "`on_status` cannot forward `{Self}`: it does not keep the request that failed",
    label = "the error type of this function",
    note = "send the request with `.send_keeping_request()` (trait `ezthrottle::KeepRequest`) and return its \
            error, `ezthrottle::FailedCall`, which keeps the request (method, URL, headers, body); \
            or return a `Forwardable` error such as `ForwardToEZThrottle`"
)]
pub trait HttpFailure {
    /// What to do with this failure when `statuses` are the ones to forward.
    #[doc(hidden)]
    fn forward_on_status(&self, statuses: &[u16]) -> crate::__private::Verdict;
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::ForwardToEZThrottle;

    fn forward() -> ForwardToEZThrottle {
        ForwardToEZThrottle::get("https://api.example.com/orders")
    }

    #[test]
    fn a_plain_failure_is_transparent() {
        let error = AutoForwardError::Failed(forward());
        assert_eq!(error.to_string(), "forward GET https://api.example.com/orders to EZThrottle");
        assert!(error.source().is_none());
        assert!(error.forward_error().is_none());
        assert_eq!(error.original().url(), "https://api.example.com/orders");
    }

    #[test]
    fn a_failed_forward_keeps_both_errors() {
        let error =
            AutoForwardError::ForwardFailed { original: forward(), error: Box::new(Error::Config("no key".into())) };
        assert_eq!(
            error.to_string(),
            "forward GET https://api.example.com/orders to EZThrottle; forwarding it to EZThrottle failed"
        );
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("invalid EZThrottle client configuration: no key")
        );
        assert!(matches!(error.forward_error(), Some(Error::Config(_))));
        assert_eq!(error.into_original(), forward());
    }

    #[test]
    fn from_wraps_as_failed() {
        let error: AutoForwardError<ForwardToEZThrottle> = forward().into();
        assert!(matches!(error, AutoForwardError::Failed(_)));
    }

    #[test]
    fn outcome_accessors() {
        let receipt = SubmitReceipt::new("job_1", crate::SubmissionStatus::Queued);
        let forwarded: Outcome<u8> = Outcome::Forwarded(receipt.clone());
        assert!(forwarded.is_forwarded());
        assert_eq!(forwarded.receipt(), Some(&receipt));
        assert_eq!(forwarded.completed(), None);
        assert_eq!(Outcome::Completed(3).completed(), Some(3));
    }
}
