//! The storage contract of [`IdempotencyLayer`](super::IdempotencyLayer).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::StoreError;

/// A SHA-256 digest of a request (method, path with its query, and body): the same key
/// with a different fingerprint is refused with 422.
pub type Fingerprint = [u8; 32];

/// A stored answer, replayed for repeats of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The fingerprint of the request that produced it.
    pub fingerprint: Fingerprint,
    /// The status.
    pub status: StatusCode,
    /// The headers (hop-by-hop headers and `Set-Cookie` excluded).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl StoredResponse {
    /// The headers as a map.
    #[must_use]
    pub fn header_map(&self) -> HeaderMap {
        self.headers.iter().cloned().collect()
    }

    /// Encodes it as JSON (for stores that keep bytes).
    #[must_use]
    pub fn to_json(&self) -> String {
        let headers: Vec<(&str, String)> =
            self.headers.iter().map(|(name, value)| (name.as_str(), hex::encode(value.as_bytes()))).collect();
        serde_json::json!({
            "f": hex::encode(self.fingerprint),
            "s": self.status.as_u16(),
            "h": headers,
            "b": hex::encode(&self.body),
        })
        .to_string()
    }

    /// Decodes [`to_json`](Self::to_json)'s output; `None` if it is not valid.
    #[must_use]
    pub fn from_json(text: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(text).ok()?;
        let fingerprint = decode_fingerprint(value.get("f")?.as_str()?)?;
        let status = StatusCode::from_u16(u16::try_from(value.get("s")?.as_u64()?).ok()?).ok()?;
        let mut headers = Vec::new();
        for pair in value.get("h")?.as_array()? {
            let name = HeaderName::from_bytes(pair.get(0)?.as_str()?.as_bytes()).ok()?;
            let value = HeaderValue::from_bytes(&hex::decode(pair.get(1)?.as_str()?).ok()?).ok()?;
            headers.push((name, value));
        }
        let body = Bytes::from(hex::decode(value.get("b")?.as_str()?).ok()?);
        Some(Self { fingerprint, status, headers, body })
    }
}

pub(crate) fn decode_fingerprint(text: &str) -> Option<Fingerprint> {
    let mut fingerprint = [0u8; 32];
    hex::decode_to_slice(text, &mut fingerprint).ok()?;
    Some(fingerprint)
}

/// The state of a key, as seen by [`IdempotencyStore::begin`] and
/// [`IdempotencyStore::wait`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Begin {
    /// The caller now holds the key: run the handler, then `complete` or `release`.
    Acquired(LockToken),
    /// Another request with this key is running.
    InFlight {
        /// The running request's fingerprint.
        fingerprint: Fingerprint,
    },
    /// A request took this key and its lock lapsed without an answer or a release (its
    /// replica died, or could not renew): whether it ran is unknown, so for a while
    /// (another `lock_ttl`) the key is neither free nor answered.
    Lost {
        /// The lost request's fingerprint.
        fingerprint: Fingerprint,
    },
    /// A stored answer.
    Completed(StoredResponse),
    /// (`wait` only) the running request released the key without an answer (it failed):
    /// try [`begin`](IdempotencyStore::begin) again.
    Released,
}

/// Proof of holding a key, for `complete` and `release` (a lock that expired and was
/// taken by another request is not released by the first holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub(crate) String);

impl LockToken {
    /// A token carrying `value`: whatever the store needs to recognise its own lock later
    /// (a counter, a random id). A store answers it from
    /// [`begin`](IdempotencyStore::begin) and gets it back in `complete` and `release`.
    ///
    /// ```
    /// use ezthrottle_tower::idempotency::LockToken;
    ///
    /// let token = LockToken::new("lock-7");
    /// assert_eq!(token.as_str(), "lock-7");
    /// ```
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value given to [`new`](Self::new).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where [`IdempotencyLayer`](super::IdempotencyLayer) keeps its locks and answers:
/// [`MemoryIdempotencyStore`](super::MemoryIdempotencyStore) or, with feature `redis`,
/// [`RedisIdempotencyStore`](super::RedisIdempotencyStore).
///
/// # Locks
///
/// [`begin`](Self::begin) takes a free key for `lock_ttl`; the layer calls
/// [`renew`](Self::renew) while the handler runs (every third of `lock_ttl`). A lock not
/// renewed in time *lapses*: for another `lock_ttl` the key answers [`Begin::Lost`] (the
/// outcome is unknown: the layer answers 409 rather than run the handler twice), then it
/// is free. The holder of a lapsed lock may still `renew`, `complete` or `release` it
/// until then.
///
/// Durations too large for the clock count as forever (they saturate, never panic).
pub trait IdempotencyStore: Clone + Send + Sync + 'static {
    /// Atomically takes `key` for `lock_ttl` if it is free, or reports its state.
    ///
    /// A store with a memory budget may answer an error when it is full of running
    /// requests (the layer answers 503 with `Retry-After`).
    fn begin(
        &self,
        key: &str,
        fingerprint: Fingerprint,
        lock_ttl: Duration,
    ) -> impl Future<Output = Result<Begin, StoreError>> + Send;

    /// Extends the lock of `token` on `key` to `lock_ttl` from now (also a lapsed one, see
    /// [Locks](Self#locks)); answers whether `token` still holds it.
    fn renew(
        &self,
        key: &str,
        token: &LockToken,
        lock_ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores the answer for `key` for `ttl`.
    ///
    /// # Errors
    ///
    /// The store failed, or `token` no longer holds the key (the answer was not stored).
    fn complete(
        &self,
        key: &str,
        token: &LockToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Frees `key` without an answer (if `token` still holds it) and wakes its waiters.
    fn release(&self, key: &str, token: &LockToken) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Waits, up to `timeout`, until `key` is no longer in flight; answers its state then
    /// ([`Begin::InFlight`] when the time ran out, [`Begin::Lost`] when the lock lapsed).
    fn wait(&self, key: &str, timeout: Duration) -> impl Future<Output = Result<Begin, StoreError>> + Send;

    /// The state of `key` without taking it or changing it: [`Begin::InFlight`],
    /// [`Begin::Lost`] or [`Begin::Completed`]; `None` for a key unknown or expired.
    fn inspect(&self, key: &str) -> impl Future<Output = Result<Option<Begin>, StoreError>> + Send;

    /// Forgets `key`'s stored answer or lapsed lock, so its next request runs the handler;
    /// answers whether there was one. A running request's lock is left alone (`false`):
    /// clearing it would let a repeat run the handler while the first still runs.
    fn clear(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// `now + duration`, or about 30 years from `now` when that does not fit the clock: a
/// configured duration can never overflow an `Instant`.
pub(crate) fn deadline(now: tokio::time::Instant, duration: Duration) -> tokio::time::Instant {
    const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    now.checked_add(duration.min(FOREVER)).or_else(|| now.checked_add(Duration::from_secs(24 * 60 * 60))).unwrap_or(now)
}
