//! A circuit breaker per target host: stop calling a struggling API, forward instead.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ezthrottle_core::protocol::MAX_RETRY_AT_HORIZON;

/// An opt-in circuit breaker, one circuit per target host (`host:port`).
///
/// - **Closed** (the start): calls go to the target. After `threshold` *consecutive*
///   outcomes the forward policy accepts (429, 5xx, transport errors by default), the
///   circuit opens.
/// - **Open**: requests go straight to EZThrottle as jobs, without touching the target,
///   for the cool-down, or until the instant of the target's last `Retry-After` when it
///   sent one. Jobs forwarded while open carry that `Retry-After` as their `retry_at`.
/// - **Half-open**: when the wait is over, the next request is sent to the target as the
///   one probe; the others keep being forwarded meanwhile. A probe the policy does not
///   forward (e.g. a 2xx) closes the circuit; a forwardable one opens it again.
///
/// A request whose body cannot be captured (streaming, or larger than
/// `max_replay_bytes`) cannot be forwarded, so it goes to the target even while the
/// circuit is open. If EZThrottle refuses or cannot be reached while the circuit is open,
/// the request is sent to the target after all when that cannot run it twice (EZThrottle
/// certainly did not take the job, or the request is idempotent or keyed); otherwise the
/// caller gets a synthesized `502` (see the [module docs](crate::forward)). Every call gets
/// one answer.
///
/// A circuit stays open at most [`max_open`](Self::max_open) (default: the longer of
/// [`DEFAULT_MAX_OPEN`] and the cool-down, never more than 24 h), whatever the target's
/// `Retry-After` says: a `Retry-After: 99999999999` keeps it open up to that cap, then it
/// half-opens and probes the target again.
///
/// Clones share their circuits: give the same breaker to every layer that calls the same
/// hosts.
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_tower::{CircuitBreaker, CircuitState};
///
/// let breaker = CircuitBreaker::new(5, Duration::from_secs(10));
/// assert_eq!(breaker.state("api.example.com:443"), CircuitState::Closed);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

/// The default of [`CircuitBreaker::max_open`] (unless the cool-down is longer): 1 hour.
/// A target asking for a longer wait costs one probe an hour, which is forwarded anyway.
pub const DEFAULT_MAX_OPEN: Duration = Duration::from_secs(60 * 60);

struct Shared {
    threshold: u32,
    cool_down: Duration,
    max_open: Duration,
    hosts: Mutex<HashMap<String, Circuit>>,
}

#[derive(Debug, Clone, Copy)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant, retry_at: Option<SystemTime> },
    HalfOpen { retry_at: Option<SystemTime> },
}

/// The state of one host's circuit, as [`CircuitBreaker::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go to the target.
    Closed,
    /// Calls are forwarded without touching the target.
    Open,
    /// The wait is over: the next call is the probe, or the probe is in flight.
    HalfOpen,
}

/// What to do with one request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Call the target.
    Call,
    /// Call the target as the half-open probe.
    Probe(ProbeGuard),
    /// Forward without calling the target.
    Forward { retry_at: Option<SystemTime> },
}

