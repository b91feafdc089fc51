//! [`RetryConfig`]: how a client of a rate-limited API should retry, to serve or to apply.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, SystemTime};

use ezthrottle_core::protocol::retry_after_delay;
use http::{HeaderMap, StatusCode};
use serde::{Serialize, Serializer};

/// A client's retry configuration, as the rate-limiting design recommends (its
/// `GET /api/v1/retry-config`): exponential backoff with jitter, and `Retry-After` honoured.
///
/// [`recommended`](Self::recommended) (also the `Default`) is the design's client code:
///
/// | field | value | why |
/// |---|---|---|
/// | `max_retries` | 3 | after the first attempt: four calls at most |
/// | `retry_statuses` | 429, 500, 502, 503, 504 | refused for now or failed on the server's side; never 501 or 4xx |
/// | `base_delay` | 1 s | the first backoff |
/// | `multiplier` | 2 | 1 s, 2 s, 4 s, ... |
/// | `jitter` | 1 s | a random 0 to 1 s added to each backoff, so clients refused together do not retry together |
/// | `max_delay` | 30 s | no backoff (jitter included) is longer |
/// | `honor_retry_after` | true | a `Retry-After` (seconds or an HTTP date) is the delay, exactly: never earlier |
/// | `max_retry_after` | 60 s | a longer `Retry-After` is not waited for: give up and report it |
///
/// Serve it as JSON (durations in seconds, snake_case):
/// `{"max_retries":3,"retry_statuses":[429,500,502,503,504],"base_delay_secs":1.0,"multiplier":2.0,"jitter_secs":1.0,"max_delay_secs":30.0,"honor_retry_after":true,"max_retry_after_secs":60.0}`
///
/// ```
/// use axum::{Json, Router, routing::get};
/// use ezthrottle_tower::rate_limit::RetryConfig;
///
/// let app: Router = Router::new().route("/api/v1/retry-config", get(|| async { Json(RetryConfig::recommended()) }));
/// # let _ = app;
/// ```
///
/// Or apply it: [`delay`](Self::delay) says how long to wait before the next attempt, or
/// not to retry.
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_tower::rate_limit::RetryConfig;
/// use http::{HeaderMap, HeaderValue, StatusCode, header};
///
/// let retry = RetryConfig::recommended();
/// let mut headers = HeaderMap::new();
/// headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
/// assert_eq!(retry.delay(0, StatusCode::TOO_MANY_REQUESTS, &headers), Some(Duration::from_secs(7)));
/// let backoff = retry.delay(1, StatusCode::BAD_GATEWAY, &HeaderMap::new()).unwrap();
/// assert!(backoff >= Duration::from_secs(2) && backoff <= Duration::from_secs(3));
/// assert_eq!(retry.delay(3, StatusCode::BAD_GATEWAY, &HeaderMap::new()), None, "three retries made");
/// assert_eq!(retry.delay(0, StatusCode::BAD_REQUEST, &HeaderMap::new()), None, "not worth retrying");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The statuses worth retrying.
    pub retry_statuses: Vec<u16>,
    /// The first backoff.
    #[serde(rename = "base_delay_secs", serialize_with = "seconds")]
    pub base_delay: Duration,
    /// Each backoff is the previous one times this.
    pub multiplier: f64,
    /// The most random time added to a backoff.
    #[serde(rename = "jitter_secs", serialize_with = "seconds")]
    pub jitter: Duration,
    /// The longest backoff, jitter included.
    #[serde(rename = "max_delay_secs", serialize_with = "seconds")]
    pub max_delay: Duration,
    /// Whether a `Retry-After` header is the delay (instead of the backoff).
    pub honor_retry_after: bool,
    /// The longest `Retry-After` waited for; a longer one is not retried.
    #[serde(rename = "max_retry_after_secs", serialize_with = "seconds")]
    pub max_retry_after: Duration,
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self::recommended()
    }
}

impl RetryConfig {
    /// The recommended configuration (see [the table](Self)).
    #[must_use]
    pub fn recommended() -> Self {
        Self {
            max_retries: 3,
            retry_statuses: vec![429, 500, 502, 503, 504],
            base_delay: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            honor_retry_after: true,
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// How long to wait before retrying a call that answered `status` with `headers`, after
    /// `retries` retries already made (0 before the first retry); `None` when it should not be
    /// retried (out of retries, a status not worth retrying, or a `Retry-After` over
    /// `max_retry_after`).
    #[must_use]
    pub fn delay(&self, retries: u32, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        if retries >= self.max_retries || !self.retry_statuses.contains(&status.as_u16()) {
            return None;
        }
        if self.honor_retry_after
            && let Some(after) = retry_after_delay(headers, SystemTime::now())
        {
            return (after <= self.max_retry_after).then_some(after);
        }
        Some(self.backoff(retries, jitter_fraction()))
    }

    /// `base_delay * multiplier^retries` plus `fraction` of the jitter, at most `max_delay`;
    /// saturating, so no configuration overflows.
    fn backoff(&self, retries: u32, fraction: f64) -> Duration {
        let exponent = i32::try_from(retries).unwrap_or(i32::MAX);
        let seconds = self.base_delay.as_secs_f64() * self.multiplier.powi(exponent)
            + self.jitter.as_secs_f64() * fraction.clamp(0.0, 1.0);
        Duration::try_from_secs_f64(seconds).unwrap_or(self.max_delay).min(self.max_delay)
    }
}

/// A random fraction in `[0, 1)`: std's randomly keyed hasher over the time.
fn jitter_fraction() -> f64 {
    let bits = RandomState::new().hash_one(SystemTime::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_its_jitter_and_stops_at_the_cap() {
        let retry = RetryConfig::recommended();
        for (retries, low) in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16)] {
            assert_eq!(retry.backoff(retries, 0.0), Duration::from_secs(low));
            assert_eq!(retry.backoff(retries, 1.0), Duration::from_secs(low + 1));
        }
        assert_eq!(retry.backoff(5, 0.5), Duration::from_secs(30));
        assert_eq!(retry.backoff(u32::MAX, 1.0), Duration::from_secs(30));
        let fractions: Vec<f64> = (0..64).map(|_| jitter_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)), "{fractions:?}");
        assert!(fractions.iter().any(|f| *f != fractions[0]), "random: {fractions:?}");
    }
}
