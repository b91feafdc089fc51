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
//!
//! The [replay rule](crate::replay) guards step 4: forwarding runs every request tried here
//! once more, so each of them (the primary and the FRUGAL fallbacks that were tried) must be
//! allowed by its step's [`may_replay`](Step::may_replay). A `POST` without an
//! `Idempotency-Key` whose attempt got no answer or a 5xx may have run: then nothing is
//! forwarded and the step ends [`StepOutcome::ReplayRefused`] (the `on_failure` step runs
//! here). A 429 and a request that was never sent are always forwarded.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::outcome::{LocalFailure, LocalResponse, StepOutcome, StepResult};
use super::{Step, StepType};
use crate::client::{EZThrottle, read_capped};
use crate::error::Error;
use crate::protocol::{Job, Trigger};
use crate::replay::CallFailure;

/// The most of a local response body a FRUGAL step keeps (16 MiB).
pub const MAX_LOCAL_BODY_BYTES: usize = 16 * 1024 * 1024;

pub(super) async fn execute(step: &Step, job: Job, client: &EZThrottle) -> StepResult {
    let (failure, call_failure) = match attempt(step, client).await {
        Attempt::Succeeded(response) => return Ok(succeeded(step, response, client).await),
        Attempt::Failed(failure, call_failure) if is_retryable(step, &failure) => (failure, call_failure),
        Attempt::Failed(LocalFailure::Status(response), _) => {
            let on_failure = on_failure(step, client).await;
            return Ok(StepOutcome::FailedLocally { response, on_failure });
        }
        Attempt::Failed(failure, call_failure) => (failure, call_failure),
    };
    tracing::debug!(target: crate::telemetry::TARGET_FORWARD, %failure, "FRUGAL step failed here; trying its fallbacks");

    // Forwarding runs every request tried here again: the first one the replay rule
    // refuses stops the forward, and is the failure reported.
    let mut refused = (!step.may_replay(call_failure)).then_some(call_failure);
    let mut previous = Tried::of(&failure);
    let mut last_failure = failure;
    for (fallback, trigger) in step.flattened_fallbacks() {
        if fallback.step_type != StepType::Frugal || !trigger_matches(trigger, previous) {
            continue;
        }
        match attempt(fallback, client).await {
            Attempt::Succeeded(response) => return Ok(succeeded(step, response, client).await),
            Attempt::Failed(failure, call_failure) => {
                previous = Tried::of(&failure);
                if refused.is_none() {
                    refused = (!fallback.may_replay(call_failure)).then_some(call_failure);
                    last_failure = failure;
                }
            }
        }
    }

    if let Some(call_failure) = refused {
        tracing::debug!(
            target: crate::telemetry::TARGET_FORWARD, failure = %last_failure, %call_failure,
            "FRUGAL step not forwarded: the API may have run it and its replay policy does not allow a repeat"
        );
        let on_failure = on_failure(step, client).await;
        return Ok(StepOutcome::ReplayRefused { failure: last_failure, call_failure, on_failure });
    }
    tracing::debug!(target: crate::telemetry::TARGET_FORWARD, host = %crate::telemetry::host_of(&job.url), "forwarding FRUGAL step to EZThrottle");
    match client.submit_job(&job).await {
        Ok(receipt) => Ok(StepOutcome::Forwarded(receipt)),
        Err(error) => Err(Error::forward(last_failure, error)),
    }
}

async fn on_failure(step: &Step, client: &EZThrottle) -> Option<Box<StepResult>> {
    match &step.on_failure {
        Some(child) => Some(Box::new(Box::pin(child.execute(client)).await)),
        None => None,
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

/// What a fallback's trigger is matched against: the failure before it.
#[derive(Clone, Copy)]
enum Tried {
    Status(u16),
    Timeout,
    Transport,
}

impl Tried {
    fn of(failure: &LocalFailure) -> Self {
        match failure {
            LocalFailure::Status(response) => Self::Status(response.status.as_u16()),
            LocalFailure::Timeout { .. } => Self::Timeout,
            LocalFailure::Transport { .. } => Self::Transport,
        }
    }
}

fn trigger_matches(trigger: &Trigger, failure: Tried) -> bool {
    match (trigger, failure) {
        (Trigger::OnError { codes }, Tried::Status(status)) => codes.contains(&status),
        (Trigger::OnTimeout { .. }, Tried::Timeout) | (Trigger::Any, _) => true,
        _ => false,
    }
}

enum Attempt {
    Succeeded(LocalResponse),
    /// The failure, and how far the call got (what the replay rule decides on).
    Failed(LocalFailure, CallFailure),
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
        let call_failure = CallFailure::of_error(&source);
        let failure =
            if source.is_timeout() { LocalFailure::Timeout { url } } else { LocalFailure::Transport { url, source } };
        Attempt::Failed(failure, call_failure)
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
    if status.is_success() {
        Attempt::Succeeded(response)
    } else {
        Attempt::Failed(LocalFailure::Status(response), CallFailure::of_status(status))
    }
}
