//! Webhook fan-out: every webhook of a finished job gets the payload of `docs/protocol.md` §3,
//! signed with the tenant's primary secret when one is set. Each delivery is retried with
//! bounded exponential backoff; the quorum is evaluated over the voting webhooks and the
//! outcome recorded on the job.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ezthrottle_core::ErrorChain;
use ezthrottle_core::protocol::headers::JOB_ID_HEADER;
use ezthrottle_core::protocol::{
    DeliveryAttempt, DeliveryOutcome, DeliveryStatus, SIGNATURE_HEADER, WebhookDeliveries, WebhookPayload,
};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::engine::Shared;
use crate::executor::Outcome;
use crate::store::JobRecord;
use crate::util::{jittered, millis, now_ms, now_secs};

/// Longest wait between two delivery attempts.
const MAX_DELIVERY_BACKOFF: Duration = Duration::from_secs(60);

/// Delivers the outcome of `record` to its webhooks and records what happened.
pub(crate) async fn deliver(shared: &Arc<Shared>, record: &Arc<JobRecord>, outcome: &Outcome) {
    let job = record.job();
    if job.webhooks.is_empty() {
        return;
    }
    let status = if outcome.success { DeliveryStatus::Success } else { DeliveryStatus::Failed };
    let mut payload = WebhookPayload::new(record.id(), status)
        .with_idempotent_key(record.idempotent_key())
        .with_metadata(job.metadata.clone());
    if let Some(response) = &outcome.response {
        payload = payload.with_response(response.clone());
    }
    if let Some(error) = outcome.error.as_ref().filter(|_| !outcome.success) {
        payload = payload.with_error(error.clone());
    }
    let body = match serde_json::to_vec(&payload) {
        Ok(body) => Bytes::from(body),
        Err(err) => {
            {
                let mut state = record.state();
                let detail = state.detail();
                detail.events.push(format!("webhooks: the payload could not be encoded: {err}"));
                detail.quorum_met = Some(false);
            }
            shared.persist(record).await;
            return;
        }
    };
    // A job resumed after a restart keeps what its deliveries did and redelivers only the
    // pending ones (at-least-once: a receiver may see a delivery twice, and dedupes it by
    // `job_id`).
    // A job resumed between two attempts waits for the one that was due.
    let due = record.state().detail_ref().and_then(|detail| detail.deliveries_due_at_ms);
    let wait = Duration::from_millis(due.unwrap_or(0).saturating_sub(now_ms()));
    if !wait.is_zero() && !crate::executor::sleep_unless_stopping(shared, wait.min(MAX_DELIVERY_BACKOFF)).await {
        return;
    }
    let (pending, mut votes, mut decided) = {
        let mut state = record.state();
        let detail = state.detail();
        if detail.deliveries.len() != job.webhooks.len() {
            detail.deliveries = job
                .webhooks
                .iter()
                .map(|hook| WebhookDeliveries::new(hook.url.clone(), hook.has_quorum_vote))
                .collect();
        }
        let pending: Vec<usize> = (0..detail.deliveries.len())
            .filter(|&index| detail.deliveries.get(index).is_some_and(|d| d.outcome == DeliveryOutcome::Pending))
            .collect();
        let votes =
            detail.deliveries.iter().filter(|d| d.has_quorum_vote && d.outcome == DeliveryOutcome::Delivered).count();
        (pending, u32::try_from(votes).unwrap_or(u32::MAX), detail.quorum_met == Some(true))
    };
    let mut deliveries: FuturesUnordered<_> = pending
        .into_iter()
        .filter_map(|index| job.webhooks.get(index).map(|hook| (index, hook)))
        .map(|(index, hook)| {
            let body = body.clone();
            async move { (hook.has_quorum_vote, deliver_one(shared, record, index, &hook.url, body).await) }
        })
        .collect();
    let quorum = job.webhook_quorum.max(1);
    let mut stopped = false;
    while let Some((votes_counted, delivered)) = deliveries.next().await {
        match delivered {
            Delivered::Yes if votes_counted => votes += 1,
            Delivered::Stopped => stopped = true,
            _ => {}
        }
        if !decided && votes >= quorum {
            decided = true;
            record.state().detail().quorum_met = Some(true);
            shared.metrics.quorum_met.fetch_add(1, Relaxed);
            shared.persist(record).await;
        }
    }
    if !decided && !stopped {
        record.state().detail().quorum_met = Some(false);
        shared.metrics.quorum_missed.fetch_add(1, Relaxed);
        shared.persist(record).await;
    }
}

