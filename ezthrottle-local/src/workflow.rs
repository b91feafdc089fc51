//! `on_success` / `on_failure` children: submitted as new jobs (with their own keys and
//! webhooks) when the parent ends. `on_failure_timeout_ms` submits `on_failure` early if
//! the parent has not succeeded by then; `on_failure` is submitted at most once.

use std::sync::Arc;

use ezthrottle_core::protocol::{ChildJob, ChildRelation, Job, JobStatus};

use std::time::Duration;

use crate::engine::Shared;
use crate::store::JobRecord;
use crate::submit::{Admission, accept};
use crate::util::{millis, now_ms};

/// Submits the child the parent's outcome calls for, once: a job resumed after a restart
/// submits it again only if that was not saved (the child's key makes a repeat harmless).
pub(crate) async fn on_finished(shared: &Arc<Shared>, record: &Arc<JobRecord>, success: bool) {
    let job = record.job();
    if job.on_success.is_none() && job.on_failure.is_none() {
        return;
    }
    if record.state().detail_ref().is_some_and(|detail| detail.children_submitted) {
        return;
    }
    if success {
        if let Some(child) = job.on_success.as_deref() {
            submit_child(shared, record, child, ChildRelation::OnSuccess).await;
        }
    } else if let Some(child) = job.on_failure.as_deref()
        && claim_on_failure(record)
    {
        submit_child(shared, record, child, ChildRelation::OnFailure).await;
    }
    record.state().detail().children_submitted = true;
    shared.persist(record).await;
}

/// Arms the `on_failure_timeout_ms` timer of a job, counted from its acceptance (so a job
/// resumed after a restart keeps its deadline).
pub(crate) fn arm_failure_timeout(shared: &Arc<Shared>, record: &JobRecord) {
    let (Some(timeout), Some(_)) = (record.job().on_failure_timeout, record.job().on_failure.as_deref()) else {
        return;
    };
    if record.state().detail_ref().is_some_and(|detail| detail.on_failure_spawned) {
        return;
    }
    let deadline = record.accepted_at_ms().saturating_add(millis(timeout));
    let wait = Duration::from_millis(deadline.saturating_sub(now_ms()));
    // The timer holds the id only: a queued job's record stays in the store.
    let (shared, job_id) = (Arc::clone(shared), record.id().to_owned());
    tokio::spawn(async move {
        if !crate::executor::sleep_unless_stopping(&shared, wait).await {
            return;
        }
        let record = match shared.live.get(&*shared.store, &job_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(job_id, error = %ezthrottle_core::ErrorChain(&err), "on_failure_timeout_ms: the job could not be read");
                return;
            }
        };
        if record.status() != JobStatus::Success
            && let Some(child) = record.job().on_failure.as_deref()
            && claim_on_failure(&record)
        {
            record
                .state()
                .detail()
                .events
                .push(format!("on_failure: the job had not succeeded within {} ms", timeout.as_millis()));
            submit_child(&shared, &record, child, ChildRelation::OnFailure).await;
        }
    });
}

fn claim_on_failure(record: &JobRecord) -> bool {
    let mut state = record.state();
    let detail = state.detail();
    !std::mem::replace(&mut detail.on_failure_spawned, true)
}

async fn submit_child(shared: &Arc<Shared>, parent: &Arc<JobRecord>, child: &Job, relation: ChildRelation) {
    // Boxed: `accept` may schedule a child whose own end submits children.
    let result = Box::pin(accept(shared, parent.tenant_arc(), child.clone(), Admission::Bypass)).await;
    {
        let mut state = parent.state();
        let detail = state.detail();
        match result {
            Ok(accepted) => detail.children.push(ChildJob::new(
                accepted.receipt.job_id.clone(),
                relation,
                accepted.receipt.duplicate,
            )),
            Err(err) => detail.events.push(format!("{}: the child job was refused: {err}", relation.as_str())),
        }
    }
    shared.persist(parent).await;
}
