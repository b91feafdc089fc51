//! FRUGAL execution: try here first, forward to EZThrottle only on a retryable failure.
//!
//! 1. Run the request here within `local_timeout`.
//! 2. 2xx: done; the `on_success` step runs here (it is not also sent to EZThrottle).
//! 3. A status in `fallback_on_error`, a transport error or a timeout: try the FRUGAL
//!    fallbacks in chain order, each only if its trigger matches the failure before it
//!    (`on_error` the status, `on_timeout` a timeout, `any` every failure). PERFORMANCE fallbacks are left to
//!    EZThrottle. The first 2xx wins and the step's `on_success` runs here.
//! 4. None succeeded: forward the whole step, fallback chain included, once. Fallbacks
//!    are never forwarded on their own, so a forwarded fallback can never be followed by
//!    a second job for the primary.
//! 5. Any other status: failed here, nothing forwarded; the `on_failure` step runs here.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::outcome::{LocalFailure, LocalResponse, StepOutcome, StepResult};
use super::{Step, StepType};
use crate::client::{EZThrottle, read_capped};
use crate::error::Error;
use crate::protocol::{Job, Trigger};

/// The most of a local response body a FRUGAL step keeps (16 MiB).
pub const MAX_LOCAL_BODY_BYTES: usize = 16 * 1024 * 1024;

pub(super) async fn execute(step: &Step, job: Job, client: &EZThrottle) -> StepResult {
    let failure = match attempt(step, client).await {
        Attempt::Succeeded(response) => return Ok(succeeded(step, response, client).await),
        Attempt::Failed(failure) if is_retryable(step, &failure) => failure,
        Attempt::Failed(LocalFailure::Status(response)) => {
            let on_failure = match &step.on_failure {
                Some(child) => Some(Box::new(Box::pin(child.execute(client)).await)),
                None => None,
            };
            return Ok(StepOutcome::FailedLocally { response, on_failure });
        }
        Attempt::Failed(failure) => failure,
    };
    tracing::debug!(target: "ezthrottle", %failure, "FRUGAL step failed here; trying its fallbacks");

    let mut last_failure = failure;
    for (fallback, trigger) in step.flattened_fallbacks() {
        if fallback.step_type != StepType::Frugal || !trigger_matches(trigger, &last_failure) {
            continue;
        }
        match attempt(fallback, client).await {
            Attempt::Succeeded(response) => return Ok(succeeded(step, response, client).await),
            Attempt::Failed(failure) => last_failure = failure,
        }
    }

    tracing::debug!(target: "ezthrottle", url = %job.url, "forwarding FRUGAL step to EZThrottle");
    match client.submit_job(&job).await {
        Ok(receipt) => Ok(StepOutcome::Forwarded(receipt)),
        Err(error) => Err(Error::forward(last_failure, error)),
    }
}

async fn succeeded(step: &Step, response: LocalResponse, client: &EZThrottle) -> StepOutcome {
    let on_success = match &step.on_success {
        Some(child) => Some(Box::new(Box::pin(child.execute(client)).await)),
        None => None,
    };
    StepOutcome::ExecutedLocally { response, on_success }
}

fn is_retryable(step: &Step, failure: &LocalFailure) -> bool {
    match failure {
        LocalFailure::Status(response) => step.fallback_on_error.contains(&response.status.as_u16()),
        LocalFailure::Timeout { .. } | LocalFailure::Transport { .. } => true,
    }
}

fn trigger_matches(trigger: &Trigger, failure: &LocalFailure) -> bool {
    match (trigger, failure) {
        (Trigger::OnError { codes }, LocalFailure::Status(response)) => codes.contains(&response.status.as_u16()),
        (Trigger::OnTimeout { .. }, LocalFailure::Timeout { .. }) => true,
        (Trigger::Any, _) => true,
        _ => false,
    }
}

enum Attempt {
    Succeeded(LocalResponse),
    Failed(LocalFailure),
}

/// One request made here, as the step describes it.
async fn attempt(step: &Step, client: &EZThrottle) -> Attempt {
    let request = &step.request;
    let url = request.url.clone();
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        // Validated with the job; anything unparsable was refused before this point.
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
    let mut builder =
        client.http_client().request(request.normalized_method(), &url).headers(headers).timeout(step.local_timeout);
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let failed = |source: reqwest::Error, url: String| {
        Attempt::Failed(if source.is_timeout() {
            LocalFailure::Timeout { url }
        } else {
            LocalFailure::Transport { url, source }
        })
    };
    let response = match builder.send().await {
        Ok(response) => response,
        Err(source) => return failed(source, url),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body: Bytes = match read_capped(response, MAX_LOCAL_BODY_BYTES.saturating_add(1)).await {
        Ok(body) => body,
        Err(source) => return failed(source, url),
    };
    let body_truncated = body.len() > MAX_LOCAL_BODY_BYTES;
    let body = if body_truncated { body.slice(..MAX_LOCAL_BODY_BYTES) } else { body };
    let response = LocalResponse { url, status, headers, body, body_truncated };
    if status.is_success() { Attempt::Succeeded(response) } else { Attempt::Failed(LocalFailure::Status(response)) }
}
