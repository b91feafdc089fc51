//! The two algorithms, the rules that use them, and what a check decides.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use super::scope::Scope;

/// How a limit counts requests.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Algorithm {
    /// `burst` requests at once, refilled at `rate_per_sec`: smooth rates with bursts.
    TokenBucket {
        /// Tokens added per second.
        rate_per_sec: f64,
        /// Bucket size: the most requests admitted at once.
        burst: u32,
    },
    /// At most `limit` requests in any `window`, exactly.
    ///
    /// A true sliding log: every admitted request's time is kept until it leaves the
    /// window, so no window of that length ever holds more than `limit` admissions (no
    /// approximation error; memory is `limit` timestamps per key).
    SlidingWindow {
        /// Requests admitted per window.
        limit: u32,
        /// The window's length.
        window: Duration,
    },
}

impl Algorithm {
    /// A token bucket refilled at `rate_per_sec` holding at most `burst` tokens.
    pub fn token_bucket(rate_per_sec: f64, burst: u32) -> Self {
        Self::TokenBucket { rate_per_sec, burst }
    }

    /// At most `limit` requests in any `window`.
    pub fn sliding_window(limit: u32, window: Duration) -> Self {
        Self::SlidingWindow { limit, window }
    }

    /// The most requests admitted at once (the `RateLimit-Limit` value).
    pub fn limit(&self) -> u32 {
        match self {
            Self::TokenBucket { burst, .. } => *burst,
            Self::SlidingWindow { limit, .. } => *limit,
        }
    }

    /// The sustained rate, requests per second.
    pub fn rate_per_sec(&self) -> f64 {
        match self {
            Self::TokenBucket { rate_per_sec, .. } => *rate_per_sec,
            Self::SlidingWindow { limit, window } => f64::from(*limit) / window.as_secs_f64().max(f64::EPSILON),
        }
    }

    /// How long an idle key's state must be kept before it is equivalent to a fresh one.
    pub(crate) fn idle_ttl(&self) -> Duration {
        match self {
            Self::TokenBucket { rate_per_sec, burst } => {
                Duration::try_from_secs_f64(f64::from(*burst) / rate_per_sec.max(f64::EPSILON)).unwrap_or(Duration::MAX)
            }
            Self::SlidingWindow { window, .. } => *window,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Self::TokenBucket { rate_per_sec, burst }
                if !(rate_per_sec.is_finite() && *rate_per_sec > 0.0) || *burst == 0 =>
            {
                Err(format!("token bucket needs a positive rate and burst, got {rate_per_sec}/s burst {burst}"))
            }
            Self::SlidingWindow { limit, window } if *limit == 0 || window.is_zero() => {
                Err(format!("sliding window needs a positive limit and window, got {limit} per {window:?}"))
            }
            _ => Ok(()),
        }
    }
}

/// One limit: a name (reported to clients), a scope (whose requests count together)
/// and an algorithm.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) name: Cow<'static, str>,
    pub(crate) scope: Scope,
    pub(crate) algorithm: Algorithm,
}

impl Rule {
    /// A rule named `name` (e.g. `per_user`) limiting each `scope` key with `algorithm`.
    pub fn new(name: impl Into<Cow<'static, str>>, scope: Scope, algorithm: Algorithm) -> Self {
        Self { name: name.into(), scope, algorithm }
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// What one check of one key decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted (and was counted).
    pub allowed: bool,
    /// The limit (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still admitted right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the limit is fully available again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When refused: how long until a request would be admitted (`Retry-After`).
    pub retry_after: Duration,
}

/// Token-bucket state of one key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    updated: Duration,
}

impl Bucket {
    pub(crate) fn full(burst: u32, now: Duration) -> Self {
        Self { tokens: f64::from(burst), updated: now }
    }

    /// Refills for the time since the last check, then takes one token if there is one.
    pub(crate) fn take(&mut self, rate_per_sec: f64, burst: u32, now: Duration) -> Decision {
        let elapsed = now.saturating_sub(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(f64::from(burst));
        self.updated = now.max(self.updated);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let missing = |target: f64| {
            Duration::try_from_secs_f64((target - self.tokens).max(0.0) / rate_per_sec).unwrap_or(Duration::MAX)
        };
        Decision {
            allowed,
            limit: burst,
            remaining: self.tokens.floor() as u32,
            reset: missing(f64::from(burst)),
            retry_after: if allowed { Duration::ZERO } else { missing(1.0) },
        }
    }
}

/// Sliding-log state of one key: the admission times still inside the window.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    admitted: VecDeque<Duration>,
}

impl Log {
    /// Forgets admissions that left the window, then admits one if there is room.
    pub(crate) fn take(&mut self, limit: u32, window: Duration, now: Duration) -> Decision {
        while self.admitted.front().is_some_and(|at| now.saturating_sub(*at) >= window) {
            self.admitted.pop_front();
        }
        let count = u32::try_from(self.admitted.len()).unwrap_or(u32::MAX);
        let allowed = count < limit;
        if allowed {
            self.admitted.push_back(now);
        }
        let leaves = |at: Option<&Duration>| at.map_or(Duration::ZERO, |at| (*at + window).saturating_sub(now));
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(count + u32::from(allowed)),
            reset: leaves(self.admitted.back()),
            retry_after: if allowed { Duration::ZERO } else { leaves(self.admitted.front()) },
        }
    }

    pub(crate) fn last(&self) -> Option<Duration> {
        self.admitted.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let mut bucket = Bucket::full(10, Duration::ZERO);
        let admitted = (0..50).filter(|_| bucket.take(5.0, 10, Duration::ZERO).allowed).count();
        assert_eq!(admitted, 10);
        let refused = bucket.take(5.0, 10, Duration::ZERO);
        assert_eq!(refused.retry_after, Duration::from_millis(200));
        let admitted = (0..50).filter(|_| bucket.take(5.0, 10, S).allowed).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn a_log_never_holds_more_than_its_limit_in_any_window() {
        let mut log = Log::default();
        let mut admitted = Vec::new();
        for ms in (0..5000).step_by(7) {
            let now = Duration::from_millis(ms);
            if log.take(10, S, now).allowed {
                admitted.push(now);
            }
        }
        for (i, start) in admitted.iter().enumerate() {
            let in_window = admitted[i..].iter().take_while(|at| **at - *start < S).count();
            assert!(in_window <= 10, "{in_window} admissions in the window starting at {start:?}");
        }
        assert!(admitted.len() >= 50, "{}", admitted.len());
    }

    #[test]
    fn a_log_reports_when_room_comes_back() {
        let mut log = Log::default();
        for ms in [0, 100, 200] {
            assert!(log.take(3, S, Duration::from_millis(ms)).allowed);
        }
        let refused = log.take(3, S, Duration::from_millis(500));
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert_eq!(refused.remaining, 0);
        assert!(log.take(3, S, Duration::from_millis(1000)).allowed);
    }
}
