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
use crate::store::{Insert, JobRecord, StoreError, StoredJob};
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
    #[error("{field}: {reason}")]
    Forbidden { field: String, reason: String },
    #[error("the queue is full")]
    QueueFull(Duration),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Store(#[from] StoreError),
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
    if shared.config.allowed_hosts.is_none() && !crate::guard::guarded(&shared.config) {
        return Ok(());
    }
    let field = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    let check = |url: &str, name: String| -> Result<(), SubmitError> {
        match url::Url::parse(url) {
            Ok(parsed) => crate::guard::check_url(&shared.config, &parsed)
                .map_err(|refusal| SubmitError::Forbidden { field: name, reason: refusal.to_string() }),
            Err(_) => Err(SubmitError::Forbidden { field: name, reason: format!("{url:?} is not a URL") }),
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

/// Accepts `job` for `tenant`: answered once the store has it.
pub(crate) async fn accept(
    shared: &Arc<Shared>,
    tenant: &Arc<str>,
    job: Job,
    admission: Admission,
) -> Result<Accepted, SubmitError> {
    if shared.is_closed() && admission == Admission::Limit {
        return Err(SubmitError::ShuttingDown);
    }
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
    let wall = std::time::SystemTime::now();
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
        if let Some(existing) = shared.store.find(&scoped, ttl, wall).await? {
            metrics.duplicates.fetch_add(1, Relaxed);
            return duplicate_receipt(&existing);
        }
        metrics.rejected_full.fetch_add(1, Relaxed);
        let streak = shared.rejections.fetch_add(1, Relaxed).min(16);
        let base = shared.config.admission_retry_after;
        let wait = base.saturating_mul(1u32 << streak).min(Duration::from_secs(60)).max(Duration::from_secs(1));
        return Err(share.err().map_or(SubmitError::QueueFull(wait), |full| SubmitError::ShareFull(full, wait)));
    }

    let id = shared.next_job_id(now_ms());
    let record = Arc::new(JobRecord::new(id, Arc::clone(tenant), Arc::clone(&key), job, now_ms()));
    let inserted = match record.to_stored(&scoped, &host) {
        Ok(stored) => shared.store.insert_if_absent(&stored, ttl, wall).await,
        Err(err) => Err(err),
    };
    let inserted = inserted.inspect_err(|_| {
        metrics.queued.fetch_sub(1, Relaxed);
        metrics.store_errors.fetch_add(1, Relaxed);
    })?;
    match inserted {
        Insert::Duplicate(existing) => {
            metrics.queued.fetch_sub(1, Relaxed);
            crate::tenancy::release(shared, tenant);
            metrics.duplicates.fetch_add(1, Relaxed);
            duplicate_receipt(&existing)
        }
        Insert::Inserted => {
            metrics.accepted.fetch_add(1, Relaxed);
            if shared.rejections.load(Relaxed) != 0 {
                shared.rejections.store(0, Relaxed);
            }
            let status = if record.racing() { SubmissionStatus::Racing } else { SubmissionStatus::Queued };
            let receipt = SubmitReceipt::new(record.id(), status).with_idempotent_key(&*key);
            tracing::debug!(target: ezthrottle_core::telemetry::TARGET_ENGINE, job_id = record.id(), host, "job accepted");
            match shared.store.replication() {
                None => schedule(shared, &host, &record, now),
                // The replica running its host queues it once claimed (counted there).
                Some(replication) => {
                    metrics.queued.fetch_sub(1, Relaxed);
                    crate::tenancy::release(shared, tenant);
                    if replication.holds_host(&host) {
                        shared.claims_due.notify_one();
                    }
                }
            }
            Ok(Accepted { receipt })
        }
    }
}

/// Puts an accepted job in its lane (not before its `retry_at`) and arms its
/// `on_failure_timeout_ms`: at acceptance, and again for a job resumed from the store.
pub(crate) fn schedule(shared: &Arc<Shared>, host: &str, record: &JobRecord, now: Instant) {
    // A job resumed while it waited for a retry's backoff waits until it is due.
    let backoff_due = record.state().detail_ref().and_then(|detail| detail.due_at_ms);
    let backoff_due = backoff_due.and_then(ezthrottle_core::protocol::time::from_unix_ms);
    let due = record.job().retry_at.into_iter().chain(backoff_due).max();
    let not_before = due.and_then(|at| {
        let wait = at.duration_since(std::time::SystemTime::now()).ok().filter(|wait| !wait.is_zero())?;
        // A `retry_at` centuries ahead waits as long as an `Instant` can say (checked sum).
        Some(now.checked_add(wait).or_else(|| now.checked_add(Duration::from_secs(86_400 * 365 * 30))).unwrap_or(now))
    });
    crate::workflow::arm_failure_timeout(shared, record);
    let lane = shared.lanes.lane(host);
    enqueue(
        shared,
        &lane,
        Item::Start { job_id: record.id().into(), tenant: Arc::clone(record.tenant_arc()) },
        not_before,
    );
}

fn duplicate_receipt(existing: &StoredJob) -> Result<Accepted, SubmitError> {
    let existing = JobRecord::from_stored(existing)?;
    let status = if existing.racing() { SubmissionStatus::Racing } else { SubmissionStatus::Queued };
    let receipt =
        SubmitReceipt::new(existing.id(), status).with_idempotent_key(existing.idempotent_key()).with_duplicate(true);
    Ok(Accepted { receipt })
}
