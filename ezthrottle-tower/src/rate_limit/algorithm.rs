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

    /// The longest period a rule may span: a sliding window, or the time a token bucket
    /// takes to refill from empty (`burst / rate_per_sec`). Ten years (3,650 days): far
    /// beyond any quota, and small enough that every deadline (a Redis expiry in
    /// milliseconds included) is exact and cannot overflow.
    pub const MAX_PERIOD: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

    /// The shortest sliding window: 1 ms, the resolution of the Redis store's clock.
    pub const MIN_WINDOW: Duration = Duration::from_millis(1);

    /// Whether the algorithm can be enforced, naming the field at fault when not: a rate
    /// that is not finite and above zero, a zero burst or limit, a window under
    /// [`MIN_WINDOW`](Self::MIN_WINDOW), or a period over [`MAX_PERIOD`](Self::MAX_PERIOD).
    /// [`RateLimitLayer::rule`](super::RateLimitLayer::rule) checks every rule with it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ezthrottle_tower::rate_limit::Algorithm;
    ///
    /// assert!(Algorithm::token_bucket(5.0, 10).validate().is_ok());
    /// let error = Algorithm::token_bucket(f64::NAN, 10).validate().unwrap_err();
    /// assert_eq!(error.field(), "rate_per_sec");
    /// let error = Algorithm::sliding_window(10, Duration::ZERO).validate().unwrap_err();
    /// assert_eq!(error.field(), "window");
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidAlgorithm`], naming the field.
    pub fn validate(&self) -> Result<(), InvalidAlgorithm> {
        let invalid = |field, problem: String| Err(InvalidAlgorithm { field, problem });
        match *self {
            Self::TokenBucket { rate_per_sec, .. } if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) => {
                invalid("rate_per_sec", format!("must be finite and above zero, got {rate_per_sec}"))
            }
            Self::TokenBucket { burst: 0, .. } => invalid("burst", "must be at least 1, got 0".into()),
            Self::TokenBucket { rate_per_sec, burst }
                if f64::from(burst) / rate_per_sec > Self::MAX_PERIOD.as_secs_f64() =>
            {
                invalid(
                    "rate_per_sec",
                    format!(
                        "refills a burst of {burst} in {:.0} s, longer than the maximum period of {} s",
                        f64::from(burst) / rate_per_sec,
                        Self::MAX_PERIOD.as_secs()
                    ),
                )
            }
            Self::SlidingWindow { limit: 0, .. } => invalid("limit", "must be at least 1, got 0".into()),
            Self::SlidingWindow { window, .. } if window < Self::MIN_WINDOW => {
                invalid("window", format!("must be at least {:?}, got {window:?}", Self::MIN_WINDOW))
            }
            Self::SlidingWindow { window, .. } if window > Self::MAX_PERIOD => invalid(
                "window",
                format!("must be at most the maximum period of {} s, got {window:?}", Self::MAX_PERIOD.as_secs()),
            ),
            _ => Ok(()),
        }
    }
}

/// An [`Algorithm`] that cannot be enforced: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct InvalidAlgorithm {
    field: &'static str,
    problem: String,
}

impl InvalidAlgorithm {
    /// The field at fault: `rate_per_sec`, `burst`, `limit` or `window`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

/// A [`Rule`] refused by [`RateLimitLayer::try_rule`](super::RateLimitLayer::try_rule): its
/// name and what is wrong with its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate-limit rule {rule:?}: {source}")]
pub struct InvalidRule {
    rule: String,
    source: InvalidAlgorithm,
}

impl InvalidRule {
    pub(crate) fn new(rule: &str, source: InvalidAlgorithm) -> Self {
        Self { rule: rule.to_owned(), source }
    }

    /// The rule's name.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// What is wrong with its algorithm.
    pub fn algorithm(&self) -> &InvalidAlgorithm {
        &self.source
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
        self.refill(rate_per_sec, burst, now);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        self.decision(allowed, rate_per_sec, burst)
    }

    /// What a request now would get, nothing taken: `remaining` is the tokens there are.
    pub(crate) fn peek(&self, rate_per_sec: f64, burst: u32, now: Duration) -> Decision {
        let mut bucket = *self;
        bucket.refill(rate_per_sec, burst, now);
        bucket.decision(bucket.tokens >= 1.0, rate_per_sec, burst)
    }

    fn refill(&mut self, rate_per_sec: f64, burst: u32, now: Duration) {
        let elapsed = now.saturating_sub(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(f64::from(burst));
        self.updated = now.max(self.updated);
    }

    fn decision(&self, allowed: bool, rate_per_sec: f64, burst: u32) -> Decision {
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
        let count = count.saturating_add(u32::from(allowed));
        Self::decision(count, self.admitted.front(), self.admitted.back(), allowed, limit, window, now)
    }

    /// What a request now would get, nothing admitted: `remaining` is the room there is.
    pub(crate) fn peek(&self, limit: u32, window: Duration, now: Duration) -> Decision {
        let inside =
            self.admitted.iter().position(|at| now.saturating_sub(*at) < window).unwrap_or(self.admitted.len());
        let count = u32::try_from(self.admitted.len().saturating_sub(inside)).unwrap_or(u32::MAX);
        let allowed = count < limit;
        let (first, last) = if count == 0 { (None, None) } else { (self.admitted.get(inside), self.admitted.back()) };
        Self::decision(count, first, last, allowed, limit, window, now)
    }

    /// The decision, `count` admissions inside the window (this one included if it was
    /// admitted), the first and last of them at `first` and `last`.
    fn decision(
        count: u32,
        first: Option<&Duration>,
        last: Option<&Duration>,
        allowed: bool,
        limit: u32,
        window: Duration,
        now: Duration,
    ) -> Decision {
        // Saturating: an algorithm built directly (not checked by a layer) may hold any window.
        let leaves =
            |at: Option<&Duration>| at.map_or(Duration::ZERO, |at| at.saturating_add(window).saturating_sub(now));
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(count),
            reset: leaves(last),
            retry_after: if allowed { Duration::ZERO } else { leaves(first) },
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
    fn every_unusable_field_is_named() {
        let day = Duration::from_secs(86_400);
        for (algorithm, field) in [
            (Algorithm::token_bucket(0.0, 1), "rate_per_sec"),
            (Algorithm::token_bucket(-1.0, 1), "rate_per_sec"),
            (Algorithm::token_bucket(f64::NAN, 1), "rate_per_sec"),
            (Algorithm::token_bucket(f64::INFINITY, 1), "rate_per_sec"),
            (Algorithm::token_bucket(1e-300, 1), "rate_per_sec"),
            (Algorithm::token_bucket(1.0, 0), "burst"),
            (Algorithm::sliding_window(0, S), "limit"),
            (Algorithm::sliding_window(1, Duration::ZERO), "window"),
            (Algorithm::sliding_window(1, Duration::from_micros(999)), "window"),
            (Algorithm::sliding_window(1, Algorithm::MAX_PERIOD + day), "window"),
            (Algorithm::sliding_window(1, Duration::MAX), "window"),
        ] {
            let error = algorithm.validate().expect_err("unusable");
            assert_eq!(error.field(), field, "{algorithm:?}: {error}");
            assert!(error.to_string().starts_with(&format!("`{field}` ")), "{error}");
        }
        for usable in [
            Algorithm::token_bucket(f64::MAX, u32::MAX),
            Algorithm::token_bucket(1.001 * f64::from(u32::MAX) / Algorithm::MAX_PERIOD.as_secs_f64(), u32::MAX),
            Algorithm::sliding_window(u32::MAX, Algorithm::MIN_WINDOW),
            Algorithm::sliding_window(1, Algorithm::MAX_PERIOD),
        ] {
            assert_eq!(usable.validate(), Ok(()), "{usable:?}");
        }
    }

    #[test]
    fn a_window_of_any_length_never_overflows() {
        let mut log = Log::default();
        let late = Duration::from_secs(u64::MAX / 2);
        assert!(log.take(1, Duration::MAX, late).allowed);
        let refused = log.take(1, Duration::MAX, late + S);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::MAX - (late + S));
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
