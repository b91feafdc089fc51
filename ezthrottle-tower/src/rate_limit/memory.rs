//! The in-memory store: sharded, no global lock, idle keys evicted, the keys tracked capped.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
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
/// # Bounded
///
/// The store tracks at most [`max_keys`](Self::max_keys) keys (default
/// [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS), 100,000; spread over the shards, so a shard
/// holds `max_keys / 64` rounded up), whatever clients send. A key costs about 200 bytes
/// (a digest, [`Scope`](super::Scope) keys being SHA-256 digests) plus 16 bytes per request
/// a sliding window holds.
///
/// When a new key finds its shard full, the shard first drops its idle keys (those whose
/// state is back to a fresh one's, so nothing is forgotten). If it is still full, the new
/// key is not tracked: its request counts against an *overflow* bucket shared by every
/// untracked key under the same algorithm. So a flood of fresh keys (made-up API keys, spoofed
/// addresses) cannot grow the memory without bound, and cannot get through either: while the
/// store is full, newcomers share one limit (failing safe), and keys already tracked keep
/// theirs. Refusing newcomers outright would lock out every new client for as long as the
/// flood lasts; letting them through would make the flood unlimited. Overflow buckets are
/// one per distinct algorithm in the rules, and count in [`len`](Self::len).
///
/// Clones share the same state. Use [`MemoryRateLimitStore::with_clock`] and a
/// [`ManualClock`](super::ManualClock) to test exact refill behaviour.
#[derive(Clone)]
pub struct MemoryRateLimitStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// Untracked keys' shared buckets, by algorithm.
    overflow: Mutex<HashMap<AlgorithmKey, Entry>>,
    hasher: RandomState,
    clock: Box<dyn Clock>,
    checks: AtomicU32,
    max_per_shard: AtomicUsize,
}

struct Shard {
    entries: HashMap<Box<str>, Entry>,
    /// No entry expires before this (a lower bound): a full shard is scanned for idle
    /// entries only once one may have expired, so a flood of new keys costs no scans.
    earliest_expiry: Duration,
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

/// An algorithm as a map key (`f64` rates by their bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum AlgorithmKey {
    TokenBucket(u64, u32),
    SlidingWindow(u32, Duration),
}

impl From<&Algorithm> for AlgorithmKey {
    fn from(algorithm: &Algorithm) -> Self {
        match *algorithm {
            Algorithm::TokenBucket { rate_per_sec, burst } => Self::TokenBucket(rate_per_sec.to_bits(), burst),
            Algorithm::SlidingWindow { limit, window } => Self::SlidingWindow(limit, window),
        }
    }
}

impl Default for MemoryRateLimitStore {
    fn default() -> Self {
        Self::with_clock(SystemClock::default())
    }
}

impl MemoryRateLimitStore {
    /// The default bound on the keys tracked: 100,000 (about 20 MB of token buckets).
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

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
                overflow: Mutex::default(),
                hasher: RandomState::new(),
                clock: Box::new(clock),
                checks: AtomicU32::new(0),
                max_per_shard: AtomicUsize::new(per_shard(Self::DEFAULT_MAX_KEYS)),
            }),
        }
    }

    /// Tracks at most `max` keys (rounded up to a multiple of the 64 shards, at least one
    /// per shard); see [the type's docs](Self#bounded) for what happens when full. Clones
    /// share the bound.
    ///
    /// ```
    /// use ezthrottle_tower::rate_limit::MemoryRateLimitStore;
    /// let store = MemoryRateLimitStore::new().max_keys(10_000);
    /// assert_eq!(store.capacity(), 10_048);
    /// ```
    pub fn max_keys(self, max: usize) -> Self {
        self.inner.max_per_shard.store(per_shard(max), Ordering::Relaxed);
        self
    }

    /// The most keys tracked at once (overflow buckets aside).
    pub fn capacity(&self) -> usize {
        self.inner.max_per_shard.load(Ordering::Relaxed).saturating_mul(SHARDS)
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
        let max = self.inner.max_per_shard.load(Ordering::Relaxed);
        if shard.entries.len() >= max && now >= shard.earliest_expiry {
            shard.evict_idle(now);
        }
        if shard.entries.len() >= max {
            drop(shard);
            return self.check_overflow(algorithm, now);
        }
        let mut entry = Entry::new(algorithm, now);
        let decision = entry.take(algorithm, now);
        shard.earliest_expiry = shard.earliest_expiry.min(entry.expiry());
        shard.entries.insert(key.into(), entry);
        decision
    }

    /// Reads one key's state without counting (see [`RateLimitStore::peek`]).
    pub fn peek_one(&self, key: &str, algorithm: &Algorithm) -> Decision {
        let now = self.inner.clock.now();
        let shard = self.shard(key);
        if let Some(entry) = shard.entries.get(key) {
            return entry.peek(algorithm, now);
        }
        let full = shard.entries.len() >= self.inner.max_per_shard.load(Ordering::Relaxed);
        drop(shard);
        // A newcomer to a full shard would count in the overflow bucket.
        let overflow = lock(&self.inner.overflow);
        match overflow.get(&AlgorithmKey::from(algorithm)) {
            Some(entry) if full => entry.peek(algorithm, now),
            _ => Entry::new(algorithm, now).peek(algorithm, now),
        }
    }

    /// How many keys are held (idle ones included until their shard sweeps them), overflow
    /// buckets included.
    pub fn len(&self) -> usize {
        let tracked: usize = self.inner.shards.iter().map(|shard| lock(shard).entries.len()).sum();
        tracked + lock(&self.inner.overflow).len()
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

    fn check_overflow(&self, algorithm: &Algorithm, now: Duration) -> Decision {
        let mut overflow = lock(&self.inner.overflow);
        let entry = overflow.entry(AlgorithmKey::from(algorithm)).or_insert_with(|| Entry::new(algorithm, now));
        entry.last_seen = now;
        entry.take(algorithm, now)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        self.shard_at((self.inner.hasher.hash_one(key) as usize) % SHARDS)
    }

    fn shard_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        // `index < SHARDS` by construction; `get` keeps the indexing lint satisfied.
        lock(self.inner.shards.get(index).unwrap_or_else(|| unreachable!("index < SHARDS")))
    }

    fn sweep(&self, index: usize, now: Duration) {
        self.shard_at(index).evict_idle(now);
        if index == 0 {
            lock(&self.inner.overflow).retain(|_, entry| !entry.is_idle(now));
        }
    }
}

