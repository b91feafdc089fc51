//! The Redis store: one Lua script per algorithm, so check-and-count is atomic across
//! every replica sharing the Redis; all rules of a request go in one pipelined round trip.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::algorithm::{Algorithm, Decision};
use super::store::{Check, RateLimitStore, StoreError};
use crate::redis_connection::RedisConnection;

const TOKEN_BUCKET: &str = include_str!("token_bucket.lua");
const SLIDING_WINDOW: &str = include_str!("sliding_window.lua");

/// Default bound on every Redis call (connect included).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// Rate-limit state in Redis, shared by every replica that uses the same server.
///
/// Time comes from the Redis server (`TIME`), so replicas with skewed clocks agree. The
/// connection is opened on first use and every call is bounded by the timeout; when Redis
/// is unreachable the layer fails open or closed as configured, never hangs.
#[derive(Clone, Debug)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: RedisConnection,
    prefix: String,
    token_bucket: redis::Script,
    sliding_window: redis::Script,
    member_prefix: u64,
    member_seq: AtomicU64,
    scripts_loaded: AtomicBool,
}

impl RedisStore {
    /// A store on `client` with keys under `ezthrottle:rl:` and a 100 ms timeout.
    pub fn new(client: redis::Client) -> Self {
        Self::with_options(client, "ezthrottle:rl:", DEFAULT_REDIS_TIMEOUT)
    }

    /// A store on the Redis at `url` (e.g. `redis://127.0.0.1:6379`).
    ///
    /// # Errors
    ///
    /// An unparsable URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        redis::Client::open(url).map(Self::new).map_err(|err| StoreError(format!("invalid Redis URL: {err}")))
    }

    /// A store with its own key prefix and call timeout.
    pub fn with_options(client: redis::Client, prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                connection: RedisConnection::new(client, timeout),
                prefix: prefix.into(),
                token_bucket: redis::Script::new(TOKEN_BUCKET),
                sliding_window: redis::Script::new(SLIDING_WINDOW),
                member_prefix: RandomState::new().hash_one(std::process::id()),
                member_seq: AtomicU64::new(0),
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
    fn pipeline(&self, checks: &[Check]) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for check in checks {
            let key = format!("{}{}", self.prefix, check.key);
            match check.algorithm {
                Algorithm::TokenBucket { rate_per_sec, burst } => {
                    pipeline.invoke_script(self.token_bucket.key(key).arg(rate_per_sec).arg(burst));
                }
                Algorithm::SlidingWindow { limit, window } => {
                    let member =
                        format!("{:x}-{}", self.member_prefix, self.member_seq.fetch_add(1, Ordering::Relaxed));
                    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                    pipeline.invoke_script(self.sliding_window.key(key).arg(limit).arg(window_ms).arg(member));
                }
            }
        }
        pipeline
    }

    async fn check(&self, checks: Vec<Check>) -> Result<Vec<Decision>, StoreError> {
        let pipeline = self.pipeline(&checks);
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

impl RateLimitStore for RedisStore {
    type Future = BoxFuture<'static, Result<Vec<Decision>, StoreError>>;

    fn check(&self, checks: Vec<Check>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.check(checks).await })
    }
}
