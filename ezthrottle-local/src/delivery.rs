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
use crate::util::{jittered, now_secs};

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
            record.state().detail().events.push(format!("webhooks: the payload could not be encoded: {err}"));
            return;
        }
    };
    {
        let mut state = record.state();
        state.detail().deliveries =
            job.webhooks.iter().map(|hook| WebhookDeliveries::new(hook.url.clone(), hook.has_quorum_vote)).collect();
    }
    let mut deliveries: FuturesUnordered<_> = job
        .webhooks
        .iter()
        .enumerate()
        .map(|(index, hook)| {
            let body = body.clone();
            async move { (hook.has_quorum_vote, deliver_one(shared, record, index, &hook.url, body).await) }
        })
        .collect();
    let quorum = job.webhook_quorum.max(1);
    let mut votes = 0u32;
    let mut decided = false;
    while let Some((votes_counted, delivered)) = deliveries.next().await {
        if delivered && votes_counted {
            votes += 1;
        }
        if !decided && votes >= quorum {
            decided = true;
            record.state().detail().quorum_met = Some(true);
            shared.metrics.quorum_met.fetch_add(1, Relaxed);
            shared.store.updated(record);
        }
    }
    if !decided {
        record.state().detail().quorum_met = Some(false);
        shared.metrics.quorum_missed.fetch_add(1, Relaxed);
        shared.store.updated(record);
    }
}

async fn deliver_one(shared: &Arc<Shared>, record: &Arc<JobRecord>, index: usize, url: &str, body: Bytes) -> bool {
    let config = &shared.config;
    let attempts = config.webhook_attempts.max(1);
    let allowed = url::Url::parse(url).is_ok_and(|parsed| config.host_allowed(&parsed));
    let mut delivered = false;
    for attempt in 0..attempts {
        if !allowed {
            push_attempt(
                record,
                index,
                DeliveryAttempt::new(
                    SystemTime::now(),
                    Duration::ZERO,
                    None,
                    Some("the webhook host is not in the engine's allow-list".into()),
                ),
            );
            break;
        }
        if attempt > 0 {
            let backoff = config.webhook_retry_base.saturating_mul(1u32 << (attempt - 1).min(20));
            tokio::time::sleep(jittered(backoff, 0.1).min(MAX_DELIVERY_BACKOFF)).await;
        }
        let mut request = shared
            .http
            .post(url)
            .timeout(config.webhook_timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(JOB_ID_HEADER, record.id());
        // Read the secret at each attempt: a rotation made while retrying applies.
        if let Some(secret) = shared.secrets.primary(record.tenant()) {
            request =
                request.header(SIGNATURE_HEADER, ezthrottle_core::webhook::sign(secret.expose(), now_secs(), &body));
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
    shared.store.updated(record);
    delivered
}

fn push_attempt(record: &JobRecord, index: usize, attempt: DeliveryAttempt) {
    if let Some(delivery) = record.state().detail().deliveries.get_mut(index) {
        delivery.attempts.push(attempt);
    }
}