impl Default for Shard {
    fn default() -> Self {
        // Empty: nothing expires.
        Self { entries: HashMap::new(), earliest_expiry: Duration::MAX }
    }
}

/// The keys each shard may hold for a bound of `max` in all.
fn per_shard(max: usize) -> usize {
    max.div_ceil(SHARDS).max(1)
}

impl Shard {
    /// Drops the entries whose state is back to a fresh one's.
    fn evict_idle(&mut self, now: Duration) {
        let mut earliest = Duration::MAX;
        self.entries.retain(|_, entry| {
            let keep = !entry.is_idle(now);
            if keep {
                earliest = earliest.min(entry.expiry());
            }
            keep
        });
        self.earliest_expiry = earliest;
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

    fn is_idle(&self, now: Duration) -> bool {
        now.saturating_sub(self.last_seen) >= self.idle_ttl
    }

    /// When the entry becomes idle if not seen again.
    fn expiry(&self) -> Duration {
        self.last_seen.saturating_add(self.idle_ttl)
    }

    /// What `take` would decide, nothing counted; a state of another algorithm (a rule
    /// changed) reads as a fresh one.
    fn peek(&self, algorithm: &Algorithm, now: Duration) -> Decision {
        match (&self.state, *algorithm) {
            (State::Bucket(bucket), Algorithm::TokenBucket { rate_per_sec, burst }) => {
                bucket.peek(rate_per_sec, burst, now)
            }
            (State::Log(log), Algorithm::SlidingWindow { limit, window }) => log.peek(limit, window, now),
            _ => Entry::new(algorithm, now).peek(algorithm, now),
        }
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

fn lock<T>(shard: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave it inconsistent (plain field writes).
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RateLimitStore for MemoryRateLimitStore {
    type Future = Ready<Result<Vec<Decision>, StoreError>>;

    fn check(&self, checks: Vec<Check>) -> Self::Future {
        ready(Ok(checks.iter().map(|check| self.check_one(&check.key, &check.algorithm)).collect()))
    }

    fn peek(&self, checks: Vec<Check>) -> Self::Future {
        ready(Ok(checks.iter().map(|check| self.peek_one(&check.key, &check.algorithm)).collect()))
    }
}

impl std::fmt::Debug for MemoryRateLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimitStore")
            .field("shards", &SHARDS)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
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

    #[test]
    fn a_full_shard_scans_for_idle_keys_only_once_one_may_have_expired() {
        let clock = ManualClock::new();
        let store = MemoryRateLimitStore::with_clock(clock.clone()).max_keys(1);
        let algorithm = Algorithm::sliding_window(1, Duration::from_secs(10));
        assert!(store.check_one("a", &algorithm).allowed);
        let shard = (store.inner.hasher.hash_one("a") as usize) % SHARDS;
        assert_eq!(store.shard_at(shard).earliest_expiry, Duration::from_secs(10));
        clock.advance(Duration::from_secs(10));
        store.shard_at(shard).evict_idle(clock.now());
        assert_eq!(store.shard_at(shard).earliest_expiry, Duration::MAX, "empty: nothing expires");
    }
}
