//! Counters, gauges and histograms, encoded by `prometheus-client` for `GET /metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ezthrottle_core::protocol::{AttemptOutcome, Pace};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::pacing::{LaneView, Lanes};

/// Whether `/metrics` names the target hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostSeries {
    /// One series per target `host:port` (for the operator).
    Shown,
    /// Totals over every host only.
    Totals,
}

/// The engine's counters (lock-free atomics) and latency histograms.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) accepted: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) rejected_invalid: AtomicU64,
    pub(crate) rejected_full: AtomicU64,
    /// Accepted jobs not yet started: the admission gauge.
    pub(crate) queued: AtomicI64,
    pub(crate) running: AtomicI64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    attempts: [AtomicU64; 7],
    pub(crate) deliveries_ok: AtomicU64,
    pub(crate) deliveries_retried: AtomicU64,
    pub(crate) deliveries_failed: AtomicU64,
    pub(crate) quorum_met: AtomicU64,
    pub(crate) quorum_missed: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    queue_wait: Histogram,
    attempt_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::default(),
            duplicates: AtomicU64::default(),
            rejected_invalid: AtomicU64::default(),
            rejected_full: AtomicU64::default(),
            queued: AtomicI64::default(),
            running: AtomicI64::default(),
            succeeded: AtomicU64::default(),
            failed: AtomicU64::default(),
            attempts: Default::default(),
            deliveries_ok: AtomicU64::default(),
            deliveries_retried: AtomicU64::default(),
            deliveries_failed: AtomicU64::default(),
            quorum_met: AtomicU64::default(),
            quorum_missed: AtomicU64::default(),
            store_errors: AtomicU64::default(),
            // 1 ms to about 9 minutes.
            queue_wait: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            // 1 ms to about 33 s (the default target timeout is 30 s).
            attempt_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        }
    }
}

const OUTCOMES: [AttemptOutcome; 7] = [
    AttemptOutcome::InFlight,
    AttemptOutcome::Success,
    AttemptOutcome::Retry,
    AttemptOutcome::Reroute,
    AttemptOutcome::Failed,
    AttemptOutcome::Cancelled,
    AttemptOutcome::Interrupted,
];

