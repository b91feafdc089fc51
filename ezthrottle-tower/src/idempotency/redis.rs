//! [`RedisIdempotencyStore`]: idempotency keys shared by every replica using one Redis.

use std::sync::Arc;
use std::time::Duration;

use super::store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse, deadline, decode_fingerprint};
use crate::StoreError;
use crate::redis_connection::{self, RedisConnection};

// Every script gets KEYS[1], the key (a lock `L<token>:<fingerprint>` or an answer
// `D<json>`), and KEYS[2], its heartbeat: present while the lock is renewed in time. A lock
// whose heartbeat lapsed is lost (`X<lock>`) until the key itself expires.

/// Takes the key (`SET NX PX`) or answers its value, atomically.
const BEGIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return 'A'
end
local value = redis.call('GET', KEYS[1])
if not value then return 'R' end
if string.sub(value, 1, 1) == 'L' and redis.call('EXISTS', KEYS[2]) == 0 then return 'X' .. value end
return value
";
/// The key's value, a lost lock marked `X` (for `wait`).
const PEEK: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return 'R' end
if string.sub(value, 1, 1) == 'L' and redis.call('EXISTS', KEYS[2]) == 0 then return 'X' .. value end
return value
";
/// Extends the lock if the caller still holds it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
";
/// Stores the answer if the caller still holds the lock.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
";
/// Deletes the key if the caller still holds the lock.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0
";

/// Deletes the key unless a live lock holds it (a lapsed one goes): 1 if there was one.
const CLEAR: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
if string.sub(value, 1, 1) == 'L' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
";

/// First and largest pause between two polls of an in-flight key.
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Idempotency keys in Redis, so several replicas of a receiver share one view.
///
/// - `begin` is one round trip: a Lua script does `SET key <lock> NX PX <lock_ttl>` and,
///   when the key exists, answers its value (a lock holding the request's fingerprint, or
///   a stored answer).
/// - `renew` extends the lock (a heartbeat key `<key>:hb`, `PX <lock_ttl>`) while the
///   handler runs; a lock whose heartbeat lapsed is [`Begin::Lost`] for another
///   `lock_ttl`, then the key is free.
/// - `complete` replaces the lock with the answer (`PX <ttl>`), `release` deletes it;
///   these and `renew` act only if the caller still holds the lock (compare-and-set by
///   token in Lua), so a request whose lock expired cannot clobber the next holder.
/// - `inspect` reads the key's value (one script call); `clear` deletes a stored answer or
///   a lapsed lock, never a live one (compare in Lua).
/// - `wait` for an in-flight key running on another replica **polls** `GET` with a bounded
///   exponential backoff (2 ms doubling to 100 ms) until the answer appears, the key is
///   released, or the wait timeout passes: no pub/sub connection is needed.
///
/// Keys live under a prefix (default `ezthrottle:idem:`); the layer's keys are digests
/// (no raw `Idempotency-Key` or credential shows in `SCAN` or `MONITOR`); answers are JSON. The
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
    peek: redis::Script,
    renew: redis::Script,
    complete: redis::Script,
    release: redis::Script,
    clear: redis::Script,
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
                peek: redis::Script::new(PEEK),
                renew: redis::Script::new(RENEW),
                complete: redis::Script::new(COMPLETE),
                release: redis::Script::new(RELEASE),
                clear: redis::Script::new(CLEAR),
            }),
        }
    }

    fn state(value: &[u8]) -> Result<Begin, StoreError> {
        // L<token>:<fingerprint hex>
        let lock_fingerprint = |rest: &[u8]| {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|rest| rest.rsplit(':').next())
                .and_then(decode_fingerprint)
                .ok_or_else(|| StoreError("unreadable lock in Redis".into()))
        };
        match value.split_first() {
            Some((b'R', _)) => Ok(Begin::Released),
            Some((b'L', rest)) => Ok(Begin::InFlight { fingerprint: lock_fingerprint(rest)? }),
            Some((b'X', [b'L', rest @ ..])) => Ok(Begin::Lost { fingerprint: lock_fingerprint(rest)? }),
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

    /// The key's state (for `wait`): one script call.
    async fn peek(&self, key: &str) -> Result<Begin, StoreError> {
        let value: Vec<u8> = self.invoke(&self.keys(&self.inner.peek, key)).await?;
        Self::state(&value)
    }

    /// An invocation of `script` on `key` and its heartbeat.
    fn keys<'a>(&self, script: &'a redis::Script, key: &str) -> redis::ScriptInvocation<'a> {
        let key = self.inner.connection.key(key);
        let mut invocation = script.key(&key);
        invocation.key(format!("{key}:hb"));
        invocation
    }
}

/// Redis refuses expiries past about 292 million years from now; cap far below (100 years):
/// a larger duration means forever.
const MAX_MILLIS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).clamp(1, MAX_MILLIS)
}

/// How long a lock key lives: `lock_ttl` renewed, then `lock_ttl` more as lost.
fn lock_life(lock_ttl: Duration) -> u64 {
    millis(lock_ttl).saturating_mul(2).min(MAX_MILLIS)
}

impl IdempotencyStore for RedisIdempotencyStore {
    async fn begin(&self, key: &str, fingerprint: Fingerprint, lock_ttl: Duration) -> Result<Begin, StoreError> {
        let lock = format!("L{}:{}", self.inner.connection.unique_id(), hex::encode(fingerprint));
        let mut invocation = self.keys(&self.inner.begin, key);
        invocation.arg(&lock).arg(millis(lock_ttl)).arg(lock_life(lock_ttl));
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
        let mut invocation = self.keys(&self.inner.complete, key);
        invocation.arg(&token.0).arg(value).arg(millis(ttl));
        let stored: i64 = self.invoke(&invocation).await?;
        if stored == 1 { Ok(()) } else { Err(StoreError("the lock on this idempotency key is no longer held".into())) }
    }

    async fn renew(&self, key: &str, token: &LockToken, lock_ttl: Duration) -> Result<bool, StoreError> {
        let mut invocation = self.keys(&self.inner.renew, key);
        invocation.arg(&token.0).arg(millis(lock_ttl)).arg(lock_life(lock_ttl));
        let renewed: i64 = self.invoke(&invocation).await?;
        Ok(renewed == 1)
    }

    async fn release(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        let mut invocation = self.keys(&self.inner.release, key);
        invocation.arg(&token.0);
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }

    async fn inspect(&self, key: &str) -> Result<Option<Begin>, StoreError> {
        match self.peek(key).await? {
            Begin::Released => Ok(None),
            state => Ok(Some(state)),
        }
    }

    async fn clear(&self, key: &str) -> Result<bool, StoreError> {
        let cleared: i64 = self.invoke(&self.keys(&self.inner.clear, key)).await?;
        Ok(cleared == 1)
    }

    async fn wait(&self, key: &str, timeout: Duration) -> Result<Begin, StoreError> {
        let until = deadline(tokio::time::Instant::now(), timeout);
        let mut pause = POLL_FIRST;
        loop {
            let state = self.peek(key).await?;
            let Begin::InFlight { .. } = state else { return Ok(state) };
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(state);
            }
            tokio::time::sleep(pause.min(until - now)).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}
