//! Where jobs and idempotency keys live.
//!
//! The scheduler only talks to the small [`JobStore`] trait, so a durable store can
//! replace [`MemoryStore`] without touching it.

mod memory;
mod record;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use memory::MemoryStore;
pub(crate) use record::AttemptRecord;
pub use record::JobRecord;

/// The answer of [`JobStore::insert_if_absent`].
#[derive(Debug, Clone)]
pub enum Insert {
    /// The key was free (or expired): the job is stored and the key bound to it.
    Inserted,
    /// A live binding exists: this is the job the key is bound to. Nothing was stored.
    Duplicate(Arc<JobRecord>),
}

/// Storage for jobs and their idempotency keys.
///
/// `insert_if_absent` must be atomic: of any number of concurrent calls with the same key,
/// exactly one stores its job and the others see it as a duplicate.
pub trait JobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Binds `key` (already scoped to the tenant) to `job` and stores `job`, unless a
    /// binding made less than `ttl` ago exists.
    fn insert_if_absent(&self, key: &str, job: Arc<JobRecord>, ttl: Duration, now: Instant) -> Insert;

    /// The job `key` is bound to, if the binding is less than `ttl` old.
    fn find(&self, key: &str, ttl: Duration, now: Instant) -> Option<Arc<JobRecord>>;

    /// Undoes an [`Insert::Inserted`]: removes the job and, if still bound to it, the key.
    /// Used when admission control refuses a job after the key was claimed.
    fn remove(&self, key: &str, job_id: &str);

    /// The job with this id.
    fn get(&self, job_id: &str) -> Option<Arc<JobRecord>>;

    /// Called after every change of a job's progress; a durable store persists it here.
    fn updated(&self, _job: &JobRecord) {}

    /// Drops keys bound more than `ttl` ago and jobs finished more than `retention` ago.
    /// Returns how many entries were removed.
    fn sweep(&self, now: Instant, ttl: Duration, retention: Duration) -> usize;

    /// How many jobs are stored.
    fn len(&self) -> usize;

    /// Whether no job is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
