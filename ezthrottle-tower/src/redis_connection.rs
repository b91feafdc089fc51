//! One lazily opened, shared Redis connection with bounded timeouts, used by every Redis
//! store of this crate.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// A Redis connection opened on first use (so a store can be built while Redis is down)
/// and shared by clones; every call through it is bounded by `timeout`.
#[derive(Debug)]
pub(crate) struct RedisConnection {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl RedisConnection {
    pub(crate) fn new(client: redis::Client, timeout: Duration) -> Self {
        Self { client, manager: OnceCell::new(), timeout }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
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
