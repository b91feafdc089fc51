//! Inboxes: verified webhook deliveries, awaitable by job id or idempotency key.
//!
//! EZThrottle answers a submission at once (a [`SubmitReceipt`]) and
//! delivers the job's result later to a webhook. A receiver that verified a delivery
//! [`record`](Inbox::record)s it in an inbox; code that submitted the job
//! [`wait`](Inbox::wait)s on the inbox for it, or
//! [`subscribe`](Inbox::subscribe)s to every delivery.
//!
//! With an inbox, [`EZThrottle::queue_and_wait`] and [`Step::execute_and_wait`] return the
//! job's result instead of its receipt. They take any [`Inbox`]:
//!
//! - [`WebhookInbox`] (here) lives in one process: the receiver and the waiter must be the
//!   same process. Use it with one app instance, or when the load balancer sends every
//!   webhook to the instance that waits.
//! - `ezthrottle_tower::webhook::RedisInbox` (features `redis` and `webhook`) shares
//!   deliveries through Redis: a delivery received by any replica resolves waiters on
//!   every replica. Use it behind a load balancer with several app replicas.
//! - Your own: implement [`Inbox`] (it is implementable outside this crate; the Redis inbox
//!   is).
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

use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::error::Error;
use crate::protocol::{Job, WebhookPayload};
use crate::step::{Step, StepOutcome};
use crate::{EZThrottle, SubmitReceipt};

mod memory;
#[cfg(test)]
mod tests;
mod workflow;

pub use memory::{DEFAULT_INBOX_CAPACITY, WebhookInbox};
pub use workflow::{DEFAULT_MAX_RUNNING_CHILDREN, WorkflowInbox};

/// How many deliveries a slow [`InboxSubscription`] may fall behind before it skips some.
pub const SUBSCRIPTION_BUFFER: usize = 1024;

/// Where verified webhook deliveries are recorded and awaited.
///
/// The contract every implementation keeps (the in-memory [`WebhookInbox`] and the Redis
/// one of `ezthrottle-tower` do):
///
/// - [`record`](Self::record) stores a delivery under its job id **and** its idempotency
///   key, and wakes every waiter for either. A repeated delivery of a job replaces the
///   stored payload and answers `false`.
/// - [`wait_any`](Self::wait_any) resolves with the stored delivery of the first key (in
///   order; for each key its job id first, then its idempotency key) that has one:
///   immediately if it already arrived, else when it does; or fails with
///   [`WaitError::TimedOut`] naming the first key.
/// - [`subscribe`](Self::subscribe) receives every delivery recorded after it returned.
///
/// Implementations are shared handles (`Clone` when they can be): the receiver records
/// into one handle, the code that submitted waits on another.
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_core::inbox::{Inbox, WaitError, WebhookInbox};
/// use ezthrottle_core::WebhookPayload;
///
/// // Code generic over the inbox: the same with the Redis one.
/// async fn result_of(inbox: &impl Inbox, job_id: &str) -> Result<WebhookPayload, WaitError> {
///     inbox.wait(job_id, Duration::from_millis(10)).await
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let waited = result_of(&WebhookInbox::new(), "job_1").await;
/// assert!(matches!(waited, Err(WaitError::TimedOut { .. })));
/// # }
/// ```
pub trait Inbox: Send + Sync {
    /// Stores a verified delivery (call it only after the signature verified) and wakes
    /// its waiters and subscribers.
    ///
    /// Answers `true` when the job was new to the inbox, `false` for a repeated delivery.
    ///
    /// # Errors
    ///
    /// [`InboxError`]: the payload is over the inbox's size limit, or its store is
    /// unavailable (the receiver should then answer 5xx, so that EZThrottle retries the
    /// delivery).
    fn record(&self, payload: WebhookPayload) -> impl Future<Output = Result<bool, InboxError>> + Send;

    /// Waits for the delivery matching any of `keys` (job ids or idempotency keys).
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] (naming the first key) when nothing arrived in time;
    /// [`WaitError::Unavailable`] when the inbox's store cannot be read.
    fn wait_any(
        &self,
        keys: &[&str],
        timeout: Duration,
    ) -> impl Future<Output = Result<WebhookPayload, WaitError>> + Send;

    /// A receiver of every delivery recorded from now on.
    ///
    /// # Errors
    ///
    /// [`WaitError::Unavailable`] when the inbox's store cannot be subscribed to.
    fn subscribe(&self) -> impl Future<Output = Result<InboxSubscription, WaitError>> + Send;

    /// Whether [`record`](Self::record) runs the FRUGAL children deliveries carry
    /// ([`WorkflowInbox`] does); `false` unless overridden. A receiver such as
    /// `webhook_routes` warns when a delivery carries one and its inbox does not.
    fn runs_carried_steps(&self) -> bool {
        false
    }

    /// Waits for the delivery for `key` (a job id or an idempotency key): [`wait_any`]
    /// with one key.
    ///
    /// # Errors
    ///
    /// As [`wait_any`].
    ///
    /// [`wait_any`]: Self::wait_any
    fn wait(&self, key: &str, timeout: Duration) -> impl Future<Output = Result<WebhookPayload, WaitError>> + Send {
        async move { self.wait_any(&[key], timeout).await }
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
    /// As [`wait_any`](Self::wait_any), naming the job id.
    fn wait_for_receipt(
        &self,
        receipt: &SubmitReceipt,
        timeout: Duration,
    ) -> impl Future<Output = Result<WebhookPayload, WaitError>> + Send {
        async move { self.wait_any(&receipt_keys(receipt), timeout).await }
    }
}

