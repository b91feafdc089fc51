//! When a failed call may be run again by EZThrottle: one rule for every entry point.
//!
//! Forwarding a failed call means EZThrottle makes it once more. That is harmless when the
//! API did not run the first attempt, or when running it twice changes nothing. The rule
//! below is applied the same way by the tower `ForwardLayer`, the reqwest
//! `ForwardMiddleware`, `#[auto_forward]` (and `run_or_forward`) and a FRUGAL
//! [`Step`](crate::Step): the step's [`ReplayPolicy`] (set on the layer's template, or on the step)
//! decides, from the request's method, whether it carries an `Idempotency-Key` header, and
//! how far the failed call got ([`CallFailure`]).
//!
//! With the default, [`ReplayPolicy::WhenSafe`]:
//!
//! | request | not sent (refused, DNS, TLS) | 429 | other status (5xx, ...) | sent, no answer (timeout, reset) |
//! |---|---|---|---|---|
//! | `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE` | forwarded | forwarded | forwarded | forwarded |
//! | `POST`, `PATCH`, any other method | forwarded | forwarded | **not forwarded** | **not forwarded** |
//! | any method with an `Idempotency-Key` header | forwarded | forwarded | forwarded | forwarded |
//!
//! "Forwarded" means the rule allows it: the entry point's own policy (which statuses,
//! whether transport errors) still has to select the failure. A call that is not
//! forwarded returns its original answer or error, untouched. [`ReplayPolicy::Always`] is
//! the explicit opt-in for APIs that de-duplicate by other means: every selected failure is
//! forwarded, whatever the method.
//!
//! The rule judges failures the SDK observed (a FRUGAL step's own attempt, a
//! [`FailedCall`](crate::FailedCall) that `on_status` selected, a request through a layer).
//! A `ForwardToEZThrottle` that user code builds and returns is the user's explicit request:
//! it is forwarded as built.
//!
//! The idempotent methods are RFC 9110's (section 9.2.2). A request's `Idempotency-Key`
//! (or `X-Idempotency-Key`) header goes to the API with the job, so an API that honours it
//! runs the call once however often it is sent.

use http::{HeaderMap, Method, StatusCode};

use crate::protocol::headers::IDEMPOTENCY_KEY_HEADERS;

/// How far a failed call got: what decides whether running it again can do harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallFailure {
    /// Nothing reached the API: the connection was refused, the name did not resolve, TLS
    /// failed, or the request was never written.
    NotSent,
    /// The API answered `429 Too Many Requests`: it refused the call without running it.
    RateLimited,
    /// The API answered this status (not 429): it may have run the call.
    Status(StatusCode),
    /// The request was sent and no answer came (a timeout, a reset or closed connection):
    /// the API may have run it.
    NoAnswer,
}

impl CallFailure {
    /// The failure an answer with `status` stands for.
    pub fn of_status(status: StatusCode) -> Self {
        if status == StatusCode::TOO_MANY_REQUESTS { Self::RateLimited } else { Self::Status(status) }
    }

    /// Whether the API provably did not run the call.
    pub fn proves_not_run(self) -> bool {
        matches!(self, Self::NotSent | Self::RateLimited)
    }

    /// How far a transport error got, from the first error in its chain of sources that
    /// tells: a `reqwest::Error` from connecting, or an `io::Error` of a refused or
    /// unreachable connection, is [`NotSent`](Self::NotSent); anything else (unknown) is
    /// [`NoAnswer`](Self::NoAnswer).
    #[cfg(feature = "client")]
    pub fn of_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(http) = error.downcast_ref::<reqwest::Error>() {
                if http.is_connect() {
                    return Self::NotSent;
                }
            } else if let Some(io) = error.downcast_ref::<std::io::Error>()
                && is_connect_failure(io.kind())
            {
                return Self::NotSent;
            }
            current = error.source();
        }
        Self::NoAnswer
    }
}

#[cfg(feature = "client")]
fn is_connect_failure(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind;
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::AddrNotAvailable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::HostUnreachable
    )
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSent => f.write_str("the request was not sent"),
            Self::RateLimited => f.write_str("the API answered 429"),
            Self::Status(status) => write!(f, "the API answered {status}"),
            Self::NoAnswer => f.write_str("the request was sent and no answer came"),
        }
    }
}

/// Which failed calls may be run again by EZThrottle (see the [module](self) table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplayPolicy {
    /// The default: an idempotent method, or a request with an `Idempotency-Key` header,
    /// for any failure; any other request only when the API provably did not run it (not
    /// sent, or 429).
    #[default]
    WhenSafe,
    /// Every failure, whatever the method: for APIs that make a repeated call harmless by
    /// other means. An explicit opt-in.
    Always,
}

