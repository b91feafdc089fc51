//! One lazily opened, shared Redis connection with bounded timeouts, a key prefix and
//! unique ids: what every Redis store of this crate stands on.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// The client for the Redis at `url` (e.g. `redis://127.0.0.1:6379`); nothing connects yet.
pub(crate) fn client(url: &str) -> Result<redis::Client, String> {
    redis::Client::open(url).map_err(|err| format!("invalid Redis URL: {err}"))
}

/// A Redis connection opened on first use (so a store can be built while Redis is down)
/// and shared by clones; every call through it is bounded by `timeout`. Keys live under
/// `prefix`.
#[derive(Debug)]
pub(crate) struct RedisConnection {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    timeout: Duration,
    prefix: String,
    id_prefix: u64,
    id_seq: AtomicU64,
}

impl RedisConnection {
    pub(crate) fn new(client: redis::Client, prefix: String, timeout: Duration) -> Self {
        Self {
            client,
            manager: OnceCell::new(),
            timeout,
            prefix,
            id_prefix: RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now())),
            id_seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `key` under this store's prefix.
    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// An id no other call of any replica makes (a lock token, a sliding-log member).
    pub(crate) fn unique_id(&self) -> String {
        format!("{:x}-{:x}", self.id_prefix, self.id_seq.fetch_add(1, Ordering::Relaxed))
    }

    /// The connection, opening it if needed (a failed open is retried on the next call).
    pub(crate) async fn get(&self) -> Result<ConnectionManager, String> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let open = async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1)
                .set_max_delay(self.timeout);
            ConnectionManager::new_with_config(self.client.clone(), config).await
        };
        let manager = tokio::time::timeout(self.timeout, self.manager.get_or_try_init(|| open))
            .await
            .map_err(|_| format!("connecting to Redis took longer than {:?}", self.timeout))?
            .map_err(|err| format!("cannot connect to Redis: {err}"))?;
        Ok(manager.clone())
    }

    /// Runs `call` on the connection within the timeout.
    pub(crate) async fn run<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.get().await?;
        match tokio::time::timeout(self.timeout, call(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(format!("Redis error: {err}")),
            Err(_) => Err(format!("Redis did not answer within {:?}", self.timeout)),
        }
    }
}
