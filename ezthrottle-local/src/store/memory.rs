//! The in-memory store: sharded maps, no global lock on the submission path.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{Insert, JobQuery, JobStatus, JobStore, StoreFuture, StoredJob, StoredProgress, before, binding_is_live};
use crate::util::lock;

const SHARDS: usize = 64;

struct Binding {
    job_id: Arc<str>,
    bound_at: SystemTime,
}

/// A job as the map keeps it: the id and the key are shared with the maps' keys, so each
/// is held once.
struct Kept {
    key: Arc<str>,
    host: Box<str>,
    accepted_at: SystemTime,
    submission: Bytes,
    progress: StoredProgress,
}

impl Kept {
    fn to_stored(&self, id: &str) -> StoredJob {
        StoredJob {
            id: id.to_owned(),
            key: self.key.to_string(),
            host: self.host.to_string(),
            accepted_at: self.accepted_at,
            submission: self.submission.clone(),
            progress: self.progress.clone(),
        }
    }
}

/// Jobs and idempotency keys in memory, each in 64 independently locked shards. Nothing
/// survives the process: the default of [`Engine::builder`](crate::Engine::builder), for
/// tests and throwaway runs.
///
/// Lock order is always key shard, then job shard, so concurrent inserts cannot deadlock.
pub struct MemoryStore {
    hasher: RandomState,
    keys: Vec<Mutex<HashMap<Arc<str>, Binding>>>,
    jobs: Vec<Mutex<HashMap<Arc<str>, Kept>>>,
    secrets: Mutex<HashMap<Box<str>, Bytes>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("jobs", &self.job_count()).finish_non_exhaustive()
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
            secrets: Mutex::new(HashMap::new()),
        }
    }

    fn shard<'a, T>(&self, shards: &'a [T], key: &str) -> &'a T {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        // `index < SHARDS == shards.len()`.
        #[allow(clippy::indexing_slicing)]
        &shards[index]
    }

    fn job(&self, job_id: &str) -> Option<StoredJob> {
        lock(self.shard(&self.jobs, job_id)).get(job_id).map(|kept| kept.to_stored(job_id))
    }

    fn job_count(&self) -> usize {
        self.jobs.iter().map(|shard| lock(shard).len()).sum()
    }
}

impl JobStore for MemoryStore {
    fn insert_if_absent<'a>(&'a self, job: &'a StoredJob, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Insert> {
        let answer = {
            let mut keys = lock(self.shard(&self.keys, &job.key));
            let existing = keys
                .get(job.key.as_str())
                .filter(|binding| binding_is_live(binding.bound_at, now, ttl))
                .and_then(|binding| self.job(&binding.job_id));
            match existing {
                Some(existing) => Insert::Duplicate(existing),
                None => {
                    let (id, key): (Arc<str>, Arc<str>) = (Arc::from(job.id.as_str()), Arc::from(job.key.as_str()));
                    let kept = Kept {
                        key: Arc::clone(&key),
                        host: job.host.as_str().into(),
                        accepted_at: job.accepted_at,
                        submission: job.submission.clone(),
                        progress: job.progress.clone(),
                    };
                    lock(self.shard(&self.jobs, &job.id)).insert(Arc::clone(&id), kept);
                    keys.insert(key, Binding { job_id: id, bound_at: now });
                    Insert::Inserted
                }
            }
        };
        Box::pin(std::future::ready(Ok(answer)))
    }

    fn find<'a>(&'a self, key: &'a str, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Option<StoredJob>> {
        let found = {
            let keys = lock(self.shard(&self.keys, key));
            keys.get(key)
                .filter(|binding| binding_is_live(binding.bound_at, now, ttl))
                .and_then(|b| self.job(&b.job_id))
        };
        Box::pin(std::future::ready(Ok(found)))
    }

    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<StoredJob>> {
        Box::pin(std::future::ready(Ok(self.job(job_id))))
    }

    fn save<'a>(&'a self, job_id: &'a str, progress: &'a StoredProgress) -> StoreFuture<'a, ()> {
        if let Some(kept) = lock(self.shard(&self.jobs, job_id)).get_mut(job_id) {
            kept.progress = progress.clone();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn save_if<'a>(
        &'a self,
        job_id: &'a str,
        progress: &'a StoredProgress,
        only_from: &'a [JobStatus],
    ) -> StoreFuture<'a, bool> {
        let saved = match lock(self.shard(&self.jobs, job_id)).get_mut(job_id) {
            Some(kept) if only_from.contains(&kept.progress.status) => {
                kept.progress = progress.clone();
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(saved)))
    }

    /// A scan of every shard: the memory store keeps no index but the id.
    fn list<'a>(&'a self, query: &'a JobQuery) -> StoreFuture<'a, Vec<StoredJob>> {
        let mut found: Vec<StoredJob> = self
            .jobs
            .iter()
            .flat_map(|shard| {
                lock(shard)
                    .iter()
                    .map(|(id, kept)| kept.to_stored(id))
                    .filter(|job| query.matches(job))
                    .collect::<Vec<_>>()
            })
            .collect();
        found.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        found.truncate(query.limit);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn unsettled(&self) -> StoreFuture<'_, Vec<StoredJob>> {
        let jobs = self
            .jobs
            .iter()
            .flat_map(|shard| {
                lock(shard)
                    .iter()
                    .filter(|(_, kept)| !kept.progress.settled)
                    .map(|(id, kept)| kept.to_stored(id))
                    .collect::<Vec<_>>()
            })
            .collect();
        Box::pin(std::future::ready(Ok(jobs)))
    }

    fn sweep(&self, now: SystemTime, ttl: Duration, retention: Duration) -> StoreFuture<'_, usize> {
        let mut removed = 0;
        for shard in &self.keys {
            let mut keys = lock(shard);
            let before = keys.len();
            keys.retain(|_, binding| binding_is_live(binding.bound_at, now, ttl));
            removed += before - keys.len();
        }
        let cutoff = before(now, retention);
        for shard in &self.jobs {
            let mut jobs = lock(shard);
            let before = jobs.len();
            jobs.retain(|_, kept| !(kept.progress.settled && kept.progress.finished_at.is_some_and(|at| at < cutoff)));
            removed += before - jobs.len();
        }
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn count(&self) -> StoreFuture<'_, usize> {
        Box::pin(std::future::ready(Ok(self.job_count())))
    }

    fn webhook_secrets<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(std::future::ready(Ok(lock(&self.secrets).get(tenant).cloned())))
    }

    fn save_webhook_secrets<'a>(&'a self, tenant: &'a str, document: &'a Bytes) -> StoreFuture<'a, ()> {
        lock(&self.secrets).insert(tenant.into(), document.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}
