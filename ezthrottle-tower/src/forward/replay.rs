//! The core's one replay rule ([`ezthrottle_core::replay`]) applied to the calls of the
//! layer and the middleware: how far a failed call got, and whether the request may run
//! again.

use std::any::Any;
use std::error::Error as StdError;
use std::sync::Arc;

use ezthrottle_core::replay::{CallFailure, has_idempotency_key};
use http::{HeaderMap, Method};

use super::capture::{Capture, Kept};
use super::decision::not_forwarded;
use super::extension::{ForwardFailed, ForwardReason};
use super::settings::Settings;

/// A user's test for errors of their client's own type that prove the request was not
/// sent (see `not_sent_when`), type-erased so the settings stay one type.
pub(crate) type NotSentFn = Arc<dyn Fn(&(dyn Any + 'static)) -> bool + Send + Sync>;

type BoxError = Box<dyn StdError + Send + Sync>;

/// How far a call that failed with `error` (an error of the wrapped service) got.
///
/// [`NotSent`](CallFailure::NotSent) only when provable: a user's `not_sent_when` test
/// says so, hyper-util's client error says `is_connect()`, or the error is one whose chain
/// of sources can be read (a boxed error, an `io::Error`, a `reqwest::Error`, a
/// `reqwest_middleware::Error`) and tells of a failed connection. Anything else is [`NoAnswer`](CallFailure::NoAnswer): the API may have run
/// the call.
pub(crate) fn failure_of_error<E: 'static>(error: &E, not_sent: &[NotSentFn]) -> CallFailure {
    let any: &(dyn Any + 'static) = error;
    if not_sent.iter().any(|test| test(any)) {
        return CallFailure::NotSent;
    }
    if let Some(hyper) = any.downcast_ref::<hyper_util::client::legacy::Error>() {
        return if hyper.is_connect() { CallFailure::NotSent } else { CallFailure::of_error(hyper) };
    }
    match readable(any) {
        Some(error) => CallFailure::of_error(error),
        None => CallFailure::NoAnswer,
    }
}

/// The error as a `std::error::Error`, for the types whose chain can be walked.
fn readable<'a>(any: &'a (dyn Any + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(boxed) = any.downcast_ref::<BoxError>() {
        return Some(&**boxed);
    }
    if let Some(boxed) = any.downcast_ref::<Box<dyn StdError + Send>>() {
        return Some(&**boxed);
    }
    if let Some(boxed) = any.downcast_ref::<Box<dyn StdError>>() {
        return Some(&**boxed);
    }
    if let Some(io) = any.downcast_ref::<std::io::Error>() {
        return Some(io);
    }
    #[cfg(feature = "reqwest-middleware")]
    if let Some(error) = any.downcast_ref::<reqwest_middleware::Error>() {
        return Some(match error {
            reqwest_middleware::Error::Reqwest(http) => http,
            reqwest_middleware::Error::Middleware(other) => {
                let other: &(dyn StdError + Send + Sync + 'static) = other.as_ref();
                other
            }
        });
    }
    None
}

/// The type-erased form of a user's `not_sent_when(|error: &E| ...)`.
pub(crate) fn not_sent_fn<E: 'static>(test: impl Fn(&E) -> bool + Send + Sync + 'static) -> NotSentFn {
    Arc::new(move |any: &(dyn Any + 'static)| any.downcast_ref::<E>().is_some_and(&test))
}

impl Settings {
    /// Whether the template's [`ReplayPolicy`](ezthrottle_core::ReplayPolicy) lets
    /// EZThrottle run this request again after `failure`; if not, why (for the
    /// [`ForwardFailed`] extension, with the fix), after a `tracing` event.
    pub(crate) fn replay_refused(
        &self,
        method: &Method,
        headers: &HeaderMap,
        failure: CallFailure,
        reason: ForwardReason,
    ) -> Option<ForwardFailed> {
        if self.template.replay_policy().allows_request(method, headers, failure) {
            return None;
        }
        let refused = not_forwarded(format!(
            "{failure}: the API may have run this {method} request, so EZThrottle does not run it again \
             (the replay rule, ezthrottle_core::replay); send an Idempotency-Key header, or opt in with \
             with_template(|job| job.replay(ReplayPolicy::Always))"
        ));
        tracing::debug!(%method, %reason, "not forwarded: {}", refused.reason);
        Some(refused)
    }

    /// For an outcome the policy forwards (`failure`, `reason`), of the layer or the
    /// middleware: the request to submit, or why it is not forwarded: it was not kept
    /// (a `tracing` event, child of `parent`), a forward was already tried and failed, or
    /// the replay rule refuses it ([`replay_refused`](Self::replay_refused)).
    pub(super) fn to_forward<'a>(
        &self,
        capture: &'a Capture,
        failure: CallFailure,
        reason: ForwardReason,
        parent: &tracing::Span,
    ) -> Result<&'a Kept, ForwardFailed> {
        let kept = match capture {
            Capture::Kept(kept) => kept,
            Capture::Missing(not_captured) => {
                tracing::debug!(target: ezthrottle_core::telemetry::TARGET_FORWARD, parent: parent, %reason, "not forwarded: {not_captured}");
                return Err(not_forwarded(not_captured.to_string()));
            }
            Capture::Tried(failed) => return Err((**failed).clone()),
        };
        let method = kept.head().method();
        // The common case needs no header decoding: an idempotent method, or `Always`.
        if self.template.replay_policy().allows(&method, false, failure) {
            return Ok(kept);
        }
        self.replay_refused(&method, &kept.head().headers(), failure, reason).map_or(Ok(kept), Err)
    }

    /// After a failed submission of a request not sent to the target yet (circuit open,
    /// PERFORMANCE): whether the target may still be called. Yes when EZThrottle
    /// certainly did not take the job, or when running the request twice is harmless.
    pub(crate) fn may_call_after(&self, error: &ezthrottle_core::Error, method: &Method, headers: &HeaderMap) -> bool {
        certainly_not_accepted(error)
            || self.template.replay_policy().allows(method, has_idempotency_key(headers), CallFailure::NoAnswer)
    }
}

/// Whether EZThrottle certainly did not accept the job: nothing reached it, it refused the
/// job with a 4xx answer, or the job was refused before anything was sent.
fn certainly_not_accepted(error: &ezthrottle_core::Error) -> bool {
    use ezthrottle_core::Error;
    error.is_not_sent()
        || matches!(error, Error::Config(_) | Error::InvalidInput { .. })
        || (!error.is_answer_unknown() && error.status().is_some_and(|status| status.is_client_error()))
}

/// The reason given when the target is not called because EZThrottle may hold the job.
pub(crate) fn maybe_accepted(error: &ezthrottle_core::Error) -> ForwardFailed {
    ForwardFailed {
        reason: format!(
            "EZThrottle may have accepted the job; not calling the API to avoid running it twice ({error})"
        ),
        status: error.status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Opaque;

    #[test]
    fn only_readable_connect_failures_are_not_sent() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(failure_of_error(&refused, &[]), CallFailure::NotSent);
        let boxed: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(failure_of_error(&boxed, &[]), CallFailure::NotSent);
        let reset: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(failure_of_error(&reset, &[]), CallFailure::NoAnswer);
        assert_eq!(failure_of_error(&Opaque, &[]), CallFailure::NoAnswer, "unknown: the API may have run it");
        let test = not_sent_fn(|_: &Opaque| true);
        assert_eq!(failure_of_error(&Opaque, &[test]), CallFailure::NotSent);
        let other = not_sent_fn(|_: &std::io::Error| true);
        assert_eq!(failure_of_error(&Opaque, &[other]), CallFailure::NoAnswer, "a test for another type");
    }

    #[test]
    fn only_a_job_ezthrottle_certainly_did_not_take_lets_the_target_be_called() {
        use ezthrottle_core::{Error, Origin};
        let refused = Error::Unauthorized { origin: Origin::EZThrottle, message: "no".into() };
        assert!(certainly_not_accepted(&refused));
        let failing = Error::Api {
            origin: Origin::EZThrottle,
            status: http::StatusCode::BAD_GATEWAY,
            message: "upstream".into(),
        };
        assert!(!certainly_not_accepted(&failing), "a 5xx may come after the job was stored");
    }
}
