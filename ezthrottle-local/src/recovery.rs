//! Resuming the store's unsettled jobs at start (and, on a shared store, each job a
//! replica claims).
//!
//! - A queued job goes back in its lane (not before its `retry_at`).
//! - A running job runs again from its first step (at-least-once): the attempt the stop
//!   interrupted is marked `interrupted`, and the attempts made before count against its
//!   retry policy.
//! - A finished job submits the children and delivers the webhooks its saved progress
//!   does not show as done.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use ezthrottle_core::protocol::{AttemptOutcome, JobStatus};
use tokio::time::Instant;

use crate::engine::Shared;
use crate::executor::Outcome;
use crate::pacing::host_key;
use crate::store::{JobRecord, StoreError, StoredJob};
use crate::util::now_ms;

/// Resumes every unsettled job of the store; returns how many.
///
/// # Errors
///
/// The store could not list its jobs. A job whose documents cannot be read is logged and
/// left in the store.
pub(crate) async fn resume(shared: &Arc<Shared>) -> Result<usize, StoreError> {
    let jobs = shared.store.unsettled().await?;
    let now = Instant::now();
    let mut resumed = 0;
    for stored in &jobs {
        resumed += usize::from(resume_one(shared, stored, now).await);
    }
    Ok(resumed)
}

/// Takes `stored` up where its saved progress says: what a restarted engine does for each
/// unsettled job, and a replica for each job it claims. `false` when the job cannot be
/// read (logged).
pub(crate) async fn resume_one(shared: &Arc<Shared>, stored: &StoredJob, now: Instant) -> bool {
    let record = match JobRecord::from_stored(stored) {
        Ok(record) => Arc::new(record),
        Err(err) => {
            tracing::error!(job_id = stored.id, error = %ezthrottle_core::ErrorChain(&err), "a stored job cannot be read");
            return false;
        }
    };
    let record = shared.live.adopt(record);
    let status = record.status();
    if status.is_finished() {
        let task_shared = Arc::clone(shared);
        shared.spawn(async move {
            let outcome = Outcome::recorded(&record);
            crate::executor::settle(&task_shared, &record, &outcome).await;
        });
        return true;
    }
    let Some(host) = url::Url::parse(&record.job().url).ok().as_ref().and_then(host_key) else {
        tracing::error!(job_id = stored.id, "a stored job has no host to run against");
        return false;
    };
    if status == JobStatus::Running {
        interrupt(&record);
        shared.persist(&record).await;
    }
    shared.metrics.queued.fetch_add(1, Relaxed);
    let _ = crate::tenancy::reserve(shared, record.tenant(), crate::submit::Admission::Bypass);
    crate::submit::schedule(shared, &host, &record, now);
    true
}

/// Marks the attempts in flight when the engine stopped as interrupted.
fn interrupt(record: &JobRecord) {
    let mut state = record.state();
    let detail = state.detail();
    let mut interrupted = 0;
    for attempt in detail.attempts.iter_mut().filter(|attempt| attempt.outcome == AttemptOutcome::InFlight) {
        attempt.outcome = AttemptOutcome::Interrupted;
        attempt.error.get_or_insert_with(|| "the engine stopped before the target answered".into());
        interrupted += 1;
    }
    detail.events.push(format!(
        "resumed after an engine restart at {} (unix ms); {interrupted} attempt(s) interrupted",
        now_ms()
    ));
}
