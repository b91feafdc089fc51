//! [`WorkflowInbox`]: an inbox that also runs the FRUGAL children its deliveries carry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::{Inbox, InboxError, InboxSubscription, WaitError};
use crate::client::EZThrottle;
use crate::protocol::WebhookPayload;
use crate::step::{Continuation, StepOutcome};
use crate::telemetry;

/// How many carried children a [`WorkflowInbox`] runs at once, unless changed.
pub const DEFAULT_MAX_RUNNING_CHILDREN: usize = 64;

/// An [`Inbox`] that records into `I` and, for the first delivery of a job, runs the FRUGAL
/// child it carries ([`Continuation`]): the parent's `on_success` on a success, its
/// `on_failure` on a failure. This is how a PERFORMANCE → FRUGAL workflow
/// ("the client executes when the webhook arrives") runs.
///
/// - **Once.** The child starts only when `I` answers that the job is new to it
///   ([`Inbox::record`] answers `true`), so a repeated delivery never runs it again. With
///   the shared `ezthrottle_tower::webhook::RedisInbox` that holds across every app
///   replica that receives webhooks (its `record` is atomic); with the in-process
///   [`WebhookInbox`](super::WebhookInbox), within one process. The guarantee lasts as
///   long as `I` remembers the job (the Redis inbox's TTL, the in-memory inbox's
///   capacity); the child's idempotency key, fixed when the parent was built, makes a
///   forward of it harmless beyond that.
/// - **By its own rules.** The child runs as [`Step::execute`](crate::Step::execute) runs
///   it: here, and forwarded to EZThrottle through the client when it fails with a
///   status of its `fallback_on_error`, a transport error or a timeout.
/// - **Off the delivery's path.** The child runs in a task of its own, after the delivery
///   is recorded, so the webhook is answered at once. At most
///   [`max_running`](Self::max_running) children run at once (default
///   [`DEFAULT_MAX_RUNNING_CHILDREN`]); past that, recording waits for a slot, which
///   slows the deliveries down instead of piling up tasks.
/// - **Reported.** Each child runs in a span `continuation` (target `ezthrottle::webhook`,
///   with the parent's job id and the relation) and ends with an event: `debug` when it
///   succeeded here or was forwarded, `warn` when it failed, could not be forwarded or
///   could not be read. A process that stops while a child runs loses that child's run
///   (it is not retried: it may have reached the API).
///
/// ```
/// use ezthrottle_core::inbox::{WebhookInbox, WorkflowInbox};
/// use ezthrottle_core::EZThrottle;
///
/// let client = EZThrottle::new("ck_live_0123")?;
/// let inbox = WorkflowInbox::new(WebhookInbox::new(), client);
/// // Mount it like any inbox: `ezthrottle_tower::axum::webhook_routes(verifier, inbox)`.
/// # let _ = inbox;
/// # Ok::<(), ezthrottle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct WorkflowInbox<I> {
    inbox: I,
    client: EZThrottle,
    running: Arc<Semaphore>,
}

impl<I: Inbox> WorkflowInbox<I> {
    /// Records into `inbox` and runs carried children with `client`.
    pub fn new(inbox: I, client: EZThrottle) -> Self {
        Self { inbox, client, running: Arc::new(Semaphore::new(DEFAULT_MAX_RUNNING_CHILDREN)) }
    }

    /// How many children may run at once (default [`DEFAULT_MAX_RUNNING_CHILDREN`]; `0`
    /// counts as 1).
    #[must_use]
    pub fn max_running(mut self, max_running: usize) -> Self {
        self.running = Arc::new(Semaphore::new(max_running.clamp(1, Semaphore::MAX_PERMITS)));
        self
    }

    /// The inbox deliveries are recorded in.
    pub fn inner(&self) -> &I {
        &self.inbox
    }

    async fn start(&self, parent: String, continuation: Continuation) {
        // The semaphore is never closed: `acquire_owned` cannot fail.
        let Ok(permit) = Arc::clone(&self.running).acquire_owned().await else { return };
        let client = self.client.clone();
        let span = tracing::debug_span!(
            target: telemetry::TARGET_WEBHOOK,
            "continuation",
            parent = %parent,
            relation = continuation.relation().as_str(),
            host = %telemetry::host_of(&continuation.step().request().url),
        );
        tokio::spawn(
            async move {
                let _permit = permit;
                report(continuation.run(&client).await);
            }
            .instrument(span),
        );
    }
}

fn report(result: crate::step::StepResult) {
    match result {
        Ok(StepOutcome::ExecutedLocally { response, .. }) => {
            tracing::debug!(target: telemetry::TARGET_WEBHOOK, status = response.status.as_u16(), "FRUGAL child ran here");
        }
        Ok(StepOutcome::Forwarded(receipt)) => {
            tracing::debug!(target: telemetry::TARGET_WEBHOOK, job_id = %receipt.job_id, "FRUGAL child forwarded to EZThrottle");
        }
        Ok(outcome) => {
            tracing::warn!(target: telemetry::TARGET_WEBHOOK, ?outcome, "FRUGAL child failed here and was not forwarded");
        }
        Err(error) => tracing::warn!(target: telemetry::TARGET_WEBHOOK, %error, "FRUGAL child failed"),
    }
}

impl<I: Inbox> Inbox for WorkflowInbox<I> {
    async fn record(&self, payload: WebhookPayload) -> Result<bool, InboxError> {
        let continuation = Continuation::of(&payload);
        let parent = payload.job_id.clone();
        let new = self.inbox.record(payload).await?;
        if new {
            match continuation {
                Ok(Some(continuation)) => self.start(parent, continuation).await,
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    target: telemetry::TARGET_WEBHOOK, parent = %parent, %error,
                    "the delivery carries a FRUGAL step that cannot be read; it is not run"
                ),
            }
        }
        Ok(new)
    }

    async fn wait_any(&self, keys: &[&str], timeout: Duration) -> Result<WebhookPayload, WaitError> {
        self.inbox.wait_any(keys, timeout).await
    }

    async fn subscribe(&self) -> Result<InboxSubscription, WaitError> {
        self.inbox.subscribe().await
    }

    fn runs_carried_steps(&self) -> bool {
        true
    }
}
