//! The in-memory store: sharded maps, no global lock on the submission path.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Insert, JobRecord, JobStore};
use crate::util::{lock, now_ms};

const SHARDS: usize = 64;

struct Binding {
    job: Arc<JobRecord>,
    bound_at: Instant,
}

/// Jobs and idempotency keys in memory, each in 64 independently locked shards.
///
/// Lock order is always key shard, then job shard, so concurrent inserts cannot deadlock.
pub struct MemoryStore {
    hasher: RandomState,
    keys: Vec<Mutex<HashMap<Box<str>, Binding>>>,
    jobs: Vec<Mutex<HashMap<Box<str>, Arc<JobRecord>>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("jobs", &self.len()).finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            keys: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            jobs: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard<'a, T>(&self, shards: &'a [T], key: &str) -> &'a T {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        // `index < SHARDS == shards.len()`.
        #[allow(clippy::indexing_slicing)]
        &shards[index]
    }
}

impl JobStore for MemoryStore {
    fn insert_if_absent(&self, key: &str, job: Arc<JobRecord>, ttl: Duration, now: Instant) -> Insert {
        let mut keys = lock(self.shard(&self.keys, key));
        if let Some(binding) = keys.get(key)
            && now.saturating_duration_since(binding.bound_at) < ttl
        {
            return Insert::Duplicate(Arc::clone(&binding.job));
        }
        lock(self.shard(&self.jobs, job.id())).insert(job.id().into(), Arc::clone(&job));
        keys.insert(key.into(), Binding { job, bound_at: now });
        Insert::Inserted
    }

    fn find(&self, key: &str, ttl: Duration, now: Instant) -> Option<Arc<JobRecord>> {
        let keys = lock(self.shard(&self.keys, key));
        keys.get(key)
            .filter(|binding| now.saturating_duration_since(binding.bound_at) < ttl)
            .map(|binding| Arc::clone(&binding.job))
    }

    fn remove(&self, key: &str, job_id: &str) {
        let mut keys = lock(self.shard(&self.keys, key));
        if keys.get(key).is_some_and(|binding| binding.job.id() == job_id) {
            keys.remove(key);
        }
        lock(self.shard(&self.jobs, job_id)).remove(job_id);
    }

    fn get(&self, job_id: &str) -> Option<Arc<JobRecord>> {
        lock(self.shard(&self.jobs, job_id)).get(job_id).cloned()
    }

    fn sweep(&self, now: Instant, ttl: Duration, retention: Duration) -> usize {
        let mut removed = 0;
        for shard in &self.keys {
            let mut keys = lock(shard);
            let before = keys.len();
            keys.retain(|_, binding| now.saturating_duration_since(binding.bound_at) < ttl);
            removed += before - keys.len();
        }
        let cutoff = now_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
        for shard in &self.jobs {
            let mut jobs = lock(shard);
            let before = jobs.len();
            jobs.retain(|_, job| {
                let state = job.state();
                !(state.status.is_finished() && state.finished_at_ms < cutoff)
            });
            removed += before - jobs.len();
        }
        removed
    }

    fn len(&self) -> usize {
        self.jobs.iter().map(|shard| lock(shard).len()).sum()
    }
}
