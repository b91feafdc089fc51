//! Which outcomes are forwarded to EZThrottle.

use std::fmt;

use http::{Response, StatusCode};

/// Decides whether the outcome of a call is forwarded to EZThrottle.
///
/// The policy sees the whole outcome: the response (status, headers, extensions; the body
/// is not read) or the error of the wrapped service. `R` is the response body type and `E`
/// the error type of the wrapped service. For `ForwardMiddleware` (feature `reqwest-middleware`)
/// the policy is a `ForwardPolicy<(), reqwest_middleware::Error>`: it sees the status and
/// headers of the `reqwest::Response` with an empty body.
///
/// Closures `Fn(&Result<http::Response<R>, E>) -> bool` are policies:
///
/// ```
/// use ezthrottle_tower::ForwardPolicy;
/// use http::{Response, StatusCode};
///
/// // Forward 429s only when the API says how long to wait.
/// let policy = |outcome: &Result<Response<()>, std::io::Error>| match outcome {
///     Ok(response) => {
///         response.status() == StatusCode::TOO_MANY_REQUESTS && response.headers().contains_key("retry-after")
///     }
///     Err(_) => false,
/// };
/// let limited = Response::builder().status(429).header("retry-after", "3").body(()).unwrap();
/// assert!(policy.should_forward(&Ok(limited)));
/// ```
pub trait ForwardPolicy<R, E> {
    /// Whether this outcome is handed to EZThrottle.
    fn should_forward(&self, outcome: &Result<Response<R>, E>) -> bool;
}

impl<F, R, E> ForwardPolicy<R, E> for F
where
    F: Fn(&Result<Response<R>, E>) -> bool,
{
    fn should_forward(&self, outcome: &Result<Response<R>, E>) -> bool {
        self(outcome)
    }
}

/// A set of HTTP status codes (100 to 999), copied cheaply and checked in constant time.
///
/// As a [`ForwardPolicy`] it forwards responses with one of its statuses and never errors.
///
/// ```
/// use ezthrottle_tower::StatusCodes;
/// use http::StatusCode;
///
/// let codes: StatusCodes = [StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY].into_iter().collect();
/// assert!(codes.contains(StatusCode::BAD_GATEWAY));
/// assert!(!codes.contains(StatusCode::OK));
/// assert_eq!(StatusCodes::default_forwardable().iter().map(|s| s.as_u16()).collect::<Vec<_>>(), [429, 500, 502, 503, 504]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusCodes {
    bits: [u64; 16],
}

impl StatusCodes {
    /// No status.
    pub const fn empty() -> Self {
        Self { bits: [0; 16] }
    }

    /// 429, 500, 502, 503 and 504: rate limited or the server is failing.
    pub fn default_forwardable() -> Self {
        [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ]
        .into_iter()
        .collect()
    }

    /// Adds `status`.
    #[must_use]
    pub fn with(mut self, status: StatusCode) -> Self {
        self.insert(status);
        self
    }

    /// Adds `status`.
    pub fn insert(&mut self, status: StatusCode) {
        let code = usize::from(status.as_u16());
        if let Some(word) = self.bits.get_mut(code / 64) {
            *word |= 1 << (code % 64);
        }
    }

    /// Removes `status`.
    pub fn remove(&mut self, status: StatusCode) {
        let code = usize::from(status.as_u16());
        if let Some(word) = self.bits.get_mut(code / 64) {
            *word &= !(1 << (code % 64));
        }
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: StatusCode) -> bool {
        let code = usize::from(status.as_u16());
        self.bits.get(code / 64).is_some_and(|word| word & (1 << (code % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|word| *word == 0)
    }

    /// The statuses in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = StatusCode> + '_ {
        (100u16..1000).filter_map(|code| StatusCode::from_u16(code).ok()).filter(|status| self.contains(*status))
    }
}

impl FromIterator<StatusCode> for StatusCodes {
    fn from_iter<I: IntoIterator<Item = StatusCode>>(iter: I) -> Self {
        let mut codes = Self::empty();
        for status in iter {
            codes.insert(status);
        }
        codes
    }
}

impl<const N: usize> From<[StatusCode; N]> for StatusCodes {
    fn from(statuses: [StatusCode; N]) -> Self {
        statuses.into_iter().collect()
    }
}

impl fmt::Debug for StatusCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|status| status.as_u16())).finish()
    }
}

