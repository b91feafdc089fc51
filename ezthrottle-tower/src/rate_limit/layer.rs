//! [`RateLimitLayer`]: the rules, the store, and how answers look.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue};
use tower_layer::Layer;

use super::algorithm::Decision;
use super::algorithm::{InvalidRule, Rule};
use super::audit::{DecisionHook, RateLimitEvent};
use super::headers;
use super::headers::HeaderStyle;
use super::memory::MemoryRateLimitStore;
use super::scope::RequestHead;
use super::service::RateLimit;
use super::store::Check;
use crate::StoreError;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// What to do when the store cannot decide (Redis unreachable or slow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Let the request through, log a `tracing` warning and count it in
    /// [`RateLimitMetrics::store_errors`] (the default: an outage of the limiter is not an
    /// outage of the API).
    #[default]
    Open,
    /// Refuse with `503 Service Unavailable` and `Retry-After: 1`.
    Closed,
}

/// Counters of one layer (shared by every service it made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitMetrics {
    /// Requests admitted by every rule.
    pub allowed: u64,
    /// Requests refused with 429.
    pub refused: u64,
    /// Requests the store could not decide on.
    pub store_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) allowed: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) store_errors: AtomicU64,
}

/// The rules and answer settings a layer, its services and the actix middleware of
/// `ezthrottle-actix` share.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub(crate) rules: Vec<Rule>,
    pub(crate) header_style: HeaderStyle,
    pace_enabled: bool,
    pub(crate) pace: Option<[(HeaderName, HeaderValue); 2]>,
    pub(crate) fail_mode: FailMode,
    pub(crate) counters: Arc<Counters>,
    pub(crate) on_decision: Option<DecisionHook>,
}

/// Rate-limits requests by one or more [`Rule`]s, answering `429` with `Retry-After` and a
/// JSON body naming the limit, and adding `RateLimit-*` headers to every answer.
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
///
/// let layer = RateLimitLayer::new()
///     .rule(Rule::new("global", Scope::global(), Algorithm::sliding_window(1000, Duration::from_secs(60))))
///     .rule(Rule::new("per_user", Scope::header("x-api-key"), Algorithm::sliding_window(100, Duration::from_secs(60))))
///     .rule(Rule::new("per_endpoint", Scope::route(), Algorithm::sliding_window(10, Duration::from_secs(60))))
///     .rule(Rule::new("burst", Scope::header("x-api-key"), Algorithm::token_bucket(20.0, 50)))
///     .pace_headers(true);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimitLayer<St = MemoryRateLimitStore> {
    config: RateLimitConfig,
    store: St,
}

impl RateLimitLayer<MemoryRateLimitStore> {
    /// A layer with no rules yet, keeping its counts in this process.
    pub fn new() -> Self {
        Self::with_store(MemoryRateLimitStore::new())
    }
}

impl Default for RateLimitLayer<MemoryRateLimitStore> {
    fn default() -> Self {
        Self::new()
    }
}

impl<St> RateLimitLayer<St> {
    /// A layer with no rules yet, keeping its counts in `store` (e.g. a `RedisRateLimitStore` shared
    /// by several replicas).
    pub fn with_store(store: St) -> Self {
        Self {
            config: RateLimitConfig {
                rules: Vec::new(),
                header_style: HeaderStyle::default(),
                pace_enabled: false,
                pace: None,
                fail_mode: FailMode::default(),
                counters: Arc::default(),
                on_decision: None,
            },
            store,
        }
    }

    /// Adds a rule. A request is admitted only if every rule admits it.
    ///
    /// For rules written in the code. Rules read from configuration at run time go through
    /// [`try_rule`](Self::try_rule), which returns the problem instead.
    ///
    /// # Panics
    ///
    /// When the rule's algorithm is unusable ([`Algorithm::validate`](super::Algorithm::validate):
    /// a zero or non-finite rate, a zero burst or limit, a window under 1 ms, a period over
    /// ten years): a mistake in the code, reported at start-up, naming the rule and field.
    pub fn rule(self, rule: Rule) -> Self {
        match self.try_rule(rule) {
            Ok(layer) => layer,
            #[allow(clippy::panic)] // Documented: a mistake in the code, found at start-up.
            Err(invalid) => panic!("{invalid}"),
        }
    }

