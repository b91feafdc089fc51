//! [`WebhookInbox`]: the in-process [`Inbox`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Inbox, InboxError, InboxEvents, InboxSubscription, WaitError, receipt_keys};
use crate::SubmitReceipt;
use crate::protocol::WebhookPayload;

/// How many deliveries an inbox keeps by default.
pub const DEFAULT_INBOX_CAPACITY: usize = 10_000;

/// A bounded, in-process store of verified webhook deliveries, keyed by job id **and**
/// idempotency key: the [`Inbox`] for a single app instance.
///
/// Its waiters see only what this process recorded: behind a load balancer with several
/// replicas, a delivery received by one replica would not resolve a wait on another. Use
/// a shared inbox there (`ezthrottle_tower::webhook::RedisInbox`).
///
/// - [`record`](Self::record) stores a delivery (call it only after the signature
///   verified) and wakes every waiter for its job id or idempotency key.
/// - [`wait`](Self::wait) resolves with the delivery for a key: immediately if it has
///   already arrived, else when it does, or fails with [`WaitError::TimedOut`].
/// - [`subscribe`](Self::subscribe) receives every later delivery.
///
/// Memory is bounded: at most [`capacity`](Self::with_capacity) deliveries (default
/// [`DEFAULT_INBOX_CAPACITY`]) are kept; recording a new job beyond that evicts the
/// **oldest-recorded** delivery first (both of its keys). A repeated delivery of a job
/// already in the inbox (at-least-once delivery) replaces the stored payload and keeps
/// its place in the eviction order. A waiter that arrives after its delivery was evicted
/// waits until its timeout.
///
/// Cheap to clone: clones share the same store.
#[derive(Clone)]
pub struct WebhookInbox {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    notify: Notify,
    events: InboxEvents,
    capacity: usize,
}

#[derive(Default)]
struct State {
    /// job id -> delivery.
    by_job: HashMap<String, Arc<WebhookPayload>>,
    /// idempotency key -> job id.
    by_key: HashMap<String, String>,
    /// Job ids, oldest first.
    order: VecDeque<String>,
}

impl State {
    fn get(&self, key: &str) -> Option<&Arc<WebhookPayload>> {
        self.by_job.get(key).or_else(|| self.by_key.get(key).and_then(|job| self.by_job.get(job)))
    }
}

impl fmt::Debug for WebhookInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookInbox").field("len", &self.len()).field("capacity", &self.inner.capacity).finish()
    }
}

impl Default for WebhookInbox {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookInbox {
    /// An empty inbox keeping up to [`DEFAULT_INBOX_CAPACITY`] deliveries.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_INBOX_CAPACITY)
    }

    /// An empty inbox keeping up to `capacity` deliveries (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                events: InboxEvents::new(),
                capacity: capacity.max(1),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters here: recover the guard.
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a verified delivery and wakes its waiters and subscribers.
    ///
    /// Returns `true` when the job was new to the inbox, `false` for a repeated delivery
    /// (which replaces the stored payload).
    pub fn record(&self, payload: WebhookPayload) -> bool {
        let stored = Arc::new(payload.clone());
        let new = {
            let mut state = self.state();
            let new = state.by_job.insert(payload.job_id.clone(), stored).is_none();
            if let Some(key) = &payload.idempotent_key {
                state.by_key.insert(key.clone(), payload.job_id.clone());
            }
            if new {
                state.order.push_back(payload.job_id.clone());
                while state.order.len() > self.inner.capacity {
                    let Some(oldest) = state.order.pop_front() else { break };
                    if let Some(evicted) = state.by_job.remove(&oldest)
                        && let Some(key) = &evicted.idempotent_key
                        && state.by_key.get(key) == Some(&oldest)
                    {
                        state.by_key.remove(key);
                    }
                }
            }
            new
        };
        self.inner.notify.notify_waiters();
        self.inner.events.send(payload);
        new
    }

    /// The delivery for `key` (a job id or an idempotency key), if it has arrived.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<WebhookPayload> {
        self.state().get(key).map(|payload| WebhookPayload::clone(payload))
    }

    /// How many deliveries the inbox holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.state().by_job.len()
    }

    /// Whether the inbox holds no delivery.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the delivery for `key` (a job id or an idempotency key).
    ///
    /// Resolves immediately if it has already arrived.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] when nothing arrived for `key` within `timeout`.
    pub async fn wait(&self, key: &str, timeout: Duration) -> Result<WebhookPayload, WaitError> {
        self.wait_any(&[key], timeout).await
    }

    /// Waits for the delivery matching any of `keys` (job ids or idempotency keys).
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] (naming the first key) when nothing arrived in time.
    pub async fn wait_any(&self, keys: &[&str], timeout: Duration) -> Result<WebhookPayload, WaitError> {
        let started = Instant::now();
        // A timeout too large to add to the clock (`Duration::MAX`) waits without a deadline.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            // Register before checking, so a record between the check and the await is seen.
            let mut notified = std::pin::pin!(self.inner.notify.notified());
            notified.as_mut().enable();
            {
                let state = self.state();
                if let Some(found) = keys.iter().find_map(|key| state.get(key)) {
                    return Ok(WebhookPayload::clone(found));
                }
            }
            let Some(deadline) = deadline else {
                notified.await;
                continue;
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(WaitError::timed_out(keys, started));
            }
        }
    }

    /// Waits for the delivery of the job `receipt` names: its job id, and its idempotency
    /// key only when the receipt is a duplicate ([`Inbox::wait_for_receipt`] says why).
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] (naming the job id) when nothing arrived in time.
    pub async fn wait_for_receipt(
        &self,
        receipt: &SubmitReceipt,
        timeout: Duration,
    ) -> Result<WebhookPayload, WaitError> {
        self.wait_any(&receipt_keys(receipt), timeout).await
    }

    /// A receiver of every delivery recorded from now on.
    #[must_use]
    pub fn subscribe(&self) -> InboxSubscription {
        self.inner.events.subscribe()
    }
}

