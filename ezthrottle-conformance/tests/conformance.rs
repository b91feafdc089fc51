//! Drives every endpoint of the conformance app against an in-process `ezthrottle-local`
//! engine and the built-in upstream, asserting the shapes the official SDKs' hurl suites
//! assert, then awaiting each job's webhook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ezthrottle::EZThrottle;
use ezthrottle::protocol::JobSnapshot;
use ezthrottle::webhook::sign;
use ezthrottle_conformance::{Config, RunningApp, start};
use ezthrottle_local::RunningEngine;
use ezthrottle_test_support::engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "conformance-secret-0123";
/// Every wait gives up after this long.
const DEADLINE: Duration = Duration::from_secs(20);

struct Harness {
    engine: RunningEngine,
    app: RunningApp,
    http: reqwest::Client,
    /// Reads jobs back from the engine, as the app's client would.
    client: EZThrottle,
}

/// An engine, and the app submitting to it and verifying deliveries with its secret.
async fn harness() -> Harness {
    let (engine, client) = engine::start_open(SECRET).await;
    let config = Config::new().port(0).ezthrottle_url(engine.base_url()).webhook_secret(SECRET);
    let app = start(config).await.expect("the app starts");
    assert!(app.verifies_webhooks());
    Harness { engine, app, http: reqwest::Client::new(), client }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = tokio::time::timeout(DEADLINE, request.send()).await.expect("answered in time").expect("sent");
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base_url())
    }

    async fn post(&self, path: &str) -> (StatusCode, Value) {
        send(self.http.post(self.url(path))).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.http.get(self.url(path))).await
    }

    /// Runs a scenario, asserting 200 and its `test` name.
    async fn scenario(&self, path: &str, test: &str) -> Value {
        let (status, body) = self.post(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["test"], test, "{body}");
        body
    }

    /// Runs a scenario submitting two jobs and judging them: asserts its verdict (the field
    /// `verdict` is `true`) and the outcome it says it `expected`.
    async fn judged_pair(&self, path: &str, test: &str, verdict: &str, expected: &str) -> Value {
        let body = self.scenario(path, test).await;
        assert_eq!(body[verdict], true, "{body}");
        assert_eq!(body["expected"], expected, "{body}");
        body
    }

    /// Runs a scenario submitting one job: checks its key's prefix and the submission's
    /// status, awaits the job's webhook and checks it is a success; answers the scenario's
    /// answer, the job id and the webhook.
    async fn one_job(&self, path: &str, test: &str, key_prefix: &str, status: &str) -> (Value, String, Value) {
        let body = self.scenario(path, test).await;
        assert!(starts_with(&body["idempotent_key"], key_prefix), "{body}");
        assert_eq!(body["result"]["status"], status, "{body}");
        let id = job_id(&body["result"]);
        let webhook = self.webhook(&id).await;
        assert_success(&webhook, body["idempotent_key"].as_str().unwrap());
        (body, id, webhook)
    }

    /// Awaits the webhook of `job_id`, then reads it back through `GET /webhooks/{job_id}`.
    async fn webhook(&self, job_id: &str) -> Value {
        assert!(
            self.app.deliveries().wait_for(job_id, DEADLINE).await.is_some(),
            "no webhook for {job_id} within {DEADLINE:?}; have {:?}",
            self.app.deliveries().all().keys().collect::<Vec<_>>()
        );
        let (status, body) = self.get(&format!("/webhooks/{job_id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["found"], true);
        assert_eq!(body["job_id"], job_id);
        assert_eq!(body["webhook"]["data"]["job_id"], job_id, "{body}");
        assert_eq!(body["webhook"]["verified"], true, "{body}");
        assert!(body["webhook"]["received_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
        body["webhook"].clone()
    }

    /// The engine's view of a job.
    async fn engine_job(&self, job_id: &str) -> JobSnapshot {
        let job = tokio::time::timeout(DEADLINE, self.client.get_job(job_id)).await.expect("answered in time");
        job.unwrap_or_else(|error| panic!("job {job_id}: {error}"))
    }

    async fn shutdown(self) {
        self.app.shutdown().await;
        self.engine.shutdown().await;
    }
}

fn job_id(result: &Value) -> String {
    result["job_id"].as_str().unwrap_or_else(|| panic!("no job_id in {result}")).to_owned()
}

fn starts_with(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|s| s.starts_with(prefix) && s.len() > prefix.len())
}

fn assert_success(webhook: &Value, key: &str) {
    let data = &webhook["data"];
    assert_eq!(data["status"], "success", "{webhook}");
    assert_eq!(data["idempotent_key"], key, "{webhook}");
    assert_eq!(data["response"]["status_code"], 200, "{webhook}");
}

#[tokio::test]
async fn performance_basic_delivers_a_signed_success() {
    let h = harness().await;
    let (_, _, webhook) =
        h.one_job("/test/performance/basic", "performance_basic", "performance_basic_", "queued").await;
    assert_eq!(webhook["deliveries"], 1);
    h.shutdown().await;
}

#[tokio::test]
async fn performance_racing_races_three_regions() {
    let h = harness().await;
    let (_, id, _) = h.one_job("/test/performance/racing", "performance_racing", "performance_racing_", "racing").await;
    let job = h.engine_job(&id).await;
    assert_eq!(job.regions, ["iad", "lax", "ord"], "{job:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn fallback_chain_ends_in_success_through_the_last_fallback() {
    let h = harness().await;
    let (_, id, _) =
        h.one_job("/test/performance/fallback-chain", "performance_fallback_chain", "fallback_chain_", "queued").await;

    // The primary answered 500 (on_error fired), the first fallback was too slow
    // (on_timeout fired), the second answered 200.
    let job = h.engine_job(&id).await;
    let attempt = |marker: &str| {
        let attempt = job.attempts.iter().find(|a| a.url.contains(marker));
        attempt.unwrap_or_else(|| panic!("no attempt at {marker}: {job:?}")).status_code
    };
    assert_eq!(attempt("test=fallback_primary"), Some(500), "{job:?}");
    assert_eq!(attempt("test=fallback_1"), None, "cancelled by the timeout: {job:?}");
    assert_eq!(attempt("test=fallback_2"), Some(200), "{job:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn on_success_spawns_a_child_that_delivers_too() {
    let h = harness().await;
    let body = h.scenario("/test/workflow/on-success", "workflow_on_success").await;
    assert!(starts_with(&body["parent_key"], "on_success_parent_"), "{body}");
    assert!(starts_with(&body["child_key"], "on_success_child_"), "{body}");
    assert_eq!(body["result"]["status"], "queued", "{body}");
    let parent_id = job_id(&body["result"]);

    let parent = h.webhook(&parent_id).await;
    assert_success(&parent, body["parent_key"].as_str().unwrap());

    let child_key = body["child_key"].as_str().unwrap();
    let child_id = h
        .app
        .deliveries()
        .wait_until(DEADLINE, |jobs| {
            jobs.iter().find(|(_, d)| d.data["idempotent_key"] == child_key).map(|(id, _)| id.clone())
        })
        .await
        .expect("the child's webhook arrives");
    assert_ne!(child_id, parent_id);
    let child = h.webhook(&child_id).await;
    assert_success(&child, child_key);

    let (status, list) = h.get("/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list["count"].as_u64().is_some_and(|n| n >= 2), "{list}");
    assert!(list["webhooks"][&parent_id].is_object() && list["webhooks"][&child_id].is_object(), "{list}");
    h.shutdown().await;
}

#[tokio::test]
async fn idempotent_hash_deduplicates_identical_requests() {
    let h = harness().await;
    let deduped = || h.judged_pair("/test/idempotent/hash", "idempotent_hash", "deduped", "Same job_id (deduped)");
    let body = deduped().await;
    let (first, second) = (&body["result1"], &body["result2"]);
    assert_eq!(first["job_id"], second["job_id"], "{body}");
    assert!(first["idempotent_key"].is_string(), "the server derived a key: {body}");
    assert_eq!(first["idempotent_key"], second["idempotent_key"], "{body}");
    assert!(first.get("duplicate").is_none_or(|d| d == false), "{body}");
    assert_eq!(second["duplicate"], true, "{body}");

    assert_eq!(body["idempotent_key"], first["idempotent_key"], "{body}");
    let webhook = h.webhook(&job_id(first)).await;
    assert_eq!(webhook["data"]["status"], "success");

    // The Go suite looks deliveries up by idempotency key (server keys may hold `:` or `/`).
    let key = first["idempotent_key"].as_str().unwrap();
    let (status, by_key) = h.get(&format!("/webhooks/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_eq!(by_key["job_id"], first["job_id"]);
    assert_eq!(by_key["idempotent_key"], key);
    assert_eq!(by_key["webhook"]["data"]["status"], "success");

    // Another run uses another URL: a new job.
    let again = deduped().await;
    assert_ne!(again["result1"]["job_id"], first["job_id"], "{again}");
    h.shutdown().await;
}

#[tokio::test]
async fn idempotent_unique_keys_make_two_jobs() {
    let h = harness().await;
    let body = h.judged_pair("/test/idempotent/unique", "idempotent_unique", "different", "Different job_ids").await;
    assert!(starts_with(&body["key1"], "idempotent_unique_1_"), "{body}");
    assert!(starts_with(&body["key2"], "idempotent_unique_2_"), "{body}");
    assert_ne!(body["result1"]["job_id"], body["result2"]["job_id"]);

    for (result, key) in [("result1", "key1"), ("result2", "key2")] {
        let webhook = h.webhook(&job_id(&body[result])).await;
        assert_eq!(webhook["data"]["idempotent_key"], body[key], "{webhook}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn auto_forward_hands_the_rate_limited_call_to_ezthrottle() {
    let h = harness().await;
    let (body, id, webhook) =
        h.one_job("/test/decorator/auto-forward", "decorator_auto_forward", "decorator_forward_", "queued").await;
    assert_eq!(body["message"], "Auto-forwarded!");
    assert_eq!(webhook["data"]["metadata"]["order_id"], "order_12345", "{webhook}");

    let job = h.engine_job(&id).await;
    assert_eq!(job.method, "POST", "{job:?}");
    assert!(job.url.ends_with("/status/200"), "{job:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn frugal_local_runs_here_without_a_job() {
    let h = harness().await;
    let body = h.scenario("/test/frugal/local", "frugal_local").await;
    let result = &body["result"];
    assert_eq!(result["status"], "success", "{body}");
    assert_eq!(result["executed_locally"], true, "{body}");
    assert_eq!(result["status_code"], 200, "{body}");
    assert!(result.get("job_id").is_none(), "nothing was submitted: {body}");
    assert!(h.app.deliveries().is_empty());
    h.shutdown().await;
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

#[tokio::test]
async fn the_webhook_store_verifies_lists_and_resets() {
    let h = harness().await;
    let hook = h.url("/webhook");

    // Unknown job: 404 with found=false.
    let (status, body) = h.get("/webhooks/job_unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"found": false, "job_id": "job_unknown"}));

    // Unsigned and badly signed deliveries are refused, and nothing is stored.
    let payload = br#"{"job_id":"job_a/1","status":"success","idempotent_key":"k:1"}"#;
    let (status, body) = send(h.http.post(&hook).body(payload.to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], "rejected");
    let forged = sign("not-the-secret-0123", now(), payload);
    let (status, body) = send(h.http.post(&hook).header("X-EZThrottle-Signature", forged).body(payload.to_vec())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let stale = sign(SECRET, now() - 3600, payload);
    let (status, _) = send(h.http.post(&hook).header("X-EZThrottle-Signature", stale).body(payload.to_vec())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.app.deliveries().is_empty());

    // A valid one is stored, under a job id that contains a slash; a repeat is counted.
    for _ in 0..2 {
        let signed = sign(SECRET, now(), payload);
        let (status, body) =
            send(h.http.post(&hook).header("X-EZThrottle-Signature", signed).body(payload.to_vec())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"status": "received", "job_id": "job_a/1"}));
    }
    let (status, body) = h.get("/webhooks/job_a/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["webhook"]["data"]["idempotent_key"], "k:1");
    assert_eq!(body["webhook"]["deliveries"], 2);

    // Signed, but without a job id.
    let no_id = br#"{"status":"success"}"#;
    let signed = sign(SECRET, now(), no_id);
    let (status, _) = send(h.http.post(&hook).header("X-EZThrottle-Signature", signed).body(no_id.to_vec())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A real job's delivery joins it; the list counts jobs; reset empties it.
    let run = h.scenario("/test/performance/basic", "performance_basic").await;
    let id = job_id(&run["result"]);
    h.webhook(&id).await;
    let (_, list) = h.get("/webhooks").await;
    assert_eq!(list["count"], 2, "{list}");
    assert!(list["webhooks"]["job_a/1"].is_object() && list["webhooks"][&id].is_object(), "{list}");
    let (status, body) = h.post("/webhooks/reset").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "cleared"}));
    let (_, list) = h.get("/webhooks").await;
    assert_eq!(list, json!({"count": 0, "webhooks": {}}));
    let (status, _) = h.get(&format!("/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    h.shutdown().await;
}

#[tokio::test]
async fn without_a_secret_deliveries_are_stored_unverified() {
    let (engine, _) = engine::start_open(SECRET).await;
    let app = start(Config::new().port(0).ezthrottle_url(engine.base_url())).await.expect("the app starts");
    assert!(!app.verifies_webhooks());
    let http = reqwest::Client::new();
    let (status, body) = send(
        http.post(format!("{}/webhook", app.base_url()))
            .body(r#"{"job_id":"job_plain","status":"failed","metadata":{"a":1}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = app.deliveries().get("job_plain").expect("stored");
    assert!(!stored.verified);
    assert_eq!(stored.data["metadata"]["a"], 1);
    let (status, _) = send(http.post(format!("{}/webhook", app.base_url())).body("not json")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    app.shutdown().await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_failed_submission_answers_502_with_the_test_name() {
    // Nothing listens on the engine URL.
    let dead = ezthrottle_test_support::refused_url().await;
    let app = start(Config::new().port(0).ezthrottle_url(dead)).await.expect("the app starts");
    let http = reqwest::Client::new();
    for (path, test) in [
        ("/test/performance/basic", "performance_basic"),
        ("/test/idempotent/hash", "idempotent_hash"),
        ("/test/decorator/auto-forward", "decorator_auto_forward"),
    ] {
        let (status, body) = send(http.post(format!("{}{path}", app.base_url()))).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {body}");
        assert_eq!(body["test"], test);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("unreachable")), "{body}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn info_health_and_the_built_in_upstream() {
    let h = harness().await;
    let (status, body) = h.get("/health").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "healthy"})));
    let (_, info) = h.get("/").await;
    assert_eq!(info["config"]["mode"], "direct");
    assert_eq!(info["config"]["webhook_url"], h.app.webhook_url());
    assert_eq!(info["endpoints"]["tests"].as_array().map(Vec::len), Some(8));
    assert_eq!(h.app.webhook_url(), format!("{}/webhook", h.app.base_url()));

    let upstream = h.app.upstream_url().to_owned();
    let (status, body) = send(h.http.get(format!("{upstream}/get?a=1&a=2&b=x"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["args"], json!({"a": ["1", "2"], "b": "x"}));
    assert_eq!(body["origin"], "127.0.0.1");
    let (status, body) = send(h.http.post(format!("{upstream}/post")).body(r#"{"n":1}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["json"], json!({"n": 1}));
    let (status, body) = send(h.http.put(format!("{upstream}/anything/x"))).await;
    assert_eq!((status, &body["method"]), (StatusCode::OK, &json!("PUT")));
    let (status, body) = send(h.http.get(format!("{upstream}/delay/0.05"))).await;
    assert_eq!((status, &body["method"]), (StatusCode::OK, &json!("GET")));
    let teapot = h.http.get(format!("{upstream}/status/418")).send().await.unwrap();
    assert_eq!(teapot.status(), StatusCode::IM_A_TEAPOT);
    let bad = h.http.get(format!("{upstream}/status/abc")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    h.shutdown().await;
}
