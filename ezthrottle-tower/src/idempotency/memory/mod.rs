//! [`MemoryIdempotencyStore`]: locks and answers in this process, bounded by bytes.

mod shard;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::collections::hash_map::RandomState;
use tokio::sync::Notify;
use tokio::time::Instant;

use self::shard::{Entry, Limits, Shard, State};
use super::store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse, deadline};
use crate::StoreError;

const SHARDS: usize = 64;
/// Inserts into one shard between two sweeps of its expired entries.
const SWEEP_EVERY: u32 = 1024;

/// An in-process idempotency store, for a single receiver replica.
///
/// 64 shards, each a `Mutex<HashMap>` picked by the key's hash: no global lock, and each
/// lock is held only for a map operation. Expired entries are dropped when met, and each
/// shard sweeps its expired entries every 1,024 inserts.
///
/// # Bounds
///
/// The store holds at most [`max_bytes`](Self::max_bytes) (default 256 MiB: keys,
/// answers and a per-entry overhead of about 128 bytes) and
/// [`with_capacity`](Self::with_capacity) keys (default 1,000,000), each shard a 64th of
/// both. When a new key or answer does not fit, the **finished** entries are evicted,
/// least recently used first (a repeat of an evicted key runs again). Running requests are
/// never evicted: when a shard is full of them, a new key gets a [`StoreError`] (the layer
/// answers 503 with `Retry-After`, failing closed) until one finishes. An answer larger
/// than a 64th of the budget is not kept (its `complete` fails and frees the key), so keep
/// `max_bytes` at least 64 times the layer's `max_stored_body`.
///
/// Cheap to clone: clones share the store.
#[derive(Clone, Debug)]
pub struct MemoryIdempotencyStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    per_shard_keys: AtomicUsize,
    per_shard_bytes: AtomicUsize,
    tokens: AtomicU64,
    /// The LRU clock: every insert or replay takes the next value.
    uses: AtomicU64,
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// Default maximum number of keys kept (in flight or answered): 1,000,000.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// Default byte budget: 256 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

    /// An empty store keeping up to 1,000,000 keys and 256 MiB.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty store keeping up to about `capacity` keys (spread over 64 shards) and
    /// 256 MiB.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                hasher: RandomState::new(),
                per_shard_keys: AtomicUsize::new(per_shard(capacity)),
                per_shard_bytes: AtomicUsize::new(per_shard(Self::DEFAULT_MAX_BYTES)),
                tokens: AtomicU64::new(1),
                uses: AtomicU64::new(1),
            }),
        }
    }

    /// The byte budget (default [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES)), spread
    /// over 64 shards: see [Bounds](Self#bounds). Clones share it.
    ///
    /// ```
    /// use ezthrottle_tower::idempotency::MemoryIdempotencyStore;
    ///
    /// let store = MemoryIdempotencyStore::new().max_bytes(64 * 1024 * 1024);
    /// assert_eq!(store.bytes(), 0);
    /// ```
    #[must_use]
    pub fn max_bytes(self, bytes: usize) -> Self {
        self.inner.per_shard_bytes.store(per_shard(bytes), Ordering::Relaxed);
        self
    }

    /// How many keys it holds (expired ones not yet swept included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Whether it holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many bytes its entries count for (see [Bounds](Self#bounds)).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).bytes()).sum()
    }

    fn limits(&self) -> Limits {
        Limits {
            keys: self.inner.per_shard_keys.load(Ordering::Relaxed),
            bytes: self.inner.per_shard_bytes.load(Ordering::Relaxed),
        }
    }

    fn next_use(&self) -> u64 {
        self.inner.uses.fetch_add(1, Ordering::Relaxed)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let index = usize::try_from(self.inner.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        // `index < SHARDS == shards.len()`; fall back to the first shard rather than panic.
        let shard = self.inner.shards.get(index).or_else(|| self.inner.shards.first());
        match shard {
            Some(shard) => lock(shard),
            None => unreachable_shard(),
        }
    }
}

fn per_shard(total: usize) -> usize {
    total.div_ceil(SHARDS).max(1)
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cold]
fn unreachable_shard() -> ! {
    // `shards` always has SHARDS elements.
    #[allow(clippy::panic)]
    {
        panic!("MemoryIdempotencyStore has no shard")
    }
}

fn token_of(token: &LockToken) -> Option<u64> {
    token.0.parse().ok()
}

/// Whether `entry` is a lock `token` holds (lapsed or not) that has not expired.
fn held_by(entry: Option<&Entry>, token: &LockToken, now: Instant) -> bool {
    matches!(entry, Some(Entry { state: State::InFlight { token: held, .. }, expires, .. })
        if Some(*held) == token_of(token) && *expires > now)
}