impl CircuitBreaker {
    /// Opens a host's circuit after `threshold` consecutive forwardable outcomes (at least
    /// 1), for `cool_down` (or until the target's `Retry-After`, up to
    /// [`max_open`](Self::max_open)).
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        let max_open = DEFAULT_MAX_OPEN.max(cool_down).min(MAX_RETRY_AT_HORIZON);
        let hosts = Mutex::new(HashMap::new());
        Self { shared: Arc::new(Shared { threshold: threshold.max(1), cool_down, max_open, hosts }) }
    }

    /// The longest a circuit stays open, whatever the target's `Retry-After` or the
    /// cool-down (a longer `max_open` is clamped to
    /// [`MAX_RETRY_AT_HORIZON`](ezthrottle_core::protocol::MAX_RETRY_AT_HORIZON), 24 h).
    /// Past it the circuit half-opens and the next request probes the target.
    ///
    /// Set it before sharing the breaker: clones made earlier keep the old value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ezthrottle_tower::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::new(5, Duration::from_secs(10)).with_max_open(Duration::from_secs(300));
    /// assert_eq!(breaker.max_open(), Duration::from_secs(300));
    /// ```
    pub fn with_max_open(self, max_open: Duration) -> Self {
        let max_open = max_open.min(MAX_RETRY_AT_HORIZON);
        let shared = Shared {
            threshold: self.shared.threshold,
            cool_down: self.shared.cool_down,
            max_open,
            hosts: Mutex::new(self.lock().clone()),
        };
        Self { shared: Arc::new(shared) }
    }

    /// The longest a circuit stays open (see [`with_max_open`](Self::with_max_open)).
    pub fn max_open(&self) -> Duration {
        self.shared.max_open
    }

    /// Consecutive forwardable outcomes that open a circuit.
    pub fn threshold(&self) -> u32 {
        self.shared.threshold
    }

    /// How long a circuit stays open when the target gave no `Retry-After`.
    pub fn cool_down(&self) -> Duration {
        self.shared.cool_down
    }

    /// The state of the circuit of `host` (`host:port`, as in the request URI's authority
    /// with the port made explicit, e.g. `api.example.com:443`).
    pub fn state(&self, host: &str) -> CircuitState {
        match self.lock().get(host) {
            None | Some(Circuit::Closed { .. }) => CircuitState::Closed,
            Some(Circuit::Open { until, .. }) if *until > Instant::now() => CircuitState::Open,
            Some(Circuit::Open { .. } | Circuit::HalfOpen { .. }) => CircuitState::HalfOpen,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Circuit>> {
        self.shared.hosts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides how a request to `host` goes.
    pub(crate) fn admit(&self, host: &str) -> Admission {
        let mut hosts = self.lock();
        let Some(circuit) = hosts.get_mut(host) else {
            return Admission::Call;
        };
        match *circuit {
            Circuit::Closed { .. } => Admission::Call,
            Circuit::Open { until, retry_at } if until > Instant::now() => Admission::Forward { retry_at },
            Circuit::Open { retry_at, .. } => {
                *circuit = Circuit::HalfOpen { retry_at };
                tracing::debug!(host, "circuit half-open: sending one probe to the target");
                Admission::Probe(ProbeGuard { breaker: self.clone(), host: host.to_owned(), settled: false })
            }
            Circuit::HalfOpen { retry_at } => Admission::Forward { retry_at },
        }
    }

    /// Records the outcome of a call that reached the target. `retry_at` is the target's
    /// `Retry-After` (Unix ms), if it sent one.
    pub(crate) fn record(
        &self,
        host: &str,
        forwardable: bool,
        retry_at: Option<SystemTime>,
        probe: Option<&mut ProbeGuard>,
    ) {
        let is_probe = probe.is_some();
        if let Some(probe) = probe {
            probe.settled = true;
        }
        let mut hosts = self.lock();
        let current = hosts.get(host).copied();
        let next = match (current, forwardable) {
            (None | Some(Circuit::Closed { failures: 0 }), false) => return,
            (_, false) => {
                if !matches!(current, Some(Circuit::Closed { .. })) {
                    tracing::info!(host, "circuit closed: the target answered");
                }
                Circuit::Closed { failures: 0 }
            }
            (None, true) => self.after_failure(host, 1, retry_at),
            (Some(Circuit::Closed { failures }), true) => {
                self.after_failure(host, failures.saturating_add(1), retry_at)
            }
            (Some(Circuit::HalfOpen { .. }), true) if is_probe => self.open(host, retry_at),
            // A late answer of a call made before the circuit opened, or a request that
            // could not be forwarded: the circuit keeps its course.
            (Some(open @ (Circuit::Open { .. } | Circuit::HalfOpen { .. })), true) => open,
        };
        hosts.insert(host.to_owned(), next);
    }

    fn after_failure(&self, host: &str, failures: u32, retry_at: Option<SystemTime>) -> Circuit {
        if failures >= self.shared.threshold { self.open(host, retry_at) } else { Circuit::Closed { failures } }
    }

    fn open(&self, host: &str, retry_at: Option<SystemTime>) -> Circuit {
        let ahead = retry_at.and_then(|at| at.duration_since(SystemTime::now()).ok()).filter(|wait| !wait.is_zero());
        let wait = ahead.unwrap_or(self.shared.cool_down).min(self.shared.max_open);
        tracing::warn!(
            host,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "circuit open: forwarding to EZThrottle without calling the target"
        );
        let now = Instant::now();
        // Checked: where the clock cannot say the instant, the circuit half-opens at once.
        let until = now.checked_add(wait).unwrap_or(now);
        Circuit::Open { until, retry_at: retry_at.filter(|_| ahead.is_some()) }
    }

    /// A probe that ended without an outcome (its future was dropped): the next request
    /// probes instead.
    fn abandon_probe(&self, host: &str) {
        let mut hosts = self.lock();
        if let Some(circuit) = hosts.get_mut(host)
            && let Circuit::HalfOpen { retry_at } = *circuit
        {
            *circuit = Circuit::Open { until: Instant::now(), retry_at };
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("threshold", &self.shared.threshold)
            .field("cool_down", &self.shared.cool_down)
            .field("max_open", &self.shared.max_open)
            .field("hosts", &self.lock().len())
            .finish()
    }
}

/// The right to be the half-open probe of a host; handing it back unsettled (dropping
/// it) lets the next request probe.
pub(crate) struct ProbeGuard {
    breaker: CircuitBreaker,
    host: String,
    settled: bool,
}

impl fmt::Debug for ProbeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeGuard").field("host", &self.host).field("settled", &self.settled).finish()
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.abandon_probe(&self.host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "api.example.com:443";

    #[test]
    fn opens_after_k_consecutive_failures_and_resets_on_success() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(60));
        breaker.record(HOST, true, None, None);
        breaker.record(HOST, true, None, None);
        breaker.record(HOST, false, None, None);
        breaker.record(HOST, true, None, None);
        breaker.record(HOST, true, None, None);
        assert_eq!(breaker.state(HOST), CircuitState::Closed);
        breaker.record(HOST, true, None, None);
        assert_eq!(breaker.state(HOST), CircuitState::Open);
        assert!(matches!(breaker.admit(HOST), Admission::Forward { retry_at: None }));
        assert!(matches!(breaker.admit("other:80"), Admission::Call));
    }

    #[test]
    fn half_open_admits_one_probe_and_closes_on_success() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record(HOST, true, None, None);
        assert_eq!(breaker.state(HOST), CircuitState::HalfOpen);
        let Admission::Probe(mut probe) = breaker.admit(HOST) else { panic!("expected the probe") };
        assert!(matches!(breaker.admit(HOST), Admission::Forward { .. }));
        breaker.record(HOST, false, None, Some(&mut probe));
        drop(probe);
        assert_eq!(breaker.state(HOST), CircuitState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_dropped_probe_is_replaced() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record(HOST, true, None, None);
        let Admission::Probe(mut probe) = breaker.admit(HOST) else { panic!("expected the probe") };
        let later = SystemTime::now() + Duration::from_secs(60);
        breaker.record(HOST, true, Some(later), Some(&mut probe));
        assert_eq!(breaker.state(HOST), CircuitState::Open, "Retry-After keeps it open");
        assert!(matches!(breaker.admit(HOST), Admission::Forward { retry_at: Some(at) } if at == later));

        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record(HOST, true, None, None);
        let Admission::Probe(probe) = breaker.admit(HOST) else { panic!("expected the probe") };
        drop(probe);
        assert!(matches!(breaker.admit(HOST), Admission::Probe(_)));
    }

    #[test]
    fn the_open_time_is_capped_whatever_the_retry_after() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(10));
        assert_eq!(breaker.max_open(), DEFAULT_MAX_OPEN);
        assert_eq!(CircuitBreaker::new(1, Duration::from_secs(7200)).max_open(), Duration::from_secs(7200));
        assert_eq!(CircuitBreaker::new(1, Duration::MAX).max_open(), MAX_RETRY_AT_HORIZON);
        assert_eq!(breaker.clone().with_max_open(Duration::MAX).max_open(), MAX_RETRY_AT_HORIZON);

        let far = SystemTime::UNIX_EPOCH.checked_add(Duration::new(i64::MAX as u64, 999_999_999)).unwrap();
        for retry_at in [Some(far), Some(SystemTime::now() + Duration::from_secs(86_400 * 365 * 1000)), None] {
            let breaker = CircuitBreaker::new(1, Duration::MAX).with_max_open(Duration::ZERO);
            breaker.record(HOST, true, retry_at, None);
            assert_eq!(breaker.state(HOST), CircuitState::HalfOpen, "{retry_at:?}");
            assert!(matches!(breaker.admit(HOST), Admission::Probe(_)), "{retry_at:?}");
        }
        let breaker = CircuitBreaker::new(1, Duration::ZERO).with_max_open(Duration::from_secs(60));
        breaker.record(HOST, true, Some(far), None);
        let Circuit::Open { until, .. } = breaker.lock()[HOST] else { panic!("expected an open circuit") };
        assert!(until <= Instant::now() + Duration::from_secs(60), "open until {until:?}");
    }
}