impl ReplayPolicy {
    /// Whether a `method` request (with an `Idempotency-Key` header when
    /// `has_idempotency_key`) that failed with `failure` may be run again.
    ///
    /// ```
    /// use ezthrottle_core::replay::{CallFailure, ReplayPolicy};
    /// use ezthrottle_core::{Method, StatusCode};
    ///
    /// let rule = ReplayPolicy::WhenSafe;
    /// let failed = CallFailure::Status(StatusCode::BAD_GATEWAY);
    /// assert!(rule.allows(&Method::GET, false, failed));
    /// assert!(!rule.allows(&Method::POST, false, failed), "the POST may have run");
    /// assert!(rule.allows(&Method::POST, false, CallFailure::RateLimited));
    /// assert!(rule.allows(&Method::POST, true, failed), "its key makes a repeat harmless");
    /// assert!(ReplayPolicy::Always.allows(&Method::POST, false, CallFailure::NoAnswer));
    /// ```
    pub fn allows(self, method: &Method, has_idempotency_key: bool, failure: CallFailure) -> bool {
        match self {
            Self::Always => true,
            Self::WhenSafe => is_idempotent(method) || has_idempotency_key || failure.proves_not_run(),
        }
    }

    /// [`allows`](Self::allows) for a request with these `headers`.
    pub fn allows_request(self, method: &Method, headers: &HeaderMap, failure: CallFailure) -> bool {
        self.allows(method, has_idempotency_key(headers), failure)
    }
}

/// Whether running `method` twice has the effect of running it once (RFC 9110 §9.2.2):
/// `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// Whether `headers` carry a non-empty `Idempotency-Key` (or `X-Idempotency-Key`).
pub fn has_idempotency_key(headers: &HeaderMap) -> bool {
    IDEMPOTENCY_KEY_HEADERS.iter().filter_map(|name| headers.get(*name)).any(|value| !is_blank_key(value.as_bytes()))
}

/// Whether a key header's value holds no key: text that is only whitespace. The one
/// definition for a request's `HeaderMap` and a step's headers.
pub(crate) fn is_blank_key(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|text| text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDEMPOTENT: [Method; 6] =
        [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE, Method::PUT, Method::DELETE];

    fn failures() -> [CallFailure; 5] {
        [
            CallFailure::NotSent,
            CallFailure::RateLimited,
            CallFailure::Status(StatusCode::INTERNAL_SERVER_ERROR),
            CallFailure::Status(StatusCode::SERVICE_UNAVAILABLE),
            CallFailure::NoAnswer,
        ]
    }

    #[test]
    fn idempotent_methods_replay_on_every_failure() {
        for method in IDEMPOTENT {
            for failure in failures() {
                assert!(ReplayPolicy::WhenSafe.allows(&method, false, failure), "{method} {failure}");
            }
        }
    }

    #[test]
    fn other_methods_replay_only_what_provably_did_not_run() {
        let custom = Method::from_bytes(b"PURGE").unwrap();
        for method in [Method::POST, Method::PATCH, Method::CONNECT, custom] {
            for failure in failures() {
                let expected = matches!(failure, CallFailure::NotSent | CallFailure::RateLimited);
                assert_eq!(ReplayPolicy::WhenSafe.allows(&method, false, failure), expected, "{method} {failure}");
                assert!(ReplayPolicy::WhenSafe.allows(&method, true, failure), "{method} {failure} with a key");
                assert!(ReplayPolicy::Always.allows(&method, false, failure), "{method} {failure} always");
            }
        }
    }

    #[test]
    fn either_key_header_counts_but_not_an_empty_one() {
        let mut headers = HeaderMap::new();
        assert!(!has_idempotency_key(&headers));
        headers.insert(crate::protocol::headers::IDEMPOTENCY_KEY_HEADER, " ".parse().unwrap());
        assert!(!has_idempotency_key(&headers));
        headers.insert(crate::protocol::headers::X_IDEMPOTENCY_KEY_HEADER, "order-7".parse().unwrap());
        assert!(has_idempotency_key(&headers));
        let failed = CallFailure::of_status(StatusCode::BAD_GATEWAY);
        assert!(ReplayPolicy::WhenSafe.allows_request(&Method::POST, &headers, failed));
    }

    #[test]
    fn a_429_is_rate_limited_and_proves_not_run() {
        assert_eq!(CallFailure::of_status(StatusCode::TOO_MANY_REQUESTS), CallFailure::RateLimited);
        assert!(CallFailure::of_status(StatusCode::TOO_MANY_REQUESTS).proves_not_run());
        assert!(!CallFailure::of_status(StatusCode::BAD_GATEWAY).proves_not_run());
    }

    #[cfg(feature = "client")]
    #[test]
    fn a_refused_connection_in_the_chain_is_not_sent() {
        #[derive(Debug, thiserror::Error)]
        #[error("call failed")]
        struct Wrapper(#[source] std::io::Error);
        let refused = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(CallFailure::of_error(&refused), CallFailure::NotSent);
        let reset = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(CallFailure::of_error(&reset), CallFailure::NoAnswer);
    }
}
