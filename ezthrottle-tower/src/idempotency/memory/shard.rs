//! One shard of [`MemoryIdempotencyStore`](super::MemoryIdempotencyStore): its entries,
//! their byte count, and the least-recently-used order of its finished ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::idempotency::store::{Begin, Fingerprint, StoredResponse};

/// Bytes counted for an entry besides its key and answer: the map slot, the LRU slot, the
/// bookkeeping. An estimate, so the budget bounds the real use within a small factor.
pub(super) const ENTRY_OVERHEAD: usize = 128;
/// Bytes counted per stored header besides its name and value.
const HEADER_OVERHEAD: usize = 32;

#[derive(Debug)]
pub(super) enum State {
    /// A request holds the key; past `lapses` without a renewal its lock is lost.
    InFlight { fingerprint: Fingerprint, token: u64, notify: Arc<Notify>, lapses: Instant },
    /// An answer, last used at `used` (the LRU order).
    Done { response: StoredResponse, used: u64 },
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) state: State,
    /// When the entry is dropped: a lapsed lock stays as [`Begin::Lost`] until then.
    pub(super) expires: Instant,
    size: usize,
}

impl Entry {
    pub(super) fn in_flight(key: &str, state: State, expires: Instant) -> Self {
        Self { state, expires, size: key.len().saturating_add(ENTRY_OVERHEAD) }
    }

    pub(super) fn done(key: &str, response: StoredResponse, used: u64, expires: Instant) -> Self {
        let headers = response
            .headers
            .iter()
            .fold(0usize, |sum, (name, value)| sum.saturating_add(name.as_str().len() + value.len() + HEADER_OVERHEAD));
        let size = key.len().saturating_add(ENTRY_OVERHEAD).saturating_add(response.body.len()).saturating_add(headers);
        Self { state: State::Done { response, used }, expires, size }
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// The key's state at `now`; `None` once expired.
    pub(super) fn begin(&self, now: Instant) -> Option<Begin> {
        match &self.state {
            _ if self.expires <= now => None,
            State::InFlight { fingerprint, lapses, .. } if *lapses <= now => {
                Some(Begin::Lost { fingerprint: *fingerprint })
            }
            State::InFlight { fingerprint, .. } => Some(Begin::InFlight { fingerprint: *fingerprint }),
            State::Done { response, .. } => Some(Begin::Completed(response.clone())),
        }
    }
}

/// The limits every shard keeps (a 64th of the store's).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) keys: usize,
    pub(super) bytes: usize,
}

#[derive(Debug, Default)]
pub(super) struct Shard {
    entries: HashMap<String, Entry>,
    /// Finished entries by last use, oldest first: the eviction order.
    lru: BTreeMap<u64, String>,
    bytes: usize,
    pub(super) inserts: u32,
}

impl Shard {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    pub(super) fn insert(&mut self, key: &str, entry: Entry) {
        if let State::Done { used, .. } = &entry.state {
            self.lru.insert(*used, key.to_owned());
        }
        self.bytes = self.bytes.saturating_add(entry.size);
        if let Some(old) = self.entries.insert(key.to_owned(), entry) {
            self.forget(&old);
        }
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.forget(&entry);
        Some(entry)
    }

    fn forget(&mut self, entry: &Entry) {
        self.bytes = self.bytes.saturating_sub(entry.size);
        if let State::Done { used, .. } = &entry.state {
            self.lru.remove(used);
        }
    }

    /// Marks a finished entry as just used (a replay), so it is evicted last.
    pub(super) fn touch(&mut self, key: &str, now_used: u64) {
        if let Some(Entry { state: State::Done { used, .. }, .. }) = self.entries.get_mut(key) {
            let before = std::mem::replace(used, now_used);
            if let Some(name) = self.lru.remove(&before) {
                self.lru.insert(now_used, name);
            }
        }
    }

    /// Drops the expired entries.
    pub(super) fn sweep(&mut self, now: Instant) {
        let expired: Vec<String> =
            self.entries.iter().filter(|(_, entry)| entry.expires <= now).map(|(key, _)| key.clone()).collect();
        for key in expired {
            self.remove(&key);
        }
    }

    /// Makes room for one more entry of `size` bytes: drops expired entries, then evicts
    /// finished ones, least recently used first. Running requests are never evicted:
    /// `false` when they alone leave no room.
    pub(super) fn make_room(&mut self, size: usize, limits: Limits, now: Instant) -> bool {
        let fits = |shard: &Self| shard.entries.len() < limits.keys && shard.bytes.saturating_add(size) <= limits.bytes;
        if fits(self) {
            return true;
        }
        self.sweep(now);
        while !fits(self) {
            let Some((_, key)) = self.lru.pop_first() else { return false };
            if let Some(entry) = self.entries.remove(&key) {
                self.bytes = self.bytes.saturating_sub(entry.size);
            }
        }
        true
    }
}