fn lost_lock() -> StoreError {
    StoreError("the lock on this idempotency key is no longer held".into())
}

impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, key: &str, fingerprint: Fingerprint, lock_ttl: Duration) -> Result<Begin, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if let Some(state) = shard.get(key).and_then(|entry| entry.begin(now)) {
            if let Begin::Completed(_) = state {
                shard.touch(key, self.next_use());
            }
            return Ok(state);
        }
        shard.remove(key);
        shard.inserts = shard.inserts.wrapping_add(1);
        if shard.inserts.is_multiple_of(SWEEP_EVERY) {
            shard.sweep(now);
        }
        let token = self.inner.tokens.fetch_add(1, Ordering::Relaxed);
        let lapses = deadline(now, lock_ttl);
        let state = State::InFlight { fingerprint, token, notify: Arc::new(Notify::new()), lapses };
        let entry = Entry::in_flight(key, state, deadline(lapses, lock_ttl));
        if !shard.make_room(entry.size(), self.limits(), now) {
            return Err(StoreError("the in-memory idempotency store is full of running requests".into()));
        }
        shard.insert(key, entry);
        Ok(Begin::Acquired(LockToken(token.to_string())))
    }

    async fn renew(&self, key: &str, token: &LockToken, lock_ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if !held_by(shard.get(key), token, now) {
            return Ok(false);
        }
        if let Some(Entry { state: State::InFlight { lapses, .. }, expires, .. }) = shard.get_mut(key) {
            *lapses = deadline(now, lock_ttl);
            *expires = deadline(*lapses, lock_ttl);
        }
        Ok(true)
    }

    async fn complete(
        &self,
        key: &str,
        token: &LockToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if !held_by(shard.get(key), token, now) {
            return Err(lost_lock());
        }
        let Some(Entry { state: State::InFlight { notify, .. }, .. }) = shard.remove(key) else {
            return Err(lost_lock());
        };
        let entry = Entry::done(key, response, self.next_use(), deadline(now, ttl));
        let kept = shard.make_room(entry.size(), self.limits(), now);
        if kept {
            shard.insert(key, entry);
        }
        drop(shard);
        notify.notify_waiters();
        if kept { Ok(()) } else { Err(StoreError("the answer does not fit the idempotency store; key freed".into())) }
    }

    async fn release(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let mut shard = self.shard(key);
        if held_by(shard.get(key), token, Instant::now())
            && let Some(Entry { state: State::InFlight { notify, .. }, .. }) = shard.remove(key)
        {
            drop(shard);
            notify.notify_waiters();
        }
        Ok(())
    }

    async fn wait(&self, key: &str, timeout: Duration) -> Result<Begin, StoreError> {
        let until = deadline(Instant::now(), timeout);
        loop {
            let running = |shard: &Shard| match shard.get(key) {
                Some(Entry { state: State::InFlight { notify, lapses, fingerprint, .. }, expires, .. })
                    if *lapses > Instant::now() && *expires > Instant::now() =>
                {
                    Some((Arc::clone(notify), *lapses, *fingerprint))
                }
                _ => None,
            };
            let Some((notify, lapses, fingerprint)) = running(&self.shard(key)) else {
                let shard = self.shard(key);
                return Ok(shard.get(key).and_then(|entry| entry.begin(Instant::now())).unwrap_or(Begin::Released));
            };
            let mut notified = std::pin::pin!(notify.notified());
            notified.as_mut().enable();
            // Re-check after registering: the answer may have landed in between.
            match running(&self.shard(key)) {
                Some((current, _, _)) if Arc::ptr_eq(&current, &notify) => {}
                _ => continue,
            }
            if tokio::time::timeout_at(until.min(lapses), notified).await.is_err() && until <= lapses {
                return Ok(Begin::InFlight { fingerprint });
            }
        }
    }

    async fn inspect(&self, key: &str) -> Result<Option<Begin>, StoreError> {
        Ok(self.shard(key).get(key).and_then(|entry| entry.begin(Instant::now())))
    }

    async fn clear(&self, key: &str) -> Result<bool, StoreError> {
        let mut shard = self.shard(key);
        let state = shard.get(key).and_then(|entry| entry.begin(Instant::now()));
        if matches!(state, Some(Begin::InFlight { .. })) {
            return Ok(false);
        }
        // An expired entry goes too, but was not there to clear.
        let removed = shard.remove(key);
        drop(shard);
        if let Some(Entry { state: State::InFlight { notify, .. }, .. }) = removed {
            notify.notify_waiters();
        }
        Ok(state.is_some())
    }
}
