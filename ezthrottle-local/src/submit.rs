//! Accepting a job: validation, the allow-list, idempotency, admission, queueing.
//!
//! Order (the peers' lessons): a queue slot is reserved first (one atomic add); if the
//! queue is full, a live duplicate is still answered as a duplicate, anything else gets
//! 429. Otherwise the key is claimed with one atomic insert-if-absent; a duplicate gives
//! its slot back. Nothing is inserted then deleted, so no caller ever sees a ghost job.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use ezthrottle_core::protocol::{InvalidJob, Job, SubmissionStatus, SubmitReceipt};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use crate::engine::Shared;
use crate::pacing::{Item, enqueue, host_key};
use crate::store::{Insert, JobRecord};
use crate::util::now_ms;

/// Whether the queue limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A client submission: refused when the queue is full.
    Limit,
    /// A child of an accepted job: never refused for space (nothing accepted is dropped).
    Bypass,
}

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: host {host:?} is not in the engine's allow-list")]
    Forbidden { field: String, host: String },
    #[error("the queue is full")]
    QueueFull(Duration),
    #[error("the tenant holds its share of the queue")]
    ShareFull(crate::tenancy::ShareFull, Duration),
}

/// A submission's answer.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) receipt: SubmitReceipt,
}

/// The HASH idempotency key: `hash_` + SHA-256 of (tenant, method, url, body).
pub(crate) fn hash_key(tenant: &str, job: &Job) -> String {
    let mut hasher = Sha256::new();
    for part in [tenant, job.method.as_str(), job.url.as_str(), job.body.as_deref().unwrap_or("")] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    format!("hash_{}", hex::encode(hasher.finalize()))
}

fn check_hosts(shared: &Shared, job: &Job, path: &str) -> Result<(), SubmitError> {
    if shared.config.allowed_hosts.is_none() {
        return Ok(());
    }
    let field = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    let check = |url: &str, name: String| -> Result<(), SubmitError> {
        match url::Url::parse(url) {
            Ok(parsed) if shared.config.host_allowed(&parsed) => Ok(()),
            Ok(parsed) => Err(SubmitError::Forbidden { field: name, host: parsed.host_str().unwrap_or("").to_owned() }),
            Err(_) => Err(SubmitError::Forbidden { field: name, host: url.to_owned() }),
        }
    };
    check(&job.url, field("url"))?;
    for (index, hook) in job.webhooks.iter().enumerate() {
        check(&hook.url, field(&format!("webhooks[{index}].url")))?;
    }
    for (name, nested) in
        [("fallback_job", &job.fallback_job), ("on_success", &job.on_success), ("on_failure", &job.on_failure)]
    {
        if let Some(nested) = nested {
            check_hosts(shared, nested, &field(name))?;
        }
    }
    Ok(())
}

/// Accepts `job` for `tenant`.
pub(crate) fn accept(
    shared: &Arc<Shared>,
    tenant: &Arc<str>,
    job: Job,
    admission: Admission,
) -> Result<Accepted, SubmitError> {
    job.validate()
        .map_err(|invalid: InvalidJob| SubmitError::Invalid { field: invalid.field, reason: invalid.reason })?;
    shared
        .config
        .job_limits
        .check(&job, std::time::SystemTime::now())
        .map_err(|exceeded| SubmitError::Invalid { field: exceeded.field, reason: exceeded.reason })?;
    check_hosts(shared, &job, "")?;
    let host = url::Url::parse(&job.url)
        .ok()
        .as_ref()
        .and_then(host_key)
        .ok_or_else(|| SubmitError::Invalid { field: "url".into(), reason: "must have a host".into() })?;
    let key: Arc<str> = match &job.idempotent_key {
        Some(key) => Arc::from(key.as_str()),
        None => Arc::from(hash_key(tenant, &job)),
    };
    let mut scoped = String::with_capacity(tenant.len() + key.len() + 1);
    scoped.push_str(tenant);
    scoped.push('\n');
    scoped.push_str(&key);
    let metrics = &shared.metrics;
    let now = Instant::now();
    let ttl = shared.config.idempotency_ttl;

    let reserved = match admission {
        Admission::Bypass => {
            metrics.queued.fetch_add(1, Relaxed);
            true
        }
        Admission::Limit => {
            let limit = i64::try_from(shared.config.max_queued_jobs).unwrap_or(i64::MAX);
            if metrics.queued.fetch_add(1, Relaxed) < limit {
                true
            } else {
                metrics.queued.fetch_sub(1, Relaxed);
                false
            }
        }
    };
    let share = if reserved { crate::tenancy::reserve(shared, tenant, admission) } else { Ok(()) };
    if !reserved || share.is_err() {
        if let Some(existing) = shared.store.find(&scoped, ttl, now.into_std()) {
            metrics.duplicates.fetch_add(1, Relaxed);
            return Ok(duplicate_receipt(&existing));
        }
        metrics.rejected_full.fetch_add(1, Relaxed);
        let streak = shared.rejections.fetch_add(1, Relaxed).min(16);
        let base = shared.config.admission_retry_after;
        let wait = base.saturating_mul(1u32 << streak).min(Duration::from_secs(60)).max(Duration::from_secs(1));
        return Err(share.err().map_or(SubmitError::QueueFull(wait), |full| SubmitError::ShareFull(full, wait)));
    }

    let id = format!("job_{}_{}", now_ms(), shared.next_seq());
    let not_before = job.retry_at.and_then(|at| {
        let wait = at.duration_since(std::time::SystemTime::now()).ok().filter(|wait| !wait.is_zero())?;
        // A `retry_at` centuries ahead waits as long as an `Instant` can say (checked sum).
        Some(now.checked_add(wait).or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30))).unwrap_or(now))
    });
    let record = Arc::new(JobRecord::new(id, Arc::clone(tenant), Arc::clone(&key), job, now_ms()));
    match shared.store.insert_if_absent(&scoped, Arc::clone(&record), ttl, now.into_std()) {
        Insert::Duplicate(existing) => {
            metrics.queued.fetch_sub(1, Relaxed);
            crate::tenancy::release(shared, tenant);
            metrics.duplicates.fetch_add(1, Relaxed);
            Ok(duplicate_receipt(&existing))
        }
        Insert::Inserted => {
            metrics.accepted.fetch_add(1, Relaxed);
            if shared.rejections.load(Relaxed) != 0 {
                shared.rejections.store(0, Relaxed);
            }
            let status = if record.racing() { SubmissionStatus::Racing } else { SubmissionStatus::Queued };
            let receipt = SubmitReceipt::new(record.id(), status).with_idempotent_key(&*key);
            crate::workflow::arm_failure_timeout(shared, &record);
            let lane = shared.lanes.lane(&host);
            enqueue(shared, &lane, Item::Start(record), not_before);
            Ok(Accepted { receipt })
        }
    }
}

fn duplicate_receipt(existing: &JobRecord) -> Accepted {
    let status = if existing.racing() { SubmissionStatus::Racing } else { SubmissionStatus::Queued };
    let receipt =
        SubmitReceipt::new(existing.id(), status).with_idempotent_key(existing.idempotent_key()).with_duplicate(true);
    Accepted { receipt }
}