/// The keys a receipt's delivery is matched by (see [`Inbox::wait_for_receipt`]).
pub(crate) fn receipt_keys(receipt: &SubmitReceipt) -> Vec<&str> {
    let mut keys = vec![receipt.job_id.as_str()];
    if receipt.duplicate {
        keys.extend(receipt.idempotent_key.as_deref());
    }
    keys
}

/// The fan-out of an inbox's deliveries to its [`InboxSubscription`]s, buffered up to
/// [`SUBSCRIPTION_BUFFER`] deliveries per subscriber; for [`Inbox`] implementations.
///
/// Cheap to clone: clones feed the same subscribers. Subscriptions end (`None`) once
/// every clone is dropped.
#[derive(Debug, Clone)]
pub struct InboxEvents {
    sender: broadcast::Sender<WebhookPayload>,
}

impl Default for InboxEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl InboxEvents {
    /// A fan-out with no subscriber yet.
    #[must_use]
    pub fn new() -> Self {
        Self { sender: broadcast::channel(SUBSCRIPTION_BUFFER).0 }
    }

    /// Hands `payload` to every current subscriber (none is not an error).
    pub fn send(&self, payload: WebhookPayload) {
        let _ = self.sender.send(payload);
    }

    /// A subscriber to every delivery sent from now on.
    #[must_use]
    pub fn subscribe(&self) -> InboxSubscription {
        InboxSubscription { receiver: self.sender.subscribe() }
    }
}

/// The deliveries recorded in an [`Inbox`] after [`subscribe`](Inbox::subscribe).
///
/// Buffered up to [`SUBSCRIPTION_BUFFER`] (1,024) deliveries: a subscriber that falls
/// further behind skips the oldest ones (logged at `warn`, target `ezthrottle::webhook`);
/// they stay in the inbox.
#[derive(Debug)]
pub struct InboxSubscription {
    receiver: broadcast::Receiver<WebhookPayload>,
}

impl InboxSubscription {
    /// The next delivery; `None` once the inbox is gone (every clone of it dropped).
    pub async fn recv(&mut self) -> Option<WebhookPayload> {
        loop {
            match self.receiver.recv().await {
                Ok(payload) => return Some(payload),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(target: crate::telemetry::TARGET_WEBHOOK, skipped, "inbox subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Why an [`Inbox`] refused to record a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// The payload, serialized, is over the inbox's size limit.
    #[error("webhook payload of {size} bytes is over the inbox's limit of {limit} bytes")]
    PayloadTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The inbox's limit in bytes.
        limit: usize,
    },
    /// The inbox's store could not be reached or answered an error.
    #[error("inbox unavailable: {message}")]
    Unavailable {
        /// What failed (no secret in it).
        message: String,
    },
}

/// Why [`Inbox::wait`] returned without a delivery.
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
    /// The inbox's store could not be reached or answered an error.
    #[error("inbox unavailable: {message}")]
    Unavailable {
        /// What failed (no secret in it).
        message: String,
    },
}

impl WaitError {
    /// The [`TimedOut`](Self::TimedOut) of a wait for `keys` that began at `started`,
    /// naming the first key as [`Inbox::wait_any`] promises; for [`Inbox`]
    /// implementations.
    #[must_use]
    pub fn timed_out(keys: &[&str], started: Instant) -> Self {
        Self::TimedOut { key: keys.first().map(|key| (*key).to_owned()).unwrap_or_default(), waited: started.elapsed() }
    }
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

async fn wait_for_receipt<I: Inbox>(
    receipt: &SubmitReceipt,
    inbox: &I,
    timeout: Duration,
) -> Result<WebhookPayload, Error> {
    inbox.wait_for_receipt(receipt, timeout).await.map_err(|err| match err {
        WaitError::TimedOut { waited, .. } => Error::WaitTimedOut { job_id: receipt.job_id.clone(), waited },
        WaitError::Unavailable { message } => Error::InboxUnavailable { job_id: receipt.job_id.clone(), message },
    })
}

impl EZThrottle {
    /// Submits `job`, then waits for its result to be delivered to `inbox`.
    ///
    /// The job must name a webhook whose receiver records verified deliveries into
    /// `inbox` (for example `ezthrottle_tower::axum::webhook_routes`). The wait matches
    /// the receipt's job id, and, for a duplicate submission only, its idempotency key: a
    /// duplicate resolves with the original job's delivery, even one that arrived before
    /// this call ([`Inbox::wait_for_receipt`]).
    ///
    /// `inbox` is any [`Inbox`]: a [`WebhookInbox`] when this process receives the webhook,
    /// a shared one (`ezthrottle_tower::webhook::RedisInbox`) when another replica may.
    ///
    /// # Errors
    ///
    /// As [`submit_job`](Self::submit_job); [`Error::WaitTimedOut`] when no delivery
    /// arrived within `timeout` (the job itself may still complete later);
    /// [`Error::InboxUnavailable`] when the inbox's store failed.
    pub async fn queue_and_wait<I: Inbox>(
        &self,
        job: &Job,
        inbox: &I,
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
    /// within `timeout`; [`Error::InboxUnavailable`] when the inbox's store failed.
    pub async fn execute_and_wait<I: Inbox>(
        &self,
        client: &EZThrottle,
        inbox: &I,
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
