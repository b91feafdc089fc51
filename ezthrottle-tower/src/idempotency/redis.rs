//! [`RedisIdempotencyStore`]: idempotency keys shared by every replica using one Redis.

use std::sync::Arc;
use std::time::Duration;

use super::store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse, decode_fingerprint};
use crate::StoreError;
use crate::redis_connection::{self, RedisConnection};

/// Takes the key (`SET NX PX`) or answers its value, atomically.
const BEGIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'A' end
local value = redis.call('GET', KEYS[1])
if not value then return 'R' end
return value
";
/// Stores the answer if the caller still holds the lock.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";
/// Deletes the key if the caller still holds the lock.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// First and largest pause between two polls of an in-flight key.
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Idempotency keys in Redis, so several replicas of a receiver share one view.
///
/// - `begin` is one round trip: a Lua script does `SET key <lock> NX PX <lock_ttl>` and,
///   when the key exists, answers its value (a lock holding the request's fingerprint, or
///   a stored answer).
/// - `complete` replaces the lock with the answer (`PX <ttl>`), `release` deletes it; both
///   only if the caller still holds the lock (compare-and-set in Lua), so a request whose
///   lock expired cannot clobber the next holder.
/// - `wait` for an in-flight key running on another replica **polls** `GET` with a bounded
///   exponential backoff (2 ms doubling to 100 ms) until the answer appears, the key is
///   released, or the wait timeout passes: no pub/sub connection is needed.
///
/// Keys live under a prefix (default `ezthrottle:idem:`); answers are JSON. The
/// connection is the crate's shared lazily-opened `ConnectionManager`, every call bounded
/// by the timeout (default 500 ms); a failure answers 503 (fail closed).
#[derive(Clone, Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisIdempotencyStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: RedisConnection,
    begin: redis::Script,
    complete: redis::Script,
    release: redis::Script,
}

impl RedisIdempotencyStore {
    /// Default bound on every Redis call (connect included): 500 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// A store on `client`, keys under `ezthrottle:idem:`, 500 ms timeout.
    #[must_use]
    pub fn new(client: redis::Client) -> Self {
        Self::with_options(client, "ezthrottle:idem:", Self::DEFAULT_TIMEOUT)
    }

    /// A store on the Redis at `url` (e.g. `redis://127.0.0.1:6379`).
    ///
    /// # Errors
    ///
    /// An unparsable URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        redis_connection::client(url).map(Self::new).map_err(StoreError)
    }

    /// A store with its own key prefix and call timeout.
    #[must_use]
    pub fn with_options(client: redis::Client, prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                connection: RedisConnection::new(client, prefix.into(), timeout),
                begin: redis::Script::new(BEGIN),
                complete: redis::Script::new(COMPLETE),
                release: redis::Script::new(RELEASE),
            }),
        }
    }

    fn state(value: &[u8]) -> Result<Begin, StoreError> {
        match value.split_first() {
            Some((b'R', _)) => Ok(Begin::Released),
            Some((b'L', rest)) => {
                // L<token>:<fingerprint hex>
                let fingerprint = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|rest| rest.rsplit(':').next())
                    .and_then(decode_fingerprint)
                    .ok_or_else(|| StoreError("unreadable lock in Redis".into()))?;
                Ok(Begin::InFlight { fingerprint })
            }
            Some((b'D', rest)) => StoredResponse::from_json(rest)
                .map(Begin::Completed)
                .ok_or_else(|| StoreError("unreadable stored answer in Redis".into())),
            _ => Err(StoreError("unexpected value in Redis".into())),
        }
    }

    /// Runs one of the store's scripts on the connection.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.inner
            .connection
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(StoreError)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.inner.connection.key(key);
        self.inner
            .connection
            .run(|mut connection| async move { redis::cmd("GET").arg(key).query_async(&mut connection).await })
            .await
            .map_err(StoreError)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl IdempotencyStore for RedisIdempotencyStore {
    async fn begin(&self, key: &str, fingerprint: Fingerprint, lock_ttl: Duration) -> Result<Begin, StoreError> {
        let lock = format!("L{}:{}", self.inner.connection.unique_id(), hex::encode(fingerprint));
        let mut invocation = self.inner.begin.key(self.inner.connection.key(key));
        invocation.arg(&lock).arg(millis(lock_ttl));
        let value: Vec<u8> = self.invoke(&invocation).await?;
        if value == b"A" {
            return Ok(Begin::Acquired(LockToken(lock)));
        }
        Self::state(&value)
    }

    async fn complete(
        &self,
        key: &str,
        token: &LockToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let value = format!("D{}", response.to_json());
        let mut invocation = self.inner.complete.key(self.inner.connection.key(key));
        invocation.arg(&token.0).arg(value).arg(millis(ttl));
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }

    async fn release(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let mut invocation = self.inner.release.key(self.inner.connection.key(key));
        invocation.arg(&token.0);
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }

    async fn wait(&self, key: &str, timeout: Duration) -> Result<Begin, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = POLL_FIRST;
        loop {
            let state = match self.get(key).await? {
                None => return Ok(Begin::Released),
                Some(value) => Self::state(&value)?,
            };
            let Begin::InFlight { .. } = state else { return Ok(state) };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(state);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}
