//! [`RedisInbox`]: an [`Inbox`] shared by every app replica using one Redis.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ezthrottle_core::WebhookPayload;
use ezthrottle_core::inbox::{Inbox, InboxError, InboxEvents, InboxSubscription, WaitError};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::layer::DEFAULT_BODY_LIMIT;
use crate::redis_connection::{self, RedisConnection};

/// Stores the delivery under its job id (and its idempotency key), then publishes it, in
/// one atomic step: a waiter that looks after the `SET` finds it, one subscribed before
/// the `PUBLISH` hears it. Answers whether the job was already stored.
const RECORD: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return existed
";

/// Verified webhook deliveries in Redis: a delivery recorded by any replica resolves
/// waiters on every replica, including one that starts waiting after it arrived.
///
/// Use it behind a load balancer with several app replicas (the webhook may land on one
/// while [`queue_and_wait`](ezthrottle_core::EZThrottle::queue_and_wait) waits on
/// another); with a single instance the in-process
/// [`WebhookInbox`](ezthrottle_core::inbox::WebhookInbox) needs no Redis. It is an
/// [`Inbox`]: bring the trait into scope to call it.
///
/// - [`record`](Inbox::record) is one round trip (a Lua script): `SET` of the payload's
///   JSON under its job id and under its idempotency key, both with the TTL (`PX`,
///   default 10 minutes, at most [`MAX_TTL`](Self::MAX_TTL)), then `PUBLISH` on the
///   inbox's channel. A payload over the size limit (default 2 MiB, the webhook body
///   limit; at most [`MAX_PAYLOAD`](Self::MAX_PAYLOAD)) is refused with
///   [`InboxError::PayloadTooLarge`]. Redis holds at most two copies of each delivery
///   recorded in the last TTL.
/// - Waiting: each `RedisInbox` (and its clones) keeps **one** pub/sub connection,
///   opened on the first wait or subscription, that feeds every local waiter and
///   subscriber. A waiter subscribes locally, makes sure that connection listens, then
///   reads the stored results (`MGET`): a delivery is either stored before the read or
///   published after the listener subscribed, so none is missed. Pub/sub rather than
///   polling keeps the latency at one Redis hop without a read per waiter and interval.
///   As a safety net for a message lost while the pub/sub connection reconnects, waiters
///   also re-read every [`recheck_interval`](RedisInboxBuilder::recheck_interval)
///   (default 1 s).
/// - Matching is the in-memory inbox's: by job id or idempotency key, and
///   [`wait_for_receipt`](Inbox::wait_for_receipt) matches the key only for a duplicate
///   receipt. A repeated delivery of a job replaces the stored payload (`record`
///   answers `false`).
/// - Keys live under a prefix (default `ezthrottle:inbox:`) as `job:<sha256>` and
///   `key:<sha256>` of the job id and idempotency key: no raw key shows in `SCAN` or
///   `MONITOR`. The channel is `<prefix>deliveries`. Every call is bounded by the timeout
///   (default 500 ms); a Redis failure is [`InboxError::Unavailable`] or
///   [`WaitError::Unavailable`], never a panic. The keys are not in one hash slot: use a
///   single Redis (or a primary with replicas), not Redis Cluster.
/// - A subscription ([`subscribe`](Inbox::subscribe)) may miss deliveries published while
///   the pub/sub connection reconnects; the stored results stay readable by `wait`.
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_core::inbox::{Inbox, WaitError};
/// use ezthrottle_tower::webhook::RedisInbox;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = RedisInbox::builder(redis::Client::open("redis://127.0.0.1:1")?)
///     .ttl(Duration::from_secs(300))
///     .timeout(Duration::from_millis(200))
///     .build();
/// // Nothing listens on port 1: a typed error, no panic.
/// let waited = inbox.wait("job_1", Duration::from_millis(10)).await;
/// assert!(matches!(waited, Err(WaitError::Unavailable { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisInbox {
    inner: Arc<Inner>,
}

struct Inner {
    connection: RedisConnection,
    client: redis::Client,
    record: redis::Script,
    channel: String,
    ttl: Duration,
    max_payload: usize,
    recheck: Duration,
    events: InboxEvents,
    /// The task forwarding the pub/sub messages to `events`, while it runs.
    listener: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The listener holds a clone of `events`: stop it so subscriptions end.
        if let Some(listener) = self.listener.get_mut().take() {
            listener.abort();
        }
    }
}

