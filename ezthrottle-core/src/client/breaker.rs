//! The client's circuit breaker for EZThrottle itself: while EZThrottle cannot be
//! reached, a submission returns at once instead of connecting again.
//!
//! Closed with no failure on record is the hot path: one atomic load to admit a call and
//! one to record its success, no lock. Every other state goes through the mutex.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;

/// Consecutive "not sent" submissions, then a cool-down, then one probe.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    /// False while closed with no failure on record: the lock-free fast path.
    troubled: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Submissions in a row that were not sent.
    failures: u32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    /// Nothing is sent until `until`.
    Open {
        until: Instant,
    },
    /// One probe is in flight; it ends by `until` (its deadline), or it was dropped and
    /// the next call probes instead.
    Probing {
        until: Instant,
    },
}

/// How a submission was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The breaker is closed: an ordinary submission, with its retries.
    Closed,
    /// The one call that probes whether EZThrottle is back: a single attempt.
    Probe,
}

/// What a submission's result says about EZThrottle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// EZThrottle (or its proxy) answered, whatever it said.
    Answered,
    /// Nothing reached it.
    NotSent,
    /// Sent, no answer: tells nothing about whether it is up.
    Unknown,
}

impl Health {
    pub(crate) fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Err(error) if error.is_not_sent() => Self::NotSent,
            Err(error) if error.is_answer_unknown() => Self::Unknown,
            _ => Self::Answered,
        }
    }
}

impl Breaker {
    /// A closed breaker opening after `threshold` (at least 1) failures for `cool_down`.
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            troubled: AtomicBool::new(false),
            state: Mutex::new(State { failures: 0, phase: Phase::Closed }),
        }
    }

    /// Lets a submission through, or refuses it at once with
    /// [`Error::EZThrottleUnavailable`]. A probe is given `probe_budget` (its deadline).
    pub(crate) fn admit(&self, probe_budget: Duration) -> Result<Admission, Error> {
        if !self.troubled.load(Ordering::Acquire) {
            return Ok(Admission::Closed);
        }
        let now = Instant::now();
        let mut state = self.lock();
        match state.phase {
            Phase::Closed => Ok(Admission::Closed),
            Phase::Open { until } | Phase::Probing { until } if now >= until => {
                state.phase = Phase::Probing { until: later(now, probe_budget) };
                Ok(Admission::Probe)
            }
            Phase::Open { until } | Phase::Probing { until } => Err(Error::EZThrottleUnavailable {
                failures: state.failures,
                probe_in: until.saturating_duration_since(now),
            }),
        }
    }

    /// Records what a submission let through by `admission` learned.
    pub(crate) fn record(&self, admission: Admission, health: Health) {
        match health {
            Health::Answered => {
                if self.troubled.load(Ordering::Acquire) {
                    let mut state = self.lock();
                    state.failures = 0;
                    state.phase = Phase::Closed;
                    self.troubled.store(false, Ordering::Release);
                }
            }
            Health::NotSent => {
                let mut state = self.lock();
                state.failures = state.failures.saturating_add(1);
                if admission == Admission::Probe || state.failures >= self.threshold {
                    state.phase = Phase::Open { until: later(Instant::now(), self.cool_down) };
                }
                self.troubled.store(true, Ordering::Release);
            }
            // A probe that got no answer did not show EZThrottle is back.
            Health::Unknown if admission == Admission::Probe => {
                let mut state = self.lock();
                state.phase = Phase::Open { until: later(Instant::now(), self.cool_down) };
                self.troubled.store(true, Ordering::Release);
            }
            Health::Unknown => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields, valid after any panic: keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `now + d`, or `now` where the sum does not fit (the durations given are capped, so
/// only an absurd clock gets here; probing early is then the safe side).
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn refused(breaker: &Breaker) -> Error {
        breaker.admit(LONG).expect_err("the breaker refuses")
    }

    #[test]
    fn opens_after_the_threshold_and_refuses_without_a_probe_until_the_cool_down() {
        let breaker = Breaker::new(3, LONG);
        for _ in 0..2 {
            assert_eq!(breaker.admit(LONG).unwrap(), Admission::Closed);
            breaker.record(Admission::Closed, Health::NotSent);
        }
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Closed, "two failures of three");
        breaker.record(Admission::Closed, Health::NotSent);
        let error = refused(&breaker);
        assert!(
            matches!(error, Error::EZThrottleUnavailable { failures: 3, probe_in } if probe_in > LONG / 2),
            "{error:?}"
        );
        assert!(error.is_not_sent());
    }

    #[test]
    fn an_answer_resets_the_count() {
        let breaker = Breaker::new(2, LONG);
        breaker.record(Admission::Closed, Health::NotSent);
        breaker.record(Admission::Closed, Health::Answered);
        breaker.record(Admission::Closed, Health::NotSent);
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Closed, "not two in a row");
        breaker.record(Admission::Closed, Health::Unknown);
        breaker.record(Admission::Closed, Health::NotSent);
        assert!(matches!(refused(&breaker), Error::EZThrottleUnavailable { failures: 2, .. }));
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_its_result_decides() {
        let breaker = Breaker::new(1, Duration::ZERO);
        breaker.record(Admission::Closed, Health::NotSent);
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Probe);
        refused(&breaker);
        breaker.record(Admission::Probe, Health::NotSent);
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Probe, "reopened, cooled down at once");
        breaker.record(Admission::Probe, Health::Unknown);
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Probe, "no answer is no proof");
        breaker.record(Admission::Probe, Health::Answered);
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Closed);
        assert_eq!(breaker.admit(LONG).unwrap(), Admission::Closed);
    }

    #[test]
    fn a_lost_probe_lets_the_next_call_probe_after_its_budget() {
        let breaker = Breaker::new(1, Duration::ZERO);
        breaker.record(Admission::Closed, Health::NotSent);
        assert_eq!(breaker.admit(Duration::ZERO).unwrap(), Admission::Probe);
        // That probe's future was dropped: nothing is recorded.
        assert_eq!(breaker.admit(Duration::ZERO).unwrap(), Admission::Probe);
    }

    #[test]
    fn huge_durations_do_not_panic() {
        let breaker = Breaker::new(0, Duration::MAX);
        breaker.record(Admission::Closed, Health::NotSent);
        let _ = breaker.admit(Duration::MAX);
        assert!(later(Instant::now(), Duration::MAX) <= Instant::now());
    }
}
