//! The scenario endpoints: each builds the same job as the official SDKs' test apps (Python
//! `test-app/app.py`, Node `test-app/app.js`), submits it and answers at once with the
//! receipt; the result arrives later at `POST /webhook`.
//!
//! A scenario whose submission fails answers 502 `{"test": "<name>", "error": "<message>"}`.

use std::error::Error as StdError;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ezthrottle::{
    EZThrottle, ExecutionMode, ForwardToEZThrottle, IdempotentStrategy, LocalResponse, Method, Outcome, RegionPolicy,
    Step, StepOutcome, StepType, Trigger, Webhook, auto_forward,
};
use serde_json::{Value, json};

use crate::app::AppState;

/// The scenario endpoints, in the peers' order.
pub const ENDPOINTS: [&str; 8] = [
    "/test/performance/basic",
    "/test/performance/racing",
    "/test/performance/fallback-chain",
    "/test/workflow/on-success",
    "/test/idempotent/hash",
    "/test/idempotent/unique",
    "/test/decorator/auto-forward",
    "/test/frugal/local",
];

/// `POST` on each of [`ENDPOINTS`] to its scenario.
pub(crate) fn routes() -> Router<AppState> {
    // In the order of `ENDPOINTS`.
    let handlers = [
        post(performance_basic),
        post(performance_racing),
        post(performance_fallback_chain),
        post(workflow_on_success),
        post(idempotent_hash),
        post(idempotent_unique),
        post(decorator_auto_forward),
        post(frugal_local),
    ];
    ENDPOINTS.into_iter().zip(handlers).fold(Router::new(), |router, (path, handler)| router.route(path, handler))
}

/// How long the legacy function of the auto-forward scenario waits for the upstream.
const LEGACY_TIMEOUT: Duration = Duration::from_secs(5);

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A voting webhook to this app.
fn webhook(state: &AppState) -> Webhook {
    Webhook::new(state.webhook_url()).has_quorum_vote(true)
}

/// A PERFORMANCE `GET` of the upstream's `path`, delivering to this app.
fn performance_get(state: &AppState, path: &str) -> Step {
    Step::new(state.upstream(path)).method(Method::GET).step_type(StepType::Performance).webhook(webhook(state))
}

