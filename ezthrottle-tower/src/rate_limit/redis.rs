//! The Redis store: one Lua script per algorithm, so check-and-count is atomic across
//! every replica sharing the Redis; all rules of a request go in one pipelined round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::algorithm::{Algorithm, Decision};
use super::store::{Check, RateLimitStore};
use crate::StoreError;
use crate::redis_connection::{self, RedisConnection};

const TOKEN_BUCKET: &str = include_str!("token_bucket.lua");
const SLIDING_WINDOW: &str = include_str!("sliding_window.lua");

/// Rate-limit state in Redis, shared by every replica that uses the same server.
///
/// Time comes from the Redis server (`TIME`), so replicas with skewed clocks agree. Key
/// names are the prefix, the rule's name and the digest of the scope's value (see
/// [`Scope`](super::Scope)): no API key or address a client sends is ever a key name, so none
/// shows in `SCAN`, `MONITOR` or the slow log. Every key expires once its state is back to a
/// fresh one's, so Redis holds only the keys in use; bound it with Redis's own `maxmemory`. The
/// connection is opened on first use and every call is bounded by the timeout; when Redis
/// is unreachable the layer fails open or closed as configured, never hangs.
#[derive(Clone, Debug)]
pub struct RedisRateLimitStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: RedisConnection,
    token_bucket: redis::Script,
    sliding_window: redis::Script,
    scripts_loaded: AtomicBool,
}

impl RedisRateLimitStore {
    /// Default bound on every Redis call (connect included): 100 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// A store on `client` with keys under `ezthrottle:rl:` and a 100 ms timeout.
    pub fn new(client: redis::Client) -> Self {
        Self::with_options(client, "ezthrottle:rl:", Self::DEFAULT_TIMEOUT)
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
    pub fn with_options(client: redis::Client, prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                connection: RedisConnection::new(client, prefix.into(), timeout),
                token_bucket: redis::Script::new(TOKEN_BUCKET),
                sliding_window: redis::Script::new(SLIDING_WINDOW),
                scripts_loaded: AtomicBool::new(false),
            }),
        }
    }

    /// The bound on each call.
    pub fn timeout(&self) -> Duration {
        self.inner.connection.timeout()
    }
}

impl Inner {
    /// One script call per check; `peek` reads without counting.
    fn pipeline(&self, checks: &[Check], peek: bool) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for check in checks {
            let key = self.connection.key(&check.key);
            match check.algorithm {
                Algorithm::TokenBucket { rate_per_sec, burst } => {
                    pipeline.invoke_script(self.token_bucket.key(key).arg(rate_per_sec).arg(burst).arg(u8::from(peek)));
                }
                Algorithm::SlidingWindow { limit, window } => {
                    let member = if peek { String::new() } else { self.connection.unique_id() };
                    // Rounded up, so Redis never admits more than the memory store would; a
                    // validated window is 1 ms to ten years, exact as a Lua number.
                    let window_ms = u64::try_from(window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
                    pipeline.invoke_script(
                        self.sliding_window.key(key).arg(limit).arg(window_ms).arg(member).arg(u8::from(peek)),
                    );
                }
            }
        }
        pipeline
    }

    async fn check(&self, checks: Vec<Check>, peek: bool) -> Result<Vec<Decision>, StoreError> {
        let pipeline = self.pipeline(&checks, peek);
        if !self.scripts_loaded.load(Ordering::Acquire) {
            self.load_scripts().await?;
        }
        let answers: Vec<[i64; 4]> = match self.query(&pipeline).await {
            // A restarted or flushed Redis forgot the scripts: load them and try once more.
            Err(err) if err.to_ascii_lowercase().contains("noscript") => {
                self.load_scripts().await?;
                self.query(&pipeline).await.map_err(StoreError)?
            }
            other => other.map_err(StoreError)?,
        };
        if answers.len() != checks.len() {
            return Err(StoreError(format!("Redis answered {} results for {} checks", answers.len(), checks.len())));
        }
        Ok(checks.iter().zip(answers).map(|(check, answer)| decision(&check.algorithm, answer)).collect())
    }

    async fn load_scripts(&self) -> Result<(), StoreError> {
        let (token_bucket, sliding_window) = (&self.token_bucket, &self.sliding_window);
        self.connection
            .run(|mut connection| async move {
                token_bucket.load_async(&mut connection).await?;
                sliding_window.load_async(&mut connection).await
            })
            .await
            .map_err(StoreError)?;
        self.scripts_loaded.store(true, Ordering::Release);
        Ok(())
    }

    async fn query(&self, pipeline: &redis::Pipeline) -> Result<Vec<[i64; 4]>, String> {
        self.connection.run(|mut connection| async move { pipeline.query_async(&mut connection).await }).await
    }
}

fn decision(algorithm: &Algorithm, [allowed, remaining, retry_after_ms, reset_ms]: [i64; 4]) -> Decision {
    let millis = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Decision {
        allowed: allowed == 1,
        limit: algorithm.limit(),
        remaining: u32::try_from(remaining).unwrap_or(0),
        reset: millis(reset_ms),
        retry_after: millis(retry_after_ms),
    }
}

impl RateLimitStore for RedisRateLimitStore {
    type Future = BoxFuture<'static, Result<Vec<Decision>, StoreError>>;

    fn check(&self, checks: Vec<Check>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.check(checks, false).await })
    }

    fn peek(&self, checks: Vec<Check>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.check(checks, true).await })
    }
}
