//! The one in-memory instance of each job being worked on.
//!
//! A queued job is only its id in a lane: its record lives in the store until it is
//! dispatched. Whoever works on a job (its task, its `on_failure_timeout_ms` timer, the
//! delivery of a resumed job) gets the same instance from here, so two copies never
//! overwrite each other's progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::store::{JobRecord, JobStore, StoreError};
use crate::util::lock;

/// Below this many entries the registry is not pruned.
const PRUNE_FLOOR: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct LiveJobs {
    jobs: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    by_id: HashMap<Box<str>, Weak<JobRecord>>,
    /// Size after the last pruning: the next one comes when the map has doubled.
    pruned_at: usize,
}

impl Registry {
    fn prune(&mut self) {
        self.by_id.retain(|_, job| job.strong_count() > 0);
        self.pruned_at = self.by_id.len();
    }
}

impl LiveJobs {
    /// The job `job_id`: the instance someone is working on, or else the store's, loaded.
    /// `None` when the store no longer has it.
    pub(crate) async fn get(&self, store: &dyn JobStore, job_id: &str) -> Result<Option<Arc<JobRecord>>, StoreError> {
        if let Some(record) = lock(&self.jobs).by_id.get(job_id).and_then(Weak::upgrade) {
            return Ok(Some(record));
        }
        let Some(stored) = store.get(job_id).await? else { return Ok(None) };
        Ok(Some(self.adopt(Arc::new(JobRecord::from_stored(&stored)?))))
    }

    /// Registers `record` as the job's instance, unless another one was registered first
    /// (then that one is answered).
    pub(crate) fn adopt(&self, record: Arc<JobRecord>) -> Arc<JobRecord> {
        let mut jobs = lock(&self.jobs);
        if let Some(existing) = jobs.by_id.get(record.id()).and_then(Weak::upgrade) {
            return existing;
        }
        jobs.by_id.insert(record.id().into(), Arc::downgrade(&record));
        if jobs.by_id.len() > PRUNE_FLOOR.max(jobs.pruned_at.saturating_mul(2)) {
            jobs.prune();
        }
        record
    }

    /// Drops the entries of jobs nobody works on any more.
    pub(crate) fn prune(&self) {
        lock(&self.jobs).prune();
    }
}
