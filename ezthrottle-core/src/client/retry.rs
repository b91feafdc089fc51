//! When a submission tries again: bounded attempts, full-jitter backoff, never past the
//! submission deadline (see [`EZThrottleBuilder::submit_deadline`](super::EZThrottleBuilder::submit_deadline)).

use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode};

use super::EZThrottle;
use super::breaker::{Admission, later};
use super::transport::Answer;
use crate::error::Error;
use crate::protocol::{SubmitReceipt, paths};

/// Attempts of one submission, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 4;
/// The backoff before the first retry is drawn from `0..=BASE_BACKOFF`; it doubles.
const BASE_BACKOFF: Duration = Duration::from_millis(50);
/// The longest backoff drawn from.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The least time left for an attempt worth starting.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(20);

impl EZThrottle {
    /// Posts the job's JSON `body`, again while [`wait_before_retry`] allows, within the
    /// submission deadline. A breaker probe makes a single attempt.
    pub(super) async fn submit_with_retries(&self, body: String, admission: Admission) -> Result<SubmitReceipt, Error> {
        let end = later(Instant::now(), self.inner.submit_deadline);
        let max_attempts = if admission == Admission::Probe { 1 } else { MAX_ATTEMPTS };
        // An earlier attempt's answer: a later "not sent" must not hide that one was sent.
        let mut answered: Option<Error> = None;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timeout = end.saturating_duration_since(Instant::now()).min(self.inner.timeout);
            let attempt = self.call_within(Method::POST, paths::JOBS, Some(body.clone()), timeout).await;
            let error = match attempt.and_then(Answer::success_json) {
                Ok(receipt) => return Ok(receipt),
                Err(error) => error,
            };
            let remaining = end.saturating_duration_since(Instant::now());
            let wait = (attempts < max_attempts)
                .then(|| wait_before_retry(&error, attempts, remaining, SystemTime::now()))
                .flatten();
            let Some(wait) = wait else {
                return Err(match answered {
                    Some(earlier) if error.is_not_sent() => earlier,
                    _ => error,
                });
            };
            tracing::debug!(target: crate::telemetry::TARGET_CLIENT, %error, attempts, ?wait, "submission failed; retrying");
            if !error.is_not_sent() {
                answered = Some(error);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// How long to wait before attempt `attempts + 1`, or `None` to return `error` now:
/// after the last attempt, for an error a retry cannot fix (or could make run twice), and
/// when the wait would not end with time left in the deadline (`remaining`).
pub(crate) fn wait_before_retry(
    error: &Error,
    attempts: u32,
    remaining: Duration,
    now: SystemTime,
) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let wait = match error {
        // Nothing was sent, or EZThrottle (or the proxy) said "not now".
        Error::Unreachable { .. } => backoff(attempts),
        Error::Api { status, .. } if matches!(*status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE) => {
            backoff(attempts)
        }
        // A 429 is retried only when it says when, and that fits; a time already past
        // still waits a backoff, so a wrong clock cannot make a busy loop.
        Error::RateLimited { retry_at: Some(at), .. } => {
            at.duration_since(now).unwrap_or_default().max(backoff(attempts))
        }
        _ => return None,
    };
    // The next attempt needs some of the deadline too.
    (wait.saturating_add(MIN_ATTEMPT_TIME) < remaining).then_some(wait)
}

/// Full jitter: uniform in `0..=min(MAX_BACKOFF, BASE_BACKOFF * 2^(attempts - 1))`.
fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    let ceiling = BASE_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random_u64() % ceiling_nanos.saturating_add(1))
}

/// A cheap random number (a v4 UUID's random bits): jitter needs spread, not secrecy.
fn random_u64() -> u64 {
    let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
    high ^ low
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Origin;

    const PLENTY: Duration = Duration::from_secs(60);

    fn api(status: StatusCode) -> Error {
        Error::Api { origin: Origin::EZThrottle, status, message: String::new() }
    }

    fn limited(retry_at: Option<SystemTime>) -> Error {
        Error::RateLimited { origin: Origin::EZThrottle, message: String::new(), retry_at }
    }

    #[test]
    fn backoff_is_jittered_within_a_doubling_ceiling() {
        for attempts in 1..=MAX_ATTEMPTS + 20 {
            let ceiling = BASE_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF);
            for _ in 0..50 {
                assert!(backoff(attempts) <= ceiling, "attempt {attempts}");
            }
        }
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(3)).collect();
        assert!(draws.len() > 1, "jittered: {draws:?}");
    }

    #[test]
    fn what_is_retried() {
        let now = SystemTime::now();
        assert!(wait_before_retry(&api(StatusCode::BAD_GATEWAY), 1, PLENTY, now).is_some());
        assert!(wait_before_retry(&api(StatusCode::SERVICE_UNAVAILABLE), 1, PLENTY, now).is_some());
        for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::GATEWAY_TIMEOUT, StatusCode::BAD_REQUEST] {
            assert_eq!(wait_before_retry(&api(status), 1, PLENTY, now), None, "{status}");
        }
        assert_eq!(wait_before_retry(&limited(None), 1, PLENTY, now), None, "a 429 that does not say when");
        let soon = now + Duration::from_secs(2);
        assert!(wait_before_retry(&limited(Some(soon)), 1, PLENTY, now) >= Some(Duration::from_secs(2)));
        assert_eq!(wait_before_retry(&limited(Some(soon)), 1, Duration::from_secs(1), now), None, "past the deadline");
        let past = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
        assert!(wait_before_retry(&limited(Some(past)), 1, PLENTY, now).is_some_and(|wait| wait <= BASE_BACKOFF));
        assert_eq!(wait_before_retry(&Error::NoWebhookSecrets, 1, PLENTY, now), None);
    }

    #[test]
    fn attempts_and_the_deadline_bound_the_retries() {
        let now = SystemTime::now();
        let error = api(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(wait_before_retry(&error, MAX_ATTEMPTS, PLENTY, now), None);
        assert_eq!(wait_before_retry(&error, 1, Duration::ZERO, now), None);
        assert_eq!(wait_before_retry(&error, u32::MAX, PLENTY, now), None);
    }
}