impl Metrics {
    /// A job's first dispatch, `waited` after its acceptance.
    pub(crate) fn dispatched(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// One attempt's answer (or failure), `took` after it was sent.
    pub(crate) fn attempt_took(&self, took: Duration) {
        self.attempt_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn attempt(&self, outcome: AttemptOutcome) {
        if let Some(slot) = OUTCOMES.iter().position(|o| *o == outcome).and_then(|i| self.attempts.get(i)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    /// `/metrics`, encoded by `prometheus-client` (OpenMetrics text): a registry built
    /// for each scrape from the engine's counters, gauges read now, and the histograms.
    pub(crate) fn render(&self, lanes: &Lanes, show: HostSeries) -> String {
        let mut registry = Registry::default();
        let c = |v: &AtomicU64| v.load(Relaxed);
        let g = |v: &AtomicI64| v.load(Relaxed).max(0);
        registry.register(
            "ezthrottle_jobs",
            "Jobs waiting to start (queued) or being worked on (running)",
            gauges([("state", "queued", g(&self.queued)), ("state", "running", g(&self.running))]),
        );
        registry.register(
            "ezthrottle_jobs_finished",
            "Jobs finished, by status",
            counters([("status", "success", c(&self.succeeded)), ("status", "failed", c(&self.failed))]),
        );
        registry.register(
            "ezthrottle_submissions",
            "Submissions by answer",
            counters([
                ("result", "accepted", c(&self.accepted)),
                ("result", "duplicate", c(&self.duplicates)),
                ("result", "invalid", c(&self.rejected_invalid)),
                ("result", "queue_full", c(&self.rejected_full)),
            ]),
        );
        registry.register(
            "ezthrottle_attempts",
            "Requests to targets by outcome",
            counters(
                OUTCOMES
                    .iter()
                    .zip(&self.attempts)
                    .skip(1)
                    .map(|(outcome, count)| ("outcome", outcome.as_str(), c(count))),
            ),
        );
        registry.register(
            "ezthrottle_webhook_deliveries",
            "Webhook POSTs by outcome",
            counters([
                ("outcome", "delivered", c(&self.deliveries_ok)),
                ("outcome", "retried", c(&self.deliveries_retried)),
                ("outcome", "failed", c(&self.deliveries_failed)),
            ]),
        );
        registry.register(
            "ezthrottle_webhook_quorum",
            "Finished jobs by webhook quorum outcome",
            counters([("outcome", "met", c(&self.quorum_met)), ("outcome", "missed", c(&self.quorum_missed))]),
        );
        registry.register(
            "ezthrottle_store_errors",
            "Calls to the job store that failed",
            counter(c(&self.store_errors)),
        );
        registry.register_with_unit(
            "ezthrottle_queue_wait",
            "Time from acceptance to the first dispatch of a job",
            Unit::Seconds,
            self.queue_wait.clone(),
        );
        registry.register_with_unit(
            "ezthrottle_attempt_duration",
            "Time a target took to answer one attempt",
            Unit::Seconds,
            self.attempt_duration.clone(),
        );
        let hosts = lanes.snapshot();
        let in_flight: u64 = hosts.iter().map(|host| u64::from(host.in_flight)).sum();
        registry.register("ezthrottle_lanes", "Target hosts with a lane (a queue and a pace)", gauge(hosts.len()));
        registry.register(
            "ezthrottle_lane_queue_depth",
            "Requests waiting for their turn, over every target host",
            gauge(hosts.iter().map(|host| host.depth).sum::<usize>()),
        );
        registry.register("ezthrottle_lane_in_flight", "Requests in flight, over every target host", gauge(in_flight));
        if show == HostSeries::Shown {
            let per_host = |value: &dyn Fn(&LaneView) -> f64| {
                let family = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
                for host in &hosts {
                    family.get_or_create(&vec![("host".to_owned(), host.key.to_string())]).set(value(host));
                }
                family
            };
            registry.register(
                "ezthrottle_host_queue_depth",
                "Requests waiting for their turn, per target host",
                per_host(&|host| host.depth as f64),
            );
            registry.register(
                "ezthrottle_host_in_flight",
                "Requests in flight, per target host",
                per_host(&|host| f64::from(host.in_flight)),
            );
            registry.register(
                "ezthrottle_host_pace_rps",
                "Current pace, requests per second, per target host",
                per_host(&|host| if host.pace == Pace::UNLIMITED { f64::INFINITY } else { host.pace.rps() }),
            );
            registry.register(
                "ezthrottle_host_max_concurrent",
                "Current concurrency limit per target host",
                per_host(&|host| f64::from(host.pace.max_concurrent())),
            );
        }
        let mut out = String::with_capacity(4096);
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// A counter holding `value` (read from the engine's atomics at the scrape).
fn counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn counters<'a>(series: impl IntoIterator<Item = (&'a str, &'a str, u64)>) -> Family<Vec<(String, String)>, Counter> {
    let family = Family::<Vec<(String, String)>, Counter>::default();
    for (label, value, count) in series {
        family.get_or_create(&vec![(label.to_owned(), value.to_owned())]).inc_by(count);
    }
    family
}

fn gauge(value: impl TryInto<i64>) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value.try_into().unwrap_or(i64::MAX));
    gauge
}

fn gauges<'a>(series: impl IntoIterator<Item = (&'a str, &'a str, i64)>) -> Family<Vec<(String, String)>, Gauge> {
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    for (label, value, level) in series {
        family.get_or_create(&vec![(label.to_owned(), value.to_owned())]).set(level);
    }
    family
}