impl<R, E> ForwardPolicy<R, E> for StatusCodes {
    fn should_forward(&self, outcome: &Result<Response<R>, E>) -> bool {
        outcome.as_ref().is_ok_and(|response| self.contains(response.status()))
    }
}

/// The default policy: forward 429, 500, 502, 503 and 504, and every error of the wrapped
/// service (for an HTTP client, a transport failure: refused or reset connection, timeout).
///
/// Change it through the layer's [`forward_on`](crate::ForwardLayer::forward_on),
/// [`forward_on_status`](crate::ForwardLayer::forward_on_status) and
/// [`forward_on_transport_error`](crate::ForwardLayer::forward_on_transport_error), or
/// replace it with [`policy`](crate::ForwardLayer::policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultForwardPolicy {
    statuses: StatusCodes,
    transport_errors: bool,
}

impl DefaultForwardPolicy {
    /// 429, 500, 502, 503, 504 and transport errors.
    pub fn new() -> Self {
        Self { statuses: StatusCodes::default_forwardable(), transport_errors: true }
    }

    /// The statuses that forward.
    pub fn statuses(&self) -> StatusCodes {
        self.statuses
    }

    /// Whether errors of the wrapped service forward.
    pub fn transport_errors(&self) -> bool {
        self.transport_errors
    }

    /// Replaces the statuses that forward.
    #[must_use]
    pub fn forward_on(mut self, statuses: impl Into<StatusCodes>) -> Self {
        self.statuses = statuses.into();
        self
    }

    /// Adds one status that forwards.
    #[must_use]
    pub fn forward_on_status(mut self, status: StatusCode) -> Self {
        self.statuses.insert(status);
        self
    }

    /// Whether errors of the wrapped service forward (default `true`).
    #[must_use]
    pub fn forward_on_transport_error(mut self, enabled: bool) -> Self {
        self.transport_errors = enabled;
        self
    }
}

impl Default for DefaultForwardPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<R, E> ForwardPolicy<R, E> for DefaultForwardPolicy {
    fn should_forward(&self, outcome: &Result<Response<R>, E>) -> bool {
        match outcome {
            Ok(response) => self.statuses.contains(response.status()),
            Err(_) => self.transport_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Result<Response<()>, &'static str> {
        Ok(Response::builder().status(code).body(()).unwrap())
    }

    #[test]
    fn default_policy_forwards_rate_limits_server_errors_and_transport_errors() {
        let policy = DefaultForwardPolicy::new();
        for code in [429, 500, 502, 503, 504] {
            assert!(policy.should_forward(&status(code)), "{code}");
        }
        for code in [200, 201, 301, 400, 404, 501, 505] {
            assert!(!policy.should_forward(&status(code)), "{code}");
        }
        assert!(policy.should_forward(&Err::<Response<()>, _>("reset")));
        assert!(!policy.forward_on_transport_error(false).should_forward(&Err::<Response<()>, _>("reset")));
    }

    #[test]
    fn status_codes_cover_the_whole_range() {
        let mut codes = StatusCodes::empty().with(StatusCode::CONTINUE).with(StatusCode::from_u16(999).unwrap());
        assert_eq!(format!("{codes:?}"), "{100, 999}");
        codes.remove(StatusCode::CONTINUE);
        assert!(!codes.contains(StatusCode::CONTINUE));
        assert!(!codes.is_empty());
        assert!(StatusCodes::empty().is_empty());
    }
}