/// The message of `error` followed by its sources, each once.
fn describe(error: &(dyn StdError + 'static)) -> String {
    ezthrottle::ErrorChain(error).to_string()
}

fn failed(test: &str, error: &(dyn StdError + 'static)) -> Response {
    let error = describe(error);
    tracing::warn!(test, %error, "scenario failed");
    (StatusCode::BAD_GATEWAY, Json(json!({ "test": test, "error": error }))).into_response()
}

/// A step's outcome as the peers show it under `result`: the receipt of a forwarded job,
/// or for a step run here `{"status","executed_locally":true,"status_code",...}`.
pub fn outcome_json(outcome: &StepOutcome) -> Value {
    match outcome {
        StepOutcome::Forwarded(receipt) => json!(receipt),
        StepOutcome::ExecutedLocally { response, on_success } => {
            let mut value = executed_locally_json(response);
            if let Some(child) = on_success {
                value["on_success"] = match child.as_ref() {
                    Ok(outcome) => outcome_json(outcome),
                    Err(error) => json!({ "error": describe(error) }),
                };
            }
            value
        }
        StepOutcome::FailedLocally { response, on_failure } => {
            let code = response.status.as_u16();
            let mut value = json!({
                "status": "failed",
                "executed_locally": true,
                "status_code": code,
                "error": format!("Request failed: {code}"),
            });
            if let Some(child) = on_failure {
                value["on_failure"] = match child.as_ref() {
                    Ok(outcome) => outcome_json(outcome),
                    Err(error) => json!({ "error": describe(error) }),
                };
            }
            value
        }
        other => json!({ "status": "unknown", "outcome": format!("{other:?}") }),
    }
}

/// `{"status":"success","executed_locally":true,"status_code","response"}`.
fn executed_locally_json(response: &LocalResponse) -> Value {
    json!({
        "status": "success",
        "executed_locally": true,
        "status_code": response.status.as_u16(),
        "response": String::from_utf8_lossy(&response.body),
    })
}

/// Runs `step`, answering with `respond(result)` or the error shape.
async fn run(test: &str, step: Step, state: &AppState, respond: impl FnOnce(Value) -> Value) -> Response {
    match step.execute(&state.client).await {
        Ok(outcome) => Json(respond(outcome_json(&outcome))).into_response(),
        Err(error) => failed(test, &error),
    }
}

/// Runs `step` under idempotency key `key`, answering `{"test","idempotent_key","result"}`.
async fn run_keyed(test: &str, key: String, step: Step, state: &AppState) -> Response {
    let step = step.idempotent_key(&key);
    run(test, step, state, |result| json!({ "test": test, "idempotent_key": key, "result": result })).await
}

/// Runs `first`, then `second`; answers both outcomes, or the error shape of the first failure.
async fn run_twice(
    test: &str,
    first: Step,
    second: Step,
    state: &AppState,
) -> Result<(StepOutcome, StepOutcome), Response> {
    let first = first.execute(&state.client).await.map_err(|error| failed(test, &error))?;
    let second = second.execute(&state.client).await.map_err(|error| failed(test, &error))?;
    Ok((first, second))
}

/// `POST /test/performance/basic`: a PERFORMANCE job to `/status/200` with key
/// `performance_basic_<uuid>`. Answers `{"test":"performance_basic","idempotent_key","result"}`.
pub(crate) async fn performance_basic(State(state): State<AppState>) -> Response {
    let test = "performance_basic";
    let key = format!("performance_basic_{}", uuid());
    run_keyed(test, key, performance_get(&state, "/status/200?test=performance_basic"), &state).await
}

/// `POST /test/performance/racing`: `/delay/1` raced in `iad`, `lax`, `ord` (`result.status`
/// is `racing`). Answers `{"test":"performance_racing","idempotent_key","result"}`.
pub(crate) async fn performance_racing(State(state): State<AppState>) -> Response {
    let test = "performance_racing";
    let key = format!("performance_racing_{}", uuid());
    let step = performance_get(&state, "/delay/1?test=performance_racing")
        .regions(["iad", "lax", "ord"])
        .execution_mode(ExecutionMode::Race)
        .region_policy(RegionPolicy::Fallback);
    run_keyed(test, key, step, &state).await
}

/// `POST /test/performance/fallback-chain`: `/status/500`, on 500/502/503 falling back to
/// `/delay/2`, which after 500 ms falls back to `/status/200`; one webhook, `success`.
/// Answers `{"test":"performance_fallback_chain","idempotent_key","result"}`.
pub(crate) async fn performance_fallback_chain(State(state): State<AppState>) -> Response {
    let test = "performance_fallback_chain";
    let key = format!("fallback_chain_{}", uuid());
    let step = performance_get(&state, "/status/500?test=fallback_primary")
        .fallback(
            Step::new(state.upstream("/delay/2?test=fallback_1")).method(Method::GET),
            Trigger::on_error([500, 502, 503]),
        )
        .fallback(
            Step::new(state.upstream("/status/200?test=fallback_2")).method(Method::GET),
            Trigger::on_timeout(Duration::from_millis(500)),
        );
    run_keyed(test, key, step, &state).await
}

/// `POST /test/workflow/on-success`: `/status/200` (key `on_success_parent_<uuid>`) whose
/// success spawns `/delay/1` (key `on_success_child_<uuid>`); both deliver here.
/// Answers `{"test":"workflow_on_success","parent_key","child_key","result"}`.
pub(crate) async fn workflow_on_success(State(state): State<AppState>) -> Response {
    let test = "workflow_on_success";
    let parent_key = format!("on_success_parent_{}", uuid());
    let child_key = format!("on_success_child_{}", uuid());
    let step = performance_get(&state, "/status/200?test=on_success_parent")
        .on_success(performance_get(&state, "/delay/1?test=on_success_child").idempotent_key(&child_key))
        .idempotent_key(&parent_key);
    run(
        test,
        step,
        &state,
        |result| json!({ "test": test, "parent_key": parent_key, "child_key": child_key, "result": result }),
    )
    .await
}

/// `POST /test/idempotent/hash`: the same keyless (HASH) job twice, with a per-run query
/// so earlier runs do not match. Answers `{"test":"idempotent_hash","result1","result2",
/// "idempotent_key":<the server's key>,"expected":"Same job_id (deduped)","deduped":<bool>}`.
pub(crate) async fn idempotent_hash(State(state): State<AppState>) -> Response {
    let test = "idempotent_hash";
    let run_id = uuid();
    let step = || {
        performance_get(&state, &format!("/get?test=idempotent_hash&run={run_id}"))
            .idempotent_strategy(IdempotentStrategy::Hash)
    };
    let (first, second) = match run_twice(test, step(), step(), &state).await {
        Ok(outcomes) => outcomes,
        Err(failure) => return failure,
    };
    let deduped = matches!((first.receipt(), second.receipt()), (Some(a), Some(b)) if a.job_id == b.job_id);
    // The key the server derived (as the Go test app shows it).
    let key = first.receipt().and_then(|receipt| receipt.idempotent_key.clone());
    Json(json!({
        "test": test,
        "result1": outcome_json(&first),
        "result2": outcome_json(&second),
        "idempotent_key": key,
        "expected": "Same job_id (deduped)",
        "deduped": deduped,
    }))
    .into_response()
}

/// `POST /test/idempotent/unique`: the same job twice under two keys
/// (`idempotent_unique_1_<uuid>`, `idempotent_unique_2_<uuid>`). Answers
/// `{"test":"idempotent_unique","key1","key2","result1","result2","expected":"Different job_ids","different":<bool>}`.
pub(crate) async fn idempotent_unique(State(state): State<AppState>) -> Response {
    let test = "idempotent_unique";
    let key1 = format!("idempotent_unique_1_{}", uuid());
    let key2 = format!("idempotent_unique_2_{}", uuid());
    let step = |key: &str| performance_get(&state, "/get?test=idempotent_unique").idempotent_key(key);
    let (first, second) = match run_twice(test, step(&key1), step(&key2), &state).await {
        Ok(outcomes) => outcomes,
        Err(failure) => return failure,
    };
    let different = matches!((first.receipt(), second.receipt()), (Some(a), Some(b)) if a.job_id != b.job_id);
    Json(json!({
        "test": test,
        "key1": key1,
        "key2": key2,
        "result1": outcome_json(&first),
        "result2": outcome_json(&second),
        "expected": "Different job_ids",
        "different": different,
    }))
    .into_response()
}

/// The Python test app's legacy payment processor: it calls `/status/429` and, rate
/// limited (or unable to connect), hands a `POST /status/200` to EZThrottle instead.
/// `#[auto_forward]` submits that request and returns the receipt.
#[auto_forward(client = client)]
async fn legacy_payment_processor(
    client: &EZThrottle,
    upstream_url: &str,
    webhook_url: &str,
    order_id: &str,
    idempotent_key: &str,
) -> Result<Value, ForwardToEZThrottle> {
    let body = json!({ "amount": 1000, "currency": "usd" }).to_string();
    let forward = || {
        ForwardToEZThrottle::new(
            Step::new(format!("{upstream_url}/status/200"))
                .method(Method::POST)
                .idempotent_key(idempotent_key)
                .metadata_entry("order_id", order_id)
                .webhook(Webhook::new(webhook_url).has_quorum_vote(true)),
        )
    };
    let sent = client
        .http_client()
        .post(format!("{upstream_url}/status/429"))
        .header("Authorization", "Bearer sk_test_...")
        .header("Content-Type", "application/json")
        .body(body.clone())
        .timeout(LEGACY_TIMEOUT)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Err(forward().map_step(|step| step.metadata_entry("error", error.to_string()))),
    };
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        // The decorator catches this and forwards it.
        return Err(forward().map_step(|step| step.header("Authorization", "Bearer sk_test_...").body(body)));
    }
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Err(forward().map_step(|step| step.metadata_entry("error", error.to_string()))),
    };
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `POST /test/decorator/auto-forward`: legacy code rate limited by `/status/429` is
/// forwarded by `#[auto_forward]` as `POST /status/200` (key `decorator_forward_<uuid>`,
/// metadata `order_id`). Answers `{"test":"decorator_auto_forward","idempotent_key","result","message":"Auto-forwarded!"}`.
pub(crate) async fn decorator_auto_forward(State(state): State<AppState>) -> Response {
    let test = "decorator_auto_forward";
    let key = format!("decorator_forward_{}", uuid());
    let outcome =
        legacy_payment_processor(&state.client, &state.upstream_url, &state.webhook_url(), "order_12345", &key).await;
    let result = match outcome {
        Ok(Outcome::Forwarded(receipt)) => json!(receipt),
        Ok(Outcome::Completed(value)) => value,
        Ok(Outcome::ExecutedLocally(response)) => executed_locally_json(&response),
        Err(error) => return failed(test, &error),
    };
    Json(json!({ "test": test, "idempotent_key": key, "result": result, "message": "Auto-forwarded!" })).into_response()
}

/// `POST /test/frugal/local`: a FRUGAL `/status/200`, executed here without a job.
/// Answers `{"test":"frugal_local","result":{"status":"success","executed_locally":true,"status_code":200,"response"}}`
/// (were the upstream to fail with 429/5xx, `result` would be the forwarded job's receipt,
/// delivered here).
pub(crate) async fn frugal_local(State(state): State<AppState>) -> Response {
    let test = "frugal_local";
    let step =
        Step::new(state.upstream("/status/200?test=frugal_local")).step_type(StepType::Frugal).webhook(webhook(&state));
    run(test, step, &state, |result| json!({ "test": test, "result": result })).await
}