/// The inherent methods, as an [`Inbox`]: recording never fails (no size limit beyond the
/// receiver's body limit; capacity evicts the oldest).
impl Inbox for WebhookInbox {
    async fn record(&self, payload: WebhookPayload) -> Result<bool, InboxError> {
        Ok(Self::record(self, payload))
    }

    async fn wait_any(&self, keys: &[&str], timeout: Duration) -> Result<WebhookPayload, WaitError> {
        Self::wait_any(self, keys, timeout).await
    }

    async fn subscribe(&self) -> Result<InboxSubscription, WaitError> {
        Ok(Self::subscribe(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeliveryStatus;
    use crate::SubmitReceipt;

    fn payload(job: &str, key: Option<&str>) -> WebhookPayload {
        let payload = WebhookPayload::new(job, DeliveryStatus::Success);
        match key {
            Some(key) => payload.with_idempotent_key(key),
            None => payload,
        }
    }

    #[tokio::test]
    async fn resolves_immediately_when_present() {
        let inbox = WebhookInbox::new();
        assert!(inbox.record(payload("j1", Some("k1"))));
        assert!(!inbox.record(payload("j1", Some("k1"))));
        assert_eq!(inbox.wait("j1", Duration::ZERO).await.unwrap().job_id, "j1");
        assert_eq!(inbox.wait("k1", Duration::ZERO).await.unwrap().job_id, "j1");
        assert_eq!(inbox.len(), 1);
    }

    #[tokio::test]
    async fn wakes_waiters_and_times_out() {
        let inbox = WebhookInbox::new();
        let waiter = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.wait("k2", Duration::from_secs(10)).await }
        });
        let other = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.wait("nobody", Duration::from_millis(50)).await }
        });
        tokio::task::yield_now().await;
        inbox.record(payload("j2", Some("k2")));
        assert_eq!(waiter.await.unwrap().unwrap().job_id, "j2");
        let err = other.await.unwrap().unwrap_err();
        assert!(matches!(err, WaitError::TimedOut { ref key, .. } if key == "nobody"), "{err}");
    }

    #[tokio::test]
    async fn evicts_oldest_first() {
        let inbox = WebhookInbox::with_capacity(2);
        inbox.record(payload("a", Some("ka")));
        inbox.record(payload("b", None));
        inbox.record(payload("c", Some("kc")));
        assert_eq!(inbox.len(), 2);
        assert!(inbox.get("a").is_none());
        assert!(inbox.get("ka").is_none());
        assert!(inbox.get("b").is_some());
        assert!(inbox.get("kc").is_some());
    }

    #[tokio::test]
    async fn a_new_job_reusing_a_key_waits_for_its_own_delivery() {
        let inbox = WebhookInbox::new();
        inbox.record(payload("job_old", Some("order-7")));
        let new = SubmitReceipt::new("job_new", crate::SubmissionStatus::Queued).with_idempotent_key("order-7");
        let waited = inbox.wait_for_receipt(&new, Duration::from_millis(20)).await;
        assert!(matches!(waited, Err(WaitError::TimedOut { ref key, .. }) if key == "job_new"), "{waited:?}");
        inbox.record(payload("job_new", Some("order-7")));
        assert_eq!(inbox.wait_for_receipt(&new, Duration::ZERO).await.unwrap().job_id, "job_new");

        let mut duplicate = SubmitReceipt::new("job_elsewhere", crate::SubmissionStatus::Queued);
        duplicate.idempotent_key = Some("order-1".into());
        duplicate.duplicate = true;
        inbox.record(payload("job_first", Some("order-1")));
        assert_eq!(inbox.wait_for_receipt(&duplicate, Duration::ZERO).await.unwrap().job_id, "job_first");
    }

    #[tokio::test]
    async fn an_endless_timeout_does_not_overflow_the_clock() {
        let inbox = WebhookInbox::new();
        let waiter = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.wait("j9", Duration::MAX).await }
        });
        tokio::task::yield_now().await;
        inbox.record(payload("j9", None));
        assert_eq!(waiter.await.unwrap().unwrap().job_id, "j9");
    }

    #[tokio::test]
    async fn subscribers_see_every_delivery() {
        let inbox = WebhookInbox::new();
        let mut sub = inbox.subscribe();
        inbox.record(payload("x", None));
        inbox.record(payload("y", None));
        assert_eq!(sub.recv().await.unwrap().job_id, "x");
        assert_eq!(sub.recv().await.unwrap().job_id, "y");
    }
}