    /// Adds a rule, or says which rule and field cannot be enforced.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
    ///
    /// let window = Duration::from_secs(0); // e.g. read from a configuration file
    /// let error = RateLimitLayer::new()
    ///     .try_rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(100, window)))
    ///     .unwrap_err();
    /// assert_eq!((error.rule(), error.algorithm().field()), ("per_key", "window"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidRule`] when [`Algorithm::validate`](super::Algorithm::validate) refuses the
    /// rule's algorithm.
    pub fn try_rule(mut self, rule: Rule) -> Result<Self, InvalidRule> {
        rule.algorithm.validate().map_err(|problem| InvalidRule::new(rule.name(), problem))?;
        self.config.rules.push(rule);
        self.refresh_pace();
        Ok(self)
    }

    /// Which header names carry the limit (default both `RateLimit-*` and `X-RateLimit-*`).
    pub fn header_style(mut self, style: HeaderStyle) -> Self {
        self.config.header_style = style;
        self
    }

    /// Also send `X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT` derived from the
    /// tightest rule (its sustained rate; concurrency = the rate rounded up), so EZThrottle
    /// paces its calls to this API instead of running into its 429s.
    pub fn pace_headers(mut self, enabled: bool) -> Self {
        self.config.pace_enabled = enabled;
        self.refresh_pace();
        self
    }

    /// What to do when the store cannot decide (default [`FailMode::Open`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.config.fail_mode = mode;
        self
    }

    /// Calls `hook` with every request's decision (allowed or limited, the deciding rule, its
    /// scope key and the store's numbers; see [`RateLimitEvent`]), for an audit trail or
    /// metrics. It runs on the request's task before the handler (or the refusal): keep it
    /// quick (send the event to a channel to do more). No credential is in the event.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
    ///
    /// let layer = RateLimitLayer::new()
    ///     .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(100, Duration::from_secs(60))))
    ///     .on_decision(|event| {
    ///         if !event.allowed {
    ///             tracing::info!(rule = ?event.rule, scope = ?event.scope, "rate limited");
    ///         }
    ///     });
    /// # let _ = layer;
    /// ```
    pub fn on_decision(mut self, hook: impl Fn(&RateLimitEvent<'_>) + Send + Sync + 'static) -> Self {
        self.config.on_decision = Some(crate::hook::Hook(Arc::new(hook)));
        self
    }

    /// The counters so far.
    pub fn metrics(&self) -> RateLimitMetrics {
        let counters = &self.config.counters;
        RateLimitMetrics {
            allowed: counters.allowed.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
            store_errors: counters.store_errors.load(Ordering::Relaxed),
        }
    }

    /// The store (for the actix adapter).
    #[doc(hidden)]
    pub fn store(&self) -> &St {
        &self.store
    }

    fn refresh_pace(&mut self) {
        self.config.pace = if self.config.pace_enabled { pace_for(&self.config.rules) } else { None };
    }
}

fn pace_for(rules: &[Rule]) -> Option<[(HeaderName, HeaderValue); 2]> {
    let rps = rules.iter().map(|rule| rule.algorithm.rate_per_sec()).min_by(f64::total_cmp)?;
    let concurrency = rps.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
    Some(crate::pace::pace_headers(rps, concurrency))
}

impl<S, St: Clone> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::new(self.config.clone()), self.store.clone())
    }
}

/// What the store's answer means for one request: `Ok` runs the handler (with the tightest
/// limit, if the store decided, for its headers); `Err` is the answer instead (429 naming the
/// rule, or 503 when failing closed).
pub type Verdict = Result<Option<Decision>, Box<(StatusCode, HeaderMap, Bytes)>>;

/// The decisions both adapters (the tower [`RateLimitFuture`](super::RateLimitFuture) and the
/// actix middleware) make, in one place.
impl RateLimitConfig {
    /// The checks of one request: one per rule, keyed by rule name and scope key.
    pub fn checks(&self, head: &RequestHead<'_>) -> Vec<Check> {
        self.rules
            .iter()
            .map(|rule| Check { key: format!("{}\n{}", rule.name, rule.scope.key(head)), algorithm: rule.algorithm })
            .collect()
    }

    /// The scope keys of `checks`, in order, for the [`on_decision`](RateLimitLayer::on_decision)
    /// hook; `None` (nothing kept) without one.
    pub fn audit_scopes(&self, checks: &[Check]) -> Option<Vec<String>> {
        self.on_decision.as_ref()?;
        // A check's key is `rule\nscope` (see `checks`); scope keys hold no newline.
        Some(checks.iter().map(|check| check.key.rsplit_once('\n').map_or("", |(_, scope)| scope).to_owned()).collect())
    }

