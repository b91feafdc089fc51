//! The in-memory store: sharded, no global lock, idle keys evicted.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::algorithm::{Algorithm, Bucket, Decision, Log};
use super::clock::{Clock, SystemClock};
use super::store::{Check, RateLimitStore};
use crate::StoreError;

const SHARDS: usize = 64;
/// Every this many checks, the next shard (round robin) drops its idle keys.
const SWEEP_EVERY: u32 = 256;

/// Rate-limit state in this process: 64 independently locked shards (a key's shard is
/// chosen by hash, so unrelated keys rarely contend), idle keys dropped as the shard is used.
///
/// Clones share the same state. Use [`MemoryRateLimitStore::with_clock`] and a
/// [`ManualClock`](super::ManualClock) to test exact refill behaviour.
#[derive(Clone)]
pub struct MemoryRateLimitStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Box<dyn Clock>,
    checks: AtomicU32,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Box<str>, Entry>,
}

struct Entry {
    state: State,
    idle_ttl: Duration,
    last_seen: Duration,
}

enum State {
    Bucket(Bucket),
    Log(Log),
}

impl Default for MemoryRateLimitStore {
    fn default() -> Self {
        Self::with_clock(SystemClock::default())
    }
}

impl MemoryRateLimitStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store on `clock`.
    pub fn with_clock(clock: impl Clock) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                hasher: RandomState::new(),
                clock: Box::new(clock),
                checks: AtomicU32::new(0),
            }),
        }
    }

    /// Checks and counts one key.
    pub fn check_one(&self, key: &str, algorithm: &Algorithm) -> Decision {
        let now = self.inner.clock.now();
        let count = self.inner.checks.fetch_add(1, Ordering::Relaxed);
        if count.is_multiple_of(SWEEP_EVERY) {
            // Round robin, so every shard is swept whichever keys are busy; done before taking
            // this key's shard, so no two shard locks are ever held at once.
            self.sweep((count / SWEEP_EVERY) as usize % SHARDS, now);
        }
        let mut shard = self.shard(key);
        if let Some(entry) = shard.entries.get_mut(key) {
            entry.last_seen = now;
            return entry.take(algorithm, now);
        }
        let mut entry = Entry::new(algorithm, now);
        let decision = entry.take(algorithm, now);
        shard.entries.insert(key.into(), entry);
        decision
    }

    /// How many keys are held (idle ones included until their shard sweeps them).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).entries.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the newest admission of a sliding-window key happened (tests and metrics).
    #[doc(hidden)]
    pub fn last_admission(&self, key: &str) -> Option<Duration> {
        match &self.shard(key).entries.get(key)?.state {
            State::Log(log) => log.last(),
            State::Bucket(_) => None,
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        self.shard_at((self.inner.hasher.hash_one(key) as usize) % SHARDS)
    }

    fn shard_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        // `index < SHARDS` by construction; `get` keeps the indexing lint satisfied.
        lock(self.inner.shards.get(index).unwrap_or_else(|| unreachable!("index < SHARDS")))
    }

    fn sweep(&self, index: usize, now: Duration) {
        self.shard_at(index).entries.retain(|_, entry| now.saturating_sub(entry.last_seen) < entry.idle_ttl);
    }
}

impl Entry {
    fn new(algorithm: &Algorithm, now: Duration) -> Self {
        let state = match *algorithm {
            Algorithm::TokenBucket { burst, .. } => State::Bucket(Bucket::full(burst, now)),
            Algorithm::SlidingWindow { .. } => State::Log(Log::default()),
        };
        Self { state, idle_ttl: algorithm.idle_ttl(), last_seen: now }
    }

    fn take(&mut self, algorithm: &Algorithm, now: Duration) -> Decision {
        loop {
            match (&mut self.state, *algorithm) {
                (State::Bucket(bucket), Algorithm::TokenBucket { rate_per_sec, burst }) => {
                    return bucket.take(rate_per_sec, burst, now);
                }
                (State::Log(log), Algorithm::SlidingWindow { limit, window }) => return log.take(limit, window, now),
                // The same key under another algorithm (a rule changed): start afresh.
                _ => *self = Entry::new(algorithm, now),
            }
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave it inconsistent (plain field writes).
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RateLimitStore for MemoryRateLimitStore {
    type Future = Ready<Result<Vec<Decision>, StoreError>>;

    fn check(&self, checks: Vec<Check>) -> Self::Future {
        ready(Ok(checks.iter().map(|check| self.check_one(&check.key, &check.algorithm)).collect()))
    }
}

impl std::fmt::Debug for MemoryRateLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimitStore").field("shards", &SHARDS).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::ManualClock;

    #[test]
    fn keys_are_independent_and_idle_ones_are_evicted() {
        let clock = ManualClock::new();
        let store = MemoryRateLimitStore::with_clock(clock.clone());
        let algorithm = Algorithm::token_bucket(1.0, 1);
        assert!(store.check_one("a", &algorithm).allowed);
        assert!(!store.check_one("a", &algorithm).allowed);
        assert!(store.check_one("b", &algorithm).allowed);
        assert_eq!(store.len(), 2);
        clock.advance(Duration::from_secs(5));
        for i in 0..(SWEEP_EVERY as usize * SHARDS) {
            store.check_one(&format!("k{}", i % 4), &algorithm);
        }
        assert!(store.len() <= 4, "idle keys a and b were swept: {}", store.len());
    }
}
