//! `fallback_job` chains: `on_error` runs the fallback when the previous job ended with one
//! of the listed codes; `on_timeout` runs it when the previous job has not answered within
//! `timeout_ms` (the previous job is then cancelled); `{}` (any) runs it on any failure. A fallback's own `fallback_job`
//! applies to the fallback, recursively.

use std::sync::Arc;

use ezthrottle_core::protocol::{Job, Trigger};
use futures_util::future::BoxFuture;

use crate::engine::Shared;
use crate::executor::{Outcome, run_regions};
use crate::pacing::Permit;
use crate::store::JobRecord;
use crate::util::{millis, now_ms};

/// Runs `job` in its regions, then its fallback chain as the triggers say.
pub(crate) fn run_node<'a>(
    shared: &'a Arc<Shared>,
    record: &'a Arc<JobRecord>,
    job: &'a Job,
    path: Arc<str>,
    permit: Option<Permit>,
) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        let mut primary = Box::pin(run_regions(shared, record, job, &path, permit));
        let Some(fallback) = job.fallback_job.as_deref() else {
            return primary.await;
        };
        let fallback_path: Arc<str> = Arc::from(format!("{path}.fallback_job").trim_start_matches("primary."));
        match &fallback.trigger {
            Some(Trigger::OnTimeout { timeout }) => {
                let wait = timeout_left(record, &path, *timeout);
                tokio::select! {
                    outcome = &mut primary => outcome,
                    () = tokio::time::sleep(wait) => {
                        // Dropping the future cancels the primary and frees its permit.
                        drop(primary);
                        let timeout_ms = timeout.as_millis();
                        note(record, format!("{fallback_path}: {path} had not answered within {timeout_ms} ms (on_timeout)"));
                        run_node(shared, record, fallback, fallback_path, None).await
                    }
                }
            }
            Some(Trigger::OnError { codes }) => {
                let outcome = primary.await;
                if outcome.stopped {
                    return outcome;
                }
                match outcome.code {
                    Some(code) if !outcome.success && codes.contains(&code) => {
                        note(record, format!("{fallback_path}: {path} ended with {code} (on_error)"));
                        run_node(shared, record, fallback, fallback_path, None).await
                    }
                    _ => outcome,
                }
            }
            Some(Trigger::Any) => {
                let outcome = primary.await;
                if outcome.success || outcome.stopped {
                    return outcome;
                }
                note(record, format!("{fallback_path}: {path} failed (any)"));
                run_node(shared, record, fallback, fallback_path, None).await
            }
            // `Job::validate` refuses a fallback without a trigger; run the primary alone.
            None => primary.await,
        }
    })
}

/// What is left of `path`'s `on_timeout` window. Its deadline is saved with the job when
/// the step first starts, so a job resumed after a restart keeps it (and runs the fallback
/// at once when it passed).
fn timeout_left(record: &JobRecord, path: &str, timeout: std::time::Duration) -> std::time::Duration {
    let now = now_ms();
    let deadline = *record
        .state()
        .detail()
        .timeout_deadlines_ms
        .entry(path.to_owned())
        .or_insert_with(|| now.saturating_add(millis(timeout)));
    std::time::Duration::from_millis(deadline.saturating_sub(now))
}

fn note(record: &JobRecord, event: String) {
    record.state().detail().events.push(event);
}