    /// The span of one request's decision (`rate_limit`, target `ezthrottle::rate_limit`,
    /// at debug): the store's check runs inside it, and [`verdict`](Self::verdict) records
    /// `allowed` and the deciding `rule` on it. Scope keys (caller identities) are not
    /// fields.
    pub fn decision_span(&self) -> tracing::Span {
        tracing::debug_span!(
            target: ezthrottle_core::telemetry::TARGET_RATE_LIMIT,
            "rate_limit",
            rules = self.rules.len(),
            allowed = tracing::field::Empty,
            rule = tracing::field::Empty,
        )
    }

    /// Decides on the store's answer, counting it in the metrics, recording it on `span`
    /// (from [`decision_span`](Self::decision_span)) and telling the `on_decision` hook
    /// (`scopes` from [`audit_scopes`](Self::audit_scopes)).
    pub fn verdict(
        &self,
        result: Result<Vec<Decision>, StoreError>,
        scopes: Option<&[String]>,
        span: &tracing::Span,
    ) -> Verdict {
        let config = self;
        match result {
            Ok(decisions) => {
                let refused =
                    decisions.iter().enumerate().filter(|(_, d)| !d.allowed).max_by_key(|(_, d)| d.retry_after);
                if let Some((index, worst)) = refused {
                    config.counters.refused.fetch_add(1, Ordering::Relaxed);
                    self.audit(false, Some((index, *worst)), scopes, span);
                    let rule = config.rules.get(index).map_or("unknown", |rule| rule.name());
                    let (status, mut headers, body) = headers::refusal(rule, worst.retry_after);
                    self.write_headers(Some(worst), &mut headers);
                    return Err(Box::new((status, headers, body)));
                }
                config.counters.allowed.fetch_add(1, Ordering::Relaxed);
                let tightest =
                    decisions.into_iter().enumerate().min_by_key(|(_, d)| (d.remaining, std::cmp::Reverse(d.reset)));
                self.audit(true, tightest, scopes, span);
                Ok(tightest.map(|(_, decision)| decision))
            }
            Err(error) => {
                config.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                match config.fail_mode {
                    FailMode::Open => {
                        tracing::warn!(target: ezthrottle_core::telemetry::TARGET_RATE_LIMIT, %error, "letting the request through (fail open)");
                        self.audit(true, None, scopes, span);
                        Ok(None)
                    }
                    FailMode::Closed => {
                        tracing::warn!(target: ezthrottle_core::telemetry::TARGET_RATE_LIMIT, %error, "refusing the request (fail closed)");
                        self.audit(false, None, scopes, span);
                        Err(Box::new(headers::unavailable()))
                    }
                }
            }
        }
    }

    /// Counts and records the decision, then tells the hook, if any (by the rule at
    /// `decided`'s index).
    fn audit(
        &self,
        allowed: bool,
        decided: Option<(usize, Decision)>,
        scopes: Option<&[String]>,
        span: &tracing::Span,
    ) {
        let index = decided.map(|(index, _)| index);
        let rule = index.and_then(|index| self.rules.get(index)).map(Rule::name);
        span.record("allowed", allowed);
        if let Some(rule) = rule {
            span.record("rule", rule);
        }
        if !allowed {
            let rule = rule.unwrap_or("none").to_owned();
            metrics::counter!(ezthrottle_core::telemetry::RATE_LIMIT_EXCEEDED_TOTAL, "rule" => rule).increment(1);
        }
        let Some(crate::hook::Hook(hook)) = &self.on_decision else { return };
        hook(&RateLimitEvent {
            allowed,
            rule,
            scope: index.and_then(|index| scopes?.get(index)).map(String::as_str),
            decision: decided.map(|(_, decision)| decision),
        });
    }

    /// Writes the tightest limit (in the configured header style) and the pace hints.
    pub fn write_headers(&self, tightest: Option<&Decision>, headers: &mut HeaderMap) {
        if let Some(decision) = tightest {
            self.header_style.write(decision, headers);
        }
        if let Some(pace) = &self.pace {
            for (name, value) in pace {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

impl<St> RateLimitLayer<St> {
    /// The shared configuration, for the actix adapter.
    #[doc(hidden)]
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }
}