impl fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the client: its connection info may hold a password.
        f.debug_struct("RedisInbox")
            .field("channel", &self.inner.channel)
            .field("ttl", &self.inner.ttl)
            .field("max_payload", &self.inner.max_payload)
            .field("timeout", &self.inner.connection.timeout())
            .finish_non_exhaustive()
    }
}

/// Options of a [`RedisInbox`]; [`RedisInbox::builder`].
pub struct RedisInboxBuilder {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    ttl: Duration,
    max_payload: usize,
    recheck: Duration,
}

impl fmt::Debug for RedisInboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInboxBuilder")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl RedisInboxBuilder {
    /// The prefix of every key and of the channel (default `ezthrottle:inbox:`). Replicas
    /// that share results must use the same one.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The bound on each Redis call, connecting included (default 500 ms, at least 1 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a delivery stays readable (default 10 minutes), clamped to 1 s ..=
    /// [`RedisInbox::MAX_TTL`]. A waiter that starts later than that waits until its timeout.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.clamp(Duration::from_secs(1), RedisInbox::MAX_TTL);
        self
    }

    /// The largest payload (its JSON, in bytes) recorded (default 2 MiB), clamped to 1 ..=
    /// [`RedisInbox::MAX_PAYLOAD`].
    #[must_use]
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes.clamp(1, RedisInbox::MAX_PAYLOAD);
        self
    }

    /// How often a waiter re-reads Redis besides the pub/sub wake-ups (default 1 s,
    /// clamped to 10 ms ..= 60 s): the latest a delivery whose message was lost is seen.
    #[must_use]
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck = interval.clamp(Duration::from_millis(10), Duration::from_secs(60));
        self
    }

    /// The inbox; nothing connects until it is used.
    #[must_use]
    pub fn build(self) -> RedisInbox {
        let channel = format!("{}deliveries", self.prefix);
        RedisInbox {
            inner: Arc::new(Inner {
                connection: RedisConnection::new(self.client.clone(), self.prefix, self.timeout),
                client: self.client,
                record: redis::Script::new(RECORD),
                channel,
                ttl: self.ttl,
                max_payload: self.max_payload,
                recheck: self.recheck,
                events: InboxEvents::new(),
                listener: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

impl RedisInbox {
    /// Default bound on every Redis call (connect included): 500 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
    /// Default time a delivery stays in Redis: 10 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
    /// The longest time a delivery may stay in Redis: 24 hours.
    pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
    /// The largest payload limit that can be set: 16 MiB.
    pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
    /// Default interval of a waiter's safety re-read: 1 s.
    pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

    /// An inbox on `client` with the default options.
    #[must_use]
    pub fn new(client: redis::Client) -> Self {
        Self::builder(client).build()
    }

    /// An inbox on the Redis at `url` (e.g. `redis://127.0.0.1:6379`) with the default options.
    ///
    /// # Errors
    ///
    /// [`InboxError::Unavailable`] for an unparsable URL.
    pub fn open(url: &str) -> Result<Self, InboxError> {
        redis_connection::client(url).map(Self::new).map_err(|message| InboxError::Unavailable { message })
    }

    /// Options for an inbox on `client`.
    #[must_use]
    pub fn builder(client: redis::Client) -> RedisInboxBuilder {
        RedisInboxBuilder {
            client,
            prefix: "ezthrottle:inbox:".to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            ttl: Self::DEFAULT_TTL,
            max_payload: DEFAULT_BODY_LIMIT,
            recheck: Self::DEFAULT_RECHECK_INTERVAL,
        }
    }

    fn job_key(&self, job_id: &str) -> String {
        self.inner.connection.key(&format!("job:{}", digest(job_id)))
    }

    fn idempotency_key(&self, key: &str) -> String {
        self.inner.connection.key(&format!("key:{}", digest(key)))
    }

    /// Starts the pub/sub listener unless it runs; answers once it is subscribed.
    async fn listen(&self) -> Result<(), String> {
        let mut listener = self.inner.listener.lock().await;
        if listener.as_ref().is_some_and(|running| !running.is_finished()) {
            return Ok(());
        }
        let timeout = self.inner.connection.timeout();
        let subscribe = async {
            let mut pubsub = self.inner.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.inner.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(timeout, subscribe)
            .await
            .map_err(|_| format!("subscribing in Redis took longer than {timeout:?}"))?
            .map_err(|err| format!("cannot subscribe in Redis: {err}"))?;
        let events = self.inner.events.clone();
        let max_payload = self.inner.max_payload;
        *listener = Some(tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match parse(message.get_payload_bytes(), max_payload) {
                    Ok(payload) => events.send(payload),
                    Err(why) => {
                        tracing::warn!(target: ezthrottle_core::telemetry::TARGET_WEBHOOK, why, "inbox message skipped")
                    }
                }
            }
            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_WEBHOOK, "inbox pub/sub connection closed; reopened on next wait");
        }));
        Ok(())
    }

    /// The stored delivery of the first of `keys` that has one (job id, then idempotency key).
    async fn lookup(&self, keys: &[&str]) -> Result<Option<WebhookPayload>, String> {
        let names: Vec<String> = keys.iter().flat_map(|key| [self.job_key(key), self.idempotency_key(key)]).collect();
        if names.is_empty() {
            return Ok(None);
        }
        let values: Vec<Option<Vec<u8>>> = self
            .inner
            .connection
            .run(|mut connection| async move { redis::cmd("MGET").arg(&names).query_async(&mut connection).await })
            .await?;
        values.into_iter().flatten().next().map(|json| parse(&json, self.inner.max_payload)).transpose()
    }
}

fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn parse(json: &[u8], max_payload: usize) -> Result<WebhookPayload, String> {
    if json.len() > max_payload {
        return Err(format!("a stored delivery of {} bytes is over the limit", json.len()));
    }
    serde_json::from_slice(json).map_err(|err| format!("unreadable delivery in Redis: {err}"))
}

/// Whether `payload` is the delivery for one of `keys` (its job id or idempotency key).
fn matches(payload: &WebhookPayload, keys: &[&str]) -> bool {
    keys.iter().any(|key| payload.job_id == *key || payload.idempotent_key.as_deref() == Some(*key))
}

fn unavailable(message: String) -> WaitError {
    WaitError::Unavailable { message }
}

impl Inbox for RedisInbox {
    async fn record(&self, payload: WebhookPayload) -> Result<bool, InboxError> {
        let json = serde_json::to_vec(&payload).map_err(|err| InboxError::Unavailable { message: err.to_string() })?;
        if json.len() > self.inner.max_payload {
            return Err(InboxError::PayloadTooLarge { size: json.len(), limit: self.inner.max_payload });
        }
        let mut invocation = self.inner.record.key(self.job_key(&payload.job_id));
        if let Some(key) = &payload.idempotent_key {
            invocation.key(self.idempotency_key(key));
        }
        let ttl_ms = u64::try_from(self.inner.ttl.as_millis()).unwrap_or(u64::MAX);
        invocation.arg(json).arg(ttl_ms).arg(&self.inner.channel);
        let existed: i64 = self
            .inner
            .connection
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(|message| InboxError::Unavailable { message })?;
        Ok(existed == 0)
    }

    async fn wait_any(&self, keys: &[&str], timeout: Duration) -> Result<WebhookPayload, WaitError> {
        let started = Instant::now();
        // A timeout too large to add to the clock (`Duration::MAX`) waits without a deadline.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        // Subscribe locally before the listener check and the read: a delivery is then
        // either stored before the read or heard after it.
        let mut events = self.inner.events.subscribe();
        self.listen().await.map_err(unavailable)?;
        loop {
            if let Some(found) = self.lookup(keys).await.map_err(unavailable)? {
                return Ok(found);
            }
            // `recheck` is at most a minute: adding it to the clock cannot overflow.
            let recheck = tokio::time::Instant::now().checked_add(self.inner.recheck);
            let wake = match (deadline, recheck) {
                (Some(deadline), Some(recheck)) => deadline.min(recheck),
                (Some(at), None) | (None, Some(at)) => at,
                (None, None) => tokio::time::Instant::now(),
            };
            let heard = async {
                while let Some(payload) = events.recv().await {
                    if matches(&payload, keys) {
                        return Some(payload);
                    }
                }
                None
            };
            match tokio::time::timeout_at(wake, heard).await {
                Ok(Some(payload)) => return Ok(payload),
                Ok(None) => return Err(unavailable("the inbox closed".to_owned())),
                Err(_) if deadline.is_some_and(|deadline| deadline <= tokio::time::Instant::now()) => {
                    return Err(WaitError::timed_out(keys, started));
                }
                // The safety re-read; reopen the listener if its connection dropped.
                Err(_) => self.listen().await.map_err(unavailable)?,
            }
        }
    }

    async fn subscribe(&self) -> Result<InboxSubscription, WaitError> {
        let subscription = self.inner.events.subscribe();
        self.listen().await.map_err(unavailable)?;
        Ok(subscription)
    }
}
