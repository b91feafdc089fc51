//! `POST /api/v1/jobs` and `GET /api/v1/jobs/{id}`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use ezthrottle_core::protocol::Job;
use http::StatusCode;

use super::error::{bad_request, json_error, store_unavailable, unauthorized};
use super::{ApiResponse, read_body};
use crate::engine::Shared;
use crate::store::JobRecord;
use crate::submit::{Admission, SubmitError, accept};

/// At most this many ignored fields are named in the log for one job (a peer controls
/// how many there are).
const MAX_LOGGED_UNKNOWN_FIELDS: usize = 16;

/// Parses a job, naming the offending field on error. A field the protocol does not know
/// is logged with its path, or with `reject_unknown` refused with a 400 naming it.
pub(crate) fn parse_job(body: &[u8], reject_unknown: bool) -> Result<Job, ApiResponse> {
    use serde::Deserialize as _;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut unknown_count = 0usize;
    let mut note_unknown = |path: serde_ignored::Path<'_>| {
        unknown_count = unknown_count.saturating_add(1);
        if unknown.len() < MAX_LOGGED_UNKNOWN_FIELDS {
            unknown.push(field_path(&path));
        }
    };
    let parsed = Job::deserialize(serde_ignored::Deserializer::new(
        serde_path_to_error::Deserializer::new(&mut deserializer, &mut track),
        &mut note_unknown,
    ))
    .map_err(|err| serde_path_to_error::Error::new(track.path(), err));
    let job = match parsed {
        Ok(job) => job,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return Err(bad_request("body", format!("malformed JSON ({inner})")));
            }
            return Err(field_error(path, &inner.to_string()));
        }
    };
    if let Err(err) = deserializer.end() {
        return Err(bad_request("body", format!("malformed JSON ({err})")));
    }
    if let Some(first) = unknown.first() {
        if reject_unknown {
            return Err(bad_request(first, "unknown field: not part of the job protocol"));
        }
        tracing::warn!(fields = ?unknown, count = unknown_count, "job fields the protocol does not know were ignored");
    }
    Ok(job)
}

/// `fallback_job.webhooks.0.url`: the path as the 400s name fields (serde_ignored's own
/// `Display` writes `?` for every `Option`).
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    let mut names = Vec::new();
    let mut at = path;
    loop {
        at = match at {
            Path::Root => break,
            Path::Seq { parent, index } => {
                names.push(index.to_string());
                parent
            }
            Path::Map { parent, key } => {
                names.push(key.clone());
                parent
            }
            Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => parent,
        };
    }
    names.reverse();
    names.join(".")
}

/// A 400 naming the field a deserialization error is about.
fn field_error(path: String, text: &str) -> ApiResponse {
    let message = text.rsplit_once(" at line ").map_or(text, |(message, _)| message);
    let parent = if path == "." { String::new() } else { path };
    let join = |name: &str| if parent.is_empty() { name.to_owned() } else { format!("{parent}.{name}") };
    let field = if let Some(missing) =
        message.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map(|(name, _)| name)
    {
        join(missing)
    } else if message.starts_with("unknown variant") && parent.ends_with("trigger") {
        join("type")
    } else if parent.is_empty() {
        "body".to_owned()
    } else {
        parent.clone()
    };
    bad_request(&field, message)
}

/// Submits a job for `tenant`: 201 new, 200 duplicate, 400/403/429 refused.
pub(crate) async fn submit(shared: &Arc<Shared>, tenant: &Arc<str>, body: &[u8]) -> ApiResponse {
    let job = match parse_job(body, shared.config.reject_unknown_fields) {
        Ok(job) => job,
        Err(response) => {
            shared.metrics.rejected_invalid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return response;
        }
    };
    match accept(shared, tenant, job, Admission::Limit).await {
        Ok(accepted) => {
            let status = if accepted.receipt.duplicate { StatusCode::OK } else { StatusCode::CREATED };
            ApiResponse::json(status, &accepted.receipt)
        }
        Err(SubmitError::Invalid { field, reason }) => {
            shared.metrics.rejected_invalid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            bad_request(&field, reason)
        }
        Err(err @ SubmitError::Forbidden { .. }) => json_error(StatusCode::FORBIDDEN, err.to_string()),
        Err(SubmitError::QueueFull(wait)) => {
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("queue: the engine's queue is full ({} jobs); retry later", shared.config.max_queued_jobs),
            );
            response.retry_after = Some(wait.as_secs().max(1));
            response
        }
        Err(SubmitError::ShuttingDown) => {
            let mut response =
                json_error(StatusCode::SERVICE_UNAVAILABLE, "engine: shutting down; submit again to its successor");
            response.retry_after = Some(SHUTDOWN_RETRY_AFTER_SECS);
            response
        }
        Err(SubmitError::Store(err)) => store_unavailable("the job could not be stored", &err),
        Err(SubmitError::ShareFull(full, wait)) => {
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "queue: this tenant already has {} jobs waiting, its share of the queue \
                     (max_queued_jobs_per_tenant); retry later",
                    full.limit
                ),
            );
            response.retry_after = Some(wait.as_secs().max(1));
            response
        }
    }
}

/// `Retry-After` of a submission refused during the drain: about a restart.
const SHUTDOWN_RETRY_AFTER_SECS: u64 = 5;

/// The status of one job of `tenant`.
pub(crate) async fn get(shared: &Shared, tenant: &str, id: &str) -> ApiResponse {
    let record = match shared.store.get(id).await {
        Ok(Some(stored)) => JobRecord::from_stored(&stored),
        Ok(None) => return json_error(StatusCode::NOT_FOUND, format!("job_id: no job {id:?}")),
        Err(err) => Err(err),
    };
    match record {
        Ok(record) if record.tenant() == tenant => ApiResponse::json(StatusCode::OK, &record.snapshot()),
        Ok(_) => json_error(StatusCode::NOT_FOUND, format!("job_id: no job {id:?}")),
        Err(err) => store_unavailable("the job could not be read", &err),
    }
}

pub(super) async fn submit_direct(State(shared): State<Arc<Shared>>, request: Request) -> ApiResponse {
    let Some(tenant) = shared.tenants.authenticate(request.headers()) else {
        return unauthorized();
    };
    match read_body(request, shared.config.max_body_bytes).await {
        Ok(body) => submit(&shared, &tenant, &body).await,
        Err(response) => response,
    }
}

pub(super) async fn get_direct(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: http::HeaderMap,
) -> ApiResponse {
    match shared.tenants.authenticate(&headers) {
        Some(tenant) => get(&shared, &tenant, &id).await,
        None => unauthorized(),
    }
}
