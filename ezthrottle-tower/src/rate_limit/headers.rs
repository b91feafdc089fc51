//! What a rate-limited response says: `RateLimit-*` (and `X-RateLimit-*`) on every answer,
//! `Retry-After` and a JSON body on a refusal, pace hints for EZThrottle.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::algorithm::Decision;

/// Which header names carry the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft) and the
    /// `X-RateLimit-*` forms many clients still read (the default).
    #[default]
    Both,
    /// Only `RateLimit-*`.
    Standard,
    /// Only `X-RateLimit-*`.
    Legacy,
    /// None (refusals still carry `Retry-After`).
    None,
}

const STANDARD: [HeaderName; 3] = [
    HeaderName::from_static("ratelimit-limit"),
    HeaderName::from_static("ratelimit-remaining"),
    HeaderName::from_static("ratelimit-reset"),
];
const LEGACY: [HeaderName; 3] = [
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
];

/// Whole seconds, rounded up: a client waiting this long is never early. Saturating: a
/// store (a custom one too) may answer any duration, `Duration::MAX` included.
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs().saturating_add(u64::from(duration.subsec_nanos() > 0))
}

impl HeaderStyle {
    /// Writes `decision` (the tightest limit of the request) into `headers`.
    pub(crate) fn write(self, decision: &Decision, headers: &mut HeaderMap) {
        let names: &[[HeaderName; 3]] = match self {
            Self::Both => &[STANDARD, LEGACY],
            Self::Standard => &[STANDARD],
            Self::Legacy => &[LEGACY],
            Self::None => &[],
        };
        let values = [
            HeaderValue::from(decision.limit),
            HeaderValue::from(decision.remaining),
            HeaderValue::from(ceil_secs(decision.reset)),
        ];
        for family in names {
            for (name, value) in family.iter().zip(&values) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// The 429 answer: which rule refused and for how long, as JSON.
pub(crate) fn refusal(rule: &str, retry_after: Duration) -> (StatusCode, HeaderMap, Bytes) {
    let seconds = ceil_secs(retry_after).max(1);
    let body = serde_json::json!({"error": "rate limit exceeded", "limit": rule, "retry_after": seconds});
    (StatusCode::TOO_MANY_REQUESTS, json_headers(seconds), Bytes::from(body.to_string()))
}

/// The 503 answer of a fail-closed limiter whose store is unavailable.
pub(crate) fn unavailable() -> (StatusCode, HeaderMap, Bytes) {
    let body = serde_json::json!({"error": "rate limiter unavailable", "retry_after": 1});
    (StatusCode::SERVICE_UNAVAILABLE, json_headers(1), Bytes::from(body.to_string()))
}

fn json_headers(retry_after_secs: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_rounds_up_and_both_families_are_written() {
        let decision = Decision {
            allowed: true,
            limit: 10,
            remaining: 3,
            reset: Duration::from_millis(1200),
            retry_after: Duration::ZERO,
        };
        let mut headers = HeaderMap::new();
        HeaderStyle::Both.write(&decision, &mut headers);
        assert_eq!(headers["ratelimit-limit"], "10");
        assert_eq!(headers["ratelimit-remaining"], "3");
        assert_eq!(headers["ratelimit-reset"], "2");
        assert_eq!(headers["x-ratelimit-remaining"], "3");
        let mut headers = HeaderMap::new();
        HeaderStyle::Standard.write(&decision, &mut headers);
        assert!(headers.get("x-ratelimit-limit").is_none());
    }

    #[test]
    fn the_longest_durations_are_written_without_overflow() {
        assert_eq!(ceil_secs(Duration::MAX), u64::MAX);
        let decision =
            Decision { allowed: false, limit: 1, remaining: 0, reset: Duration::MAX, retry_after: Duration::MAX };
        let mut headers = HeaderMap::new();
        HeaderStyle::Both.write(&decision, &mut headers);
        assert_eq!(headers["ratelimit-reset"], u64::MAX.to_string().as_str());
        let (_, headers, _) = refusal("r", Duration::MAX);
        assert_eq!(headers["retry-after"], u64::MAX.to_string().as_str());
    }
}
