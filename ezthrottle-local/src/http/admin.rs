//! The tenant's admin API: list its jobs, cancel a queued one, redeliver a finished one's
//! webhooks (`docs/protocol.md` §6.1). Every call sees the caller's jobs only, and works
//! on any replica.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, RawQuery, State};
use ezthrottle_core::protocol::{JobList, JobStatus};
use http::{HeaderMap, StatusCode};

use super::ApiResponse;
use super::error::{bad_request, json_error, store_unavailable, unauthorized};
use crate::engine::Shared;
use crate::store::{JobQuery, JobRecord, StoreError, StoredJob};
use crate::util::now_ms;

/// Jobs in one page when the caller names no `limit`.
pub(crate) const DEFAULT_PAGE: usize = 50;
/// The most jobs in one page.
pub(crate) const MAX_PAGE: usize = 500;

fn store_failed(err: &StoreError) -> ApiResponse {
    store_unavailable("the jobs could not be read or saved", err)
}

fn unix_ms_param(name: &str, value: &str) -> Result<SystemTime, ApiResponse> {
    let ms: u64 = value.parse().map_err(|_| bad_request(name, "must be a time in Unix milliseconds"))?;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .filter(|at| *at <= crate::store::far_future())
        .ok_or_else(|| bad_request(name, "is too far ahead"))
}

/// The query of `GET /api/v1/jobs?status=&host=&since=&until=&limit=&cursor=` for `tenant`.
fn query_of(tenant: &str, raw: Option<&str>) -> Result<JobQuery, ApiResponse> {
    let mut query = JobQuery::new(format!("{tenant}\n"), DEFAULT_PAGE);
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match &*name {
            "status" => {
                let status = crate::store::status_from_column(&value);
                if status == JobStatus::Unknown {
                    return Err(bad_request("status", "must be queued, running, success or failed"));
                }
                query.status = Some(status);
            }
            "host" => query.host = Some(value.to_ascii_lowercase()),
            "since" => query.accepted.start = unix_ms_param("since", &value)?,
            "until" => query.accepted.end = unix_ms_param("until", &value)?,
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=MAX_PAGE).contains(limit))
                    .ok_or_else(|| bad_request("limit", format!("must be from 1 to {MAX_PAGE}")))?;
            }
            "cursor" => query.after_id = Some(value.into_owned()),
            other => {
                return Err(bad_request(
                    other,
                    "is not a filter of this list (status, host, since, until, limit, cursor)",
                ));
            }
        }
    }
    Ok(query)
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResponse {
    let Some(tenant) = shared.tenants.authenticate(&headers) else { return unauthorized() };
    let query = match query_of(&tenant, raw.as_deref()) {
        Ok(query) => query,
        Err(refusal) => return refusal,
    };
    let found = match shared.store.list(&query).await {
        Ok(found) => found,
        Err(err) => return store_failed(&err),
    };
    let next_cursor = (found.len() == query.limit).then(|| found.last().map(|job| job.id.clone())).flatten();
    let mut jobs = Vec::with_capacity(found.len());
    for stored in &found {
        match JobRecord::from_stored(stored) {
            Ok(record) => jobs.push(record.snapshot()),
            Err(err) => {
                tracing::error!(job_id = stored.id, error = %ezthrottle_core::ErrorChain(&err), "a stored job cannot be read")
            }
        }
    }
    ApiResponse::json(StatusCode::OK, &JobList::new(jobs, next_cursor))
}

/// The job `id` of `tenant`, as the store last saved it.
async fn own_job(shared: &Shared, tenant: &str, id: &str) -> Result<(StoredJob, JobRecord), ApiResponse> {
    let not_found = || json_error(StatusCode::NOT_FOUND, format!("job_id: no job {id:?}"));
    let stored = shared.store.get(id).await.map_err(|err| store_failed(&err))?.ok_or_else(not_found)?;
    let record = JobRecord::from_stored(&stored).map_err(|err| store_failed(&err))?;
    if record.tenant() != tenant {
        return Err(not_found());
    }
    Ok((stored, record))
}