/// How one webhook's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    Yes,
    No,
    /// The drain started between two attempts: the delivery stays pending.
    Stopped,
}

async fn deliver_one(shared: &Arc<Shared>, record: &Arc<JobRecord>, index: usize, url: &str, body: Bytes) -> Delivered {
    let config = &shared.config;
    let attempts = config.webhook_attempts.max(1);
    let refusal = match url::Url::parse(url) {
        Ok(parsed) => crate::guard::check_url(config, &parsed).err().map(|refusal| refusal.to_string()),
        Err(err) => Some(format!("the webhook URL is invalid: {err}")),
    };
    let mut delivered = false;
    for attempt in 0..attempts {
        if let Some(refusal) = &refusal {
            push_attempt(
                record,
                index,
                DeliveryAttempt::new(SystemTime::now(), Duration::ZERO, None, Some(refusal.clone())),
            );
            break;
        }
        if attempt > 0 {
            let backoff = config.webhook_retry_base.saturating_mul(1u32 << (attempt - 1).min(20));
            let wait = jittered(backoff, 0.1).min(MAX_DELIVERY_BACKOFF);
            // Saved: after a restart the redelivery waits until then too.
            record.state().detail().deliveries_due_at_ms = Some(now_ms().saturating_add(millis(wait)));
            shared.persist(record).await;
            if !crate::executor::sleep_unless_stopping(shared, wait).await {
                return Delivered::Stopped;
            }
        }
        let mut request = shared
            .http
            .post(url)
            .timeout(config.webhook_timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(JOB_ID_HEADER, record.id());
        // Read the secret at each attempt: a rotation made while retrying applies. Without
        // it (the store failed) nothing is sent: an unsigned delivery would be refused.
        match shared.secrets.primary(&*shared.store, record.tenant_arc()).await {
            Ok(Some(secret)) => {
                request = request
                    .header(SIGNATURE_HEADER, ezthrottle_core::webhook::sign(secret.expose(), now_secs(), &body));
            }
            Ok(None) => {}
            Err(err) => {
                let error = format!("the webhook secret could not be read: {}", ezthrottle_core::ErrorChain(&err));
                push_attempt(record, index, DeliveryAttempt::new(SystemTime::now(), Duration::ZERO, None, Some(error)));
                continue;
            }
        }
        let started = Instant::now();
        let at = SystemTime::now();
        let (status_code, error) = match request.body(body.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                crate::drain::drain(response, crate::drain::WEBHOOK_ANSWER_LIMIT).await;
                (Some(status.as_u16()), (!status.is_success()).then(|| format!("answered {status}")))
            }
            Err(err) if err.is_timeout() => {
                (None, Some(format!("no answer within {} ms", config.webhook_timeout.as_millis())))
            }
            Err(err) => (None, Some(ErrorChain(&err).to_string())),
        };
        let ok = error.is_none();
        push_attempt(record, index, DeliveryAttempt::new(at, started.elapsed(), status_code, error));
        shared.persist(record).await;
        if ok {
            delivered = true;
            break;
        }
        if attempt + 1 < attempts {
            shared.metrics.deliveries_retried.fetch_add(1, Relaxed);
        }
    }
    {
        let mut state = record.state();
        if let Some(delivery) = state.detail().deliveries.get_mut(index) {
            delivery.outcome = if delivered { DeliveryOutcome::Delivered } else { DeliveryOutcome::Failed };
        }
    }
    if delivered {
        shared.metrics.deliveries_ok.fetch_add(1, Relaxed);
    } else {
        shared.metrics.deliveries_failed.fetch_add(1, Relaxed);
    }
    shared.persist(record).await;
    if delivered { Delivered::Yes } else { Delivered::No }
}

fn push_attempt(record: &JobRecord, index: usize, attempt: DeliveryAttempt) {
    if let Some(delivery) = record.state().detail().deliveries.get_mut(index) {
        delivery.attempts.push(attempt);
    }
}
