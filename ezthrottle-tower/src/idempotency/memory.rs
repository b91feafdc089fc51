//! [`MemoryIdempotencyStore`]: a sharded in-process store.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse};
use crate::StoreError;

const SHARDS: usize = 64;
/// Inserts into one shard between two sweeps of its expired entries.
const SWEEP_EVERY: u32 = 1024;

/// An in-process idempotency store, for a single receiver replica.
///
/// 64 shards, each a `Mutex<HashMap>` picked by the key's hash: no global lock, and each
/// lock is held only for a map operation. Expired entries are dropped when met, and each
/// shard sweeps its expired entries every 1,024 inserts. At most
/// [`capacity`](Self::with_capacity) keys (default 1,000,000) are kept: when a shard is
/// full even after a sweep, new keys get a [`StoreError`] (the layer answers 503) rather
/// than growing without bound or silently forgetting answers.
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
    per_shard: usize,
    tokens: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<String, Entry>,
    inserts: u32,
}

#[derive(Debug)]
enum Entry {
    InFlight { fingerprint: Fingerprint, token: u64, notify: Arc<Notify>, expires: Instant },
    Done { response: StoredResponse, expires: Instant },
}

impl Entry {
    fn expires(&self) -> Instant {
        match self {
            Self::InFlight { expires, .. } | Self::Done { expires, .. } => *expires,
        }
    }
}

impl Default for MemoryIdempotencyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIdempotencyStore {
    /// Default maximum number of keys kept (in flight or answered): 1,000,000.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// An empty store keeping up to 1,000,000 keys.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// An empty store keeping up to about `capacity` keys (spread over 64 shards).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                hasher: RandomState::new(),
                per_shard: capacity.div_ceil(SHARDS).max(1),
                tokens: AtomicU64::new(1),
            }),
        }
    }

    /// How many keys it holds (expired ones not yet swept included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| lock(shard).entries.len()).sum()
    }

    /// Whether it holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    fn state(entry: Option<&Entry>, now: Instant) -> Option<Begin> {
        match entry {
            Some(entry) if entry.expires() <= now => None,
            Some(Entry::InFlight { fingerprint, .. }) => Some(Begin::InFlight { fingerprint: *fingerprint }),
            Some(Entry::Done { response, .. }) => Some(Begin::Completed(response.clone())),
            None => None,
        }
    }
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

impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, key: &str, fingerprint: Fingerprint, lock_ttl: Duration) -> Result<Begin, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if let Some(state) = Self::state(shard.entries.get(key), now) {
            return Ok(state);
        }
        shard.inserts = shard.inserts.wrapping_add(1);
        if shard.inserts.is_multiple_of(SWEEP_EVERY) || shard.entries.len() >= self.inner.per_shard {
            shard.entries.retain(|_, entry| entry.expires() > now);
        }
        if shard.entries.len() >= self.inner.per_shard && !shard.entries.contains_key(key) {
            return Err(StoreError("the in-memory idempotency store is full".into()));
        }
        let token = self.inner.tokens.fetch_add(1, Ordering::Relaxed);
        let entry = Entry::InFlight { fingerprint, token, notify: Arc::new(Notify::new()), expires: now + lock_ttl };
        shard.entries.insert(key.to_owned(), entry);
        Ok(Begin::Acquired(LockToken(token.to_string())))
    }

    async fn complete(
        &self,
        key: &str,
        token: &LockToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut shard = self.shard(key);
        if let Some(Entry::InFlight { token: held, notify, .. }) = shard.entries.get(key)
            && Some(*held) == token_of(token)
        {
            let notify = Arc::clone(notify);
            shard.entries.insert(key.to_owned(), Entry::Done { response, expires: Instant::now() + ttl });
            drop(shard);
            notify.notify_waiters();
        }
        Ok(())
    }

    async fn release(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let mut shard = self.shard(key);
        if let Some(Entry::InFlight { token: held, .. }) = shard.entries.get(key)
            && Some(*held) == token_of(token)
            && let Some(Entry::InFlight { notify, .. }) = shard.entries.remove(key)
        {
            drop(shard);
            notify.notify_waiters();
        }
        Ok(())
    }

    async fn wait(&self, key: &str, timeout: Duration) -> Result<Begin, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let notify = {
                let shard = self.shard(key);
                match shard.entries.get(key) {
                    Some(Entry::InFlight { notify, expires, fingerprint, .. }) if *expires > Instant::now() => {
                        (Arc::clone(notify), *fingerprint)
                    }
                    other => return Ok(Self::state(other, Instant::now()).unwrap_or(Begin::Released)),
                }
            };
            let (notify, fingerprint) = notify;
            let mut notified = std::pin::pin!(notify.notified());
            notified.as_mut().enable();
            // Re-check after registering: the answer may have landed in between.
            {
                let shard = self.shard(key);
                match shard.entries.get(key) {
                    Some(Entry::InFlight { notify: current, expires, .. })
                        if Arc::ptr_eq(current, &notify) && *expires > Instant::now() => {}
                    _ => continue,
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Begin::InFlight { fingerprint });
            }
        }
    }
}
