//! `on_success` / `on_failure` children: submitted as new jobs (with their own keys and
//! webhooks) when the parent ends. `on_failure_timeout_ms` submits `on_failure` early if
//! the parent has not succeeded by then; `on_failure` is submitted at most once.

use std::sync::Arc;

use ezthrottle_core::protocol::{ChildJob, ChildRelation, Job, JobStatus};

use crate::engine::Shared;
use crate::store::JobRecord;
use crate::submit::{Admission, accept};

/// Submits the child the parent's outcome calls for.
pub(crate) fn on_finished(shared: &Arc<Shared>, record: &Arc<JobRecord>, success: bool) {
    let job = record.job();
    if success {
        if let Some(child) = job.on_success.as_deref() {
            submit_child(shared, record, child, ChildRelation::OnSuccess);
        }
    } else if let Some(child) = job.on_failure.as_deref()
        && claim_on_failure(record)
    {
        submit_child(shared, record, child, ChildRelation::OnFailure);
    }
}

/// Arms the `on_failure_timeout_ms` timer of a just-accepted job.
pub(crate) fn arm_failure_timeout(shared: &Arc<Shared>, record: &Arc<JobRecord>) {
    let (Some(timeout), Some(_)) = (record.job().on_failure_timeout, record.job().on_failure.as_deref()) else {
        return;
    };
    let (shared, record) = (Arc::clone(shared), Arc::clone(record));
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if record.status() != JobStatus::Success
            && let Some(child) = record.job().on_failure.as_deref()
            && claim_on_failure(&record)
        {
            record
                .state()
                .detail()
                .events
                .push(format!("on_failure: the job had not succeeded within {} ms", timeout.as_millis()));
            submit_child(&shared, &record, child, ChildRelation::OnFailure);
        }
    });
}

fn claim_on_failure(record: &JobRecord) -> bool {
    let mut state = record.state();
    let detail = state.detail();
    !std::mem::replace(&mut detail.on_failure_spawned, true)
}

fn submit_child(shared: &Arc<Shared>, parent: &Arc<JobRecord>, child: &Job, relation: ChildRelation) {
    let result = accept(shared, parent.tenant_arc(), child.clone(), Admission::Bypass);
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
    shared.store.updated(parent);
}
