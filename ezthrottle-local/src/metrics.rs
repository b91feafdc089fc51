//! Counters and gauges, rendered as Prometheus text by `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::pacing::Lanes;
use ezthrottle_core::protocol::{AttemptOutcome, Pace};

/// Whether `/metrics` names the target hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostSeries {
    /// One series per target `host:port` (for the operator).
    Shown,
    /// Totals over every host only.
    Totals,
}

/// The engine's counters. Every field is a lock-free atomic.
#[derive(Debug, Default)]
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
    pub(crate) fn attempt(&self, outcome: AttemptOutcome) {
        if let Some(slot) = OUTCOMES.iter().position(|o| *o == outcome).and_then(|i| self.attempts.get(i)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn render(&self, lanes: &Lanes, show: HostSeries) -> String {
        let mut out = String::with_capacity(2048);
        let g = |v: &AtomicI64| v.load(Relaxed).max(0);
        let c = |v: &AtomicU64| v.load(Relaxed);
        out.push_str("# HELP ezthrottle_jobs Jobs by state (queued and running are gauges; success and failed count finished jobs).\n");
        out.push_str("# TYPE ezthrottle_jobs gauge\n");
        let _ = writeln!(out, "ezthrottle_jobs{{state=\"queued\"}} {}", g(&self.queued));
        let _ = writeln!(out, "ezthrottle_jobs{{state=\"running\"}} {}", g(&self.running));
        let _ = writeln!(out, "ezthrottle_jobs{{state=\"success\"}} {}", c(&self.succeeded));
        let _ = writeln!(out, "ezthrottle_jobs{{state=\"failed\"}} {}", c(&self.failed));
        out.push_str(
            "# HELP ezthrottle_submissions_total Submissions by answer.\n# TYPE ezthrottle_submissions_total counter\n",
        );
        let _ = writeln!(out, "ezthrottle_submissions_total{{result=\"accepted\"}} {}", c(&self.accepted));
        let _ = writeln!(out, "ezthrottle_submissions_total{{result=\"duplicate\"}} {}", c(&self.duplicates));
        let _ = writeln!(out, "ezthrottle_submissions_total{{result=\"invalid\"}} {}", c(&self.rejected_invalid));
        let _ = writeln!(out, "ezthrottle_submissions_total{{result=\"queue_full\"}} {}", c(&self.rejected_full));
        out.push_str("# HELP ezthrottle_attempts_total Requests to targets by outcome.\n# TYPE ezthrottle_attempts_total counter\n");
        for (outcome, count) in OUTCOMES.iter().zip(&self.attempts).skip(1) {
            let _ = writeln!(out, "ezthrottle_attempts_total{{outcome=\"{}\"}} {}", outcome.as_str(), c(count));
        }
        out.push_str("# HELP ezthrottle_webhook_deliveries_total Webhook POSTs by outcome.\n# TYPE ezthrottle_webhook_deliveries_total counter\n");
        let _ =
            writeln!(out, "ezthrottle_webhook_deliveries_total{{outcome=\"delivered\"}} {}", c(&self.deliveries_ok));
        let _ =
            writeln!(out, "ezthrottle_webhook_deliveries_total{{outcome=\"retried\"}} {}", c(&self.deliveries_retried));
        let _ =
            writeln!(out, "ezthrottle_webhook_deliveries_total{{outcome=\"failed\"}} {}", c(&self.deliveries_failed));
        out.push_str("# HELP ezthrottle_webhook_quorum_total Finished jobs by webhook quorum outcome.\n# TYPE ezthrottle_webhook_quorum_total counter\n");
        let _ = writeln!(out, "ezthrottle_webhook_quorum_total{{outcome=\"met\"}} {}", c(&self.quorum_met));
        let _ = writeln!(out, "ezthrottle_webhook_quorum_total{{outcome=\"missed\"}} {}", c(&self.quorum_missed));
        out.push_str("# HELP ezthrottle_store_errors_total Calls to the job store that failed.\n# TYPE ezthrottle_store_errors_total counter\n");
        let _ = writeln!(out, "ezthrottle_store_errors_total {}", c(&self.store_errors));
        let hosts = lanes.snapshot();
        out.push_str(
            "# HELP ezthrottle_lanes Target hosts with a lane (a queue and a pace).\n# TYPE ezthrottle_lanes gauge\n",
        );
        let _ = writeln!(out, "ezthrottle_lanes {}", hosts.len());
        out.push_str("# HELP ezthrottle_lane_queue_depth Requests waiting for their turn, over every target host.\n# TYPE ezthrottle_lane_queue_depth gauge\n");
        let _ = writeln!(out, "ezthrottle_lane_queue_depth {}", hosts.iter().map(|host| host.depth).sum::<usize>());
        out.push_str("# HELP ezthrottle_lane_in_flight Requests in flight, over every target host.\n# TYPE ezthrottle_lane_in_flight gauge\n");
        let in_flight: u64 = hosts.iter().map(|host| u64::from(host.in_flight)).sum();
        let _ = writeln!(out, "ezthrottle_lane_in_flight {in_flight}");
        if show == HostSeries::Totals {
            return out;
        }
        out.push_str("# HELP ezthrottle_host_queue_depth Requests waiting for their turn, per target host.\n# TYPE ezthrottle_host_queue_depth gauge\n");
        for host in &hosts {
            let _ = writeln!(out, "ezthrottle_host_queue_depth{{host=\"{}\"}} {}", escape(&host.key), host.depth);
        }
        out.push_str("# HELP ezthrottle_host_in_flight Requests in flight, per target host.\n# TYPE ezthrottle_host_in_flight gauge\n");
        for host in &hosts {
            let _ = writeln!(out, "ezthrottle_host_in_flight{{host=\"{}\"}} {}", escape(&host.key), host.in_flight);
        }
        out.push_str("# HELP ezthrottle_host_pace_rps Current pace, requests per second, per target host.\n# TYPE ezthrottle_host_pace_rps gauge\n");
        for host in &hosts {
            let rps = if host.pace == Pace::UNLIMITED { "+Inf".to_owned() } else { host.pace.rps().to_string() };
            let _ = writeln!(out, "ezthrottle_host_pace_rps{{host=\"{}\"}} {rps}", escape(&host.key));
        }
        out.push_str("# HELP ezthrottle_host_max_concurrent Current concurrency limit per target host.\n# TYPE ezthrottle_host_max_concurrent gauge\n");
        for host in &hosts {
            let _ = writeln!(
                out,
                "ezthrottle_host_max_concurrent{{host=\"{}\"}} {}",
                escape(&host.key),
                host.pace.max_concurrent()
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
