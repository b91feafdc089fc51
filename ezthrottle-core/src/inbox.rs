//! [`WebhookInbox`]: verified deliveries, awaitable by job id or idempotency key.
//!
//! EZThrottle answers a submission at once (a [`SubmitReceipt`]) and
//! delivers the job's result later to a webhook. A receiver that verified a delivery
//! [`record`](WebhookInbox::record)s it in an inbox; code that submitted the job
//! [`wait`](WebhookInbox::wait)s on the inbox for it, or
//! [`subscribe`](WebhookInbox::subscribe)s to every delivery.
//!
//! With an inbox, [`EZThrottle::queue_and_wait`] and [`Step::execute_and_wait`] return the
//! job's result instead of its receipt.
//!
//! ```
//! use std::time::Duration;
//! use ezthrottle_core::inbox::WebhookInbox;
//! use ezthrottle_core::{DeliveryStatus, WebhookPayload};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let inbox = WebhookInbox::new();
//! // The webhook handler, after verifying the signature:
//! inbox.record(WebhookPayload::new("job_1", DeliveryStatus::Success).with_idempotent_key("order-1"));
//! // The code that submitted the job (by job id or by idempotency key):
//! let delivered = inbox.wait("order-1", Duration::from_secs(1)).await.unwrap();
//! assert_eq!(delivered.job_id, "job_1");
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};

use crate::error::Error;
use crate::protocol::{Job, WebhookPayload};
use crate::step::{Step, StepOutcome};
use crate::{EZThrottle, SubmitReceipt};

/// How many deliveries an inbox keeps by default.
pub const DEFAULT_INBOX_CAPACITY: usize = 10_000;

/// How many deliveries a slow [`InboxSubscription`] may fall behind before it skips some.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// A bounded store of verified webhook deliveries, keyed by job id **and** idempotency key.
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
    events: broadcast::Sender<WebhookPayload>,
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
        let (events, _) = broadcast::channel(SUBSCRIPTION_BUFFER);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                notify: Notify::new(),
                events,
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
        // No subscriber is not an error.
        let _ = self.inner.events.send(payload);
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
                return Err(WaitError::TimedOut {
                    key: keys.first().map(|key| (*key).to_owned()).unwrap_or_default(),
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Waits for the delivery of the job `receipt` names: its job id, and, only when the
    /// receipt is a duplicate, its idempotency key too (the original job's delivery, even
    /// one that arrived earlier).
    ///
    /// The key is not matched for a new job: a key reused after EZThrottle forgot it
    /// (its idempotency TTL), or a HASH key two calls derive alike, would otherwise
    /// resolve a new job at once with an older job's result.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] (naming the job id) when nothing arrived in time.
    pub async fn wait_for_receipt(
        &self,
        receipt: &SubmitReceipt,
        timeout: Duration,
    ) -> Result<WebhookPayload, WaitError> {
        let mut keys = vec![receipt.job_id.as_str()];
        if receipt.duplicate {
            keys.extend(receipt.idempotent_key.as_deref());
        }
        self.wait_any(&keys, timeout).await
    }

    /// A receiver of every delivery recorded from now on.
    #[must_use]
    pub fn subscribe(&self) -> InboxSubscription {
        InboxSubscription { receiver: self.inner.events.subscribe() }
    }
}

/// The deliveries recorded in a [`WebhookInbox`] after [`subscribe`](WebhookInbox::subscribe).
///
/// Buffered up to 1,024 deliveries: a subscriber that falls further behind skips the
/// oldest ones (logged at `warn`, target `ezthrottle::webhook`); they stay in the inbox.
#[derive(Debug)]
pub struct InboxSubscription {
    receiver: broadcast::Receiver<WebhookPayload>,
}

impl InboxSubscription {
    /// The next delivery; `None` once every clone of the inbox is dropped.
    pub async fn recv(&mut self) -> Option<WebhookPayload> {
        loop {
            match self.receiver.recv().await {
                Ok(payload) => return Some(payload),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(target: "ezthrottle::webhook", skipped, "inbox subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Why [`WebhookInbox::wait`] returned without a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing arrived for `key` within the timeout.
    #[error("no webhook delivery for {key} within {waited:?}")]
    TimedOut {
        /// The key waited for.
        key: String,
        /// How long it waited.
        waited: Duration,
    },
}

/// What [`Step::execute_and_wait`] produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepDelivery {
    /// The step was forwarded to EZThrottle (PERFORMANCE, or FRUGAL after a local
    /// failure) and this is the job's webhook delivery.
    Webhook {
        /// The submission's receipt.
        receipt: SubmitReceipt,
        /// The delivered result.
        payload: WebhookPayload,
    },
    /// FRUGAL: the step ran here and was not forwarded; no webhook will come. The outcome
    /// is [`StepOutcome::ExecutedLocally`] or [`StepOutcome::FailedLocally`].
    Local(StepOutcome),
}

impl StepDelivery {
    /// The webhook delivery, when the step was forwarded.
    #[must_use]
    pub fn payload(&self) -> Option<&WebhookPayload> {
        match self {
            Self::Webhook { payload, .. } => Some(payload),
            Self::Local(_) => None,
        }
    }
}

async fn wait_for_receipt(
    receipt: &SubmitReceipt,
    inbox: &WebhookInbox,
    timeout: Duration,
) -> Result<WebhookPayload, Error> {
    inbox
        .wait_for_receipt(receipt, timeout)
        .await
        .map_err(|WaitError::TimedOut { waited, .. }| Error::WaitTimedOut { job_id: receipt.job_id.clone(), waited })
}

impl EZThrottle {
    /// Submits `job`, then waits for its result to be delivered to `inbox`.
    ///
    /// The job must name a webhook whose receiver records verified deliveries into
    /// `inbox` (for example `ezthrottle_tower::axum::webhook_routes`). The wait matches
    /// the receipt's job id, and, for a duplicate submission only, its idempotency key: a
    /// duplicate resolves with the original job's delivery, even one that arrived before
    /// this call ([`WebhookInbox::wait_for_receipt`]).
    ///
    /// # Errors
    ///
    /// As [`submit_job`](Self::submit_job); [`Error::WaitTimedOut`] when no delivery
    /// arrived within `timeout` (the job itself may still complete later).
    pub async fn queue_and_wait(
        &self,
        job: &Job,
        inbox: &WebhookInbox,
        timeout: Duration,
    ) -> Result<WebhookPayload, Error> {
        let receipt = self.submit_job(job).await?;
        wait_for_receipt(&receipt, inbox, timeout).await
    }
}

impl Step {
    /// Runs the step like [`execute`](Self::execute), then, if it was forwarded, waits for
    /// its webhook in `inbox`.
    ///
    /// PERFORMANCE steps, and FRUGAL steps forwarded after a local failure, resolve with
    /// [`StepDelivery::Webhook`]. A FRUGAL step that ran here resolves at once with
    /// [`StepDelivery::Local`]: its local outcome, since no webhook will come for it.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute); [`Error::WaitTimedOut`] when no delivery arrived
    /// within `timeout`.
    pub async fn execute_and_wait(
        &self,
        client: &EZThrottle,
        inbox: &WebhookInbox,
        timeout: Duration,
    ) -> Result<StepDelivery, Error> {
        let outcome = self.execute(client).await?;
        match outcome {
            StepOutcome::Forwarded(receipt) => {
                let payload = wait_for_receipt(&receipt, inbox, timeout).await?;
                Ok(StepDelivery::Webhook { receipt, payload })
            }
            local => {
                debug_assert!(self.is_frugal());
                Ok(StepDelivery::Local(local))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeliveryStatus;

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