fn conflict(id: &str, status: JobStatus, what: &str) -> ApiResponse {
    json_error(StatusCode::CONFLICT, format!("status: job {id:?} is {status}; {what}"))
}

/// `POST /api/v1/jobs/{id}/cancel`: a queued job (waiting for its turn or its `retry_at`)
/// ends failed with the error `cancelled`, and sends no webhook and starts no child.
pub(super) async fn cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResponse {
    let Some(tenant) = shared.tenants.authenticate(&headers) else { return unauthorized() };
    let (_, record) = match own_job(&shared, &tenant, &id).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if record.status() != JobStatus::Queued {
        return conflict(&id, record.status(), "only a queued job can be cancelled");
    }
    {
        let mut state = record.state();
        state.status = JobStatus::Failed;
        state.finished_at_ms = now_ms();
        let detail = state.detail();
        detail.error = Some("cancelled".into());
        detail.cancelled = true;
        detail.events.push(format!("cancelled by its tenant at {} (unix ms)", now_ms()));
    }
    let saved = match record.progress() {
        Ok(progress) => shared.store.save_if(&id, &progress, &[JobStatus::Queued]).await,
        Err(err) => Err(err),
    };
    match saved {
        Ok(true) => {
            tracing::info!(job_id = id, "a job was cancelled");
            ApiResponse::json(StatusCode::OK, &record.snapshot())
        }
        // Its turn came first.
        Ok(false) => conflict(&id, JobStatus::Running, "only a queued job can be cancelled"),
        Err(err) => store_failed(&err),
    }
}

/// `POST /api/v1/jobs/{id}/redeliver`: a finished job's webhooks are delivered again,
/// every one of them, with the retries of a first delivery. 202: under way.
pub(super) async fn redeliver(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResponse {
    let Some(tenant) = shared.tenants.authenticate(&headers) else { return unauthorized() };
    let (stored, record) = match own_job(&shared, &tenant, &id).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    // The instance this engine works on, if one is live: the redelivery resets that one.
    let record = shared.live.adopt(Arc::new(record));
    let status = record.status();
    if !status.is_finished() {
        return conflict(&id, status, "only a finished job's webhooks can be delivered again");
    }
    if record.job().webhooks.is_empty() {
        return json_error(StatusCode::CONFLICT, format!("webhooks: job {id:?} has none to deliver"));
    }
    if !stored.progress.settled {
        return conflict(&id, status, "its deliveries are still under way");
    }
    {
        let mut state = record.state();
        let detail = state.detail();
        if detail.cancelled {
            drop(state);
            return json_error(
                StatusCode::CONFLICT,
                format!("status: job {id:?} was cancelled: it has no result to deliver"),
            );
        }
        detail.deliveries.clear();
        detail.quorum_met = None;
        detail.deliveries_due_at_ms = None;
        detail.events.push(format!("redelivery asked by its tenant at {} (unix ms)", now_ms()));
    }
    let saved = match record.progress() {
        Ok(progress) => shared.store.save_if(&id, &progress, &[JobStatus::Success, JobStatus::Failed]).await,
        Err(err) => Err(err),
    };
    match saved {
        Ok(true) => {}
        Ok(false) => return conflict(&id, status, "it changed meanwhile; ask again"),
        Err(err) => return store_failed(&err),
    }
    let webhooks = record.job().webhooks.len();
    if shared.store.replication().is_some() {
        // Released by the save: the replica running its host settles it at its next poll.
        shared.claims_due.notify_one();
    } else {
        let task_shared = Arc::clone(&shared);
        shared.spawn(async move {
            let outcome = crate::executor::Outcome::recorded(&record);
            crate::delivery::deliver(&task_shared, &record, &outcome).await;
        });
    }
    ApiResponse::json(StatusCode::ACCEPTED, &serde_json::json!({"job_id": id, "webhooks": webhooks}))
}
