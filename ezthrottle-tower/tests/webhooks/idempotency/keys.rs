//! Inspecting and clearing keys through `idempotency_key_route`, in the caller's scope, in
//! a real axum server over the memory and Redis stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use ezthrottle_tower::axum::idempotency_key_route;
use ezthrottle_tower::idempotency::{
    IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore,
};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{charge_router, deliver};
use crate::webhooks::support::{RedisServer, http, payload_json, serve};

const KEY: &str = "payment-key-0123456789";
const ALICE: &str = "Bearer alice-token";
const MALLORY: &str = "Bearer mallory-token";

/// `/webhook` behind `layer` (waiting for a permit of the gate once it has `runs`), and
/// the key route at `/webhook/idempotency/{key}`.
pub(super) fn app<St: IdempotencyStore>(layer: IdempotencyLayer<St>) -> (Router, Arc<AtomicUsize>, Arc<Semaphore>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let (counter, open) = (Arc::clone(&runs), Arc::clone(&gate));
    let handler = move || {
        let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let open = Arc::clone(&open);
        async move {
            let _permit = open.acquire().await.expect("gate");
            (AxumStatus::CREATED, [("content-type", "text/plain")], format!("processed run {run}"))
        }
    };
    let router = Router::new()
        .route("/webhook", post(handler).route_layer(layer.clone()))
        .route("/webhook/idempotency/{key}", idempotency_key_route(&layer));
    (router, runs, gate)
}

async fn send(request: reqwest::RequestBuilder, caller: &str) -> (StatusCode, Value) {
    let request = if caller.is_empty() { request } else { request.header("authorization", caller) };
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or(Value::Null))
}

/// The whole story on one store: inspect, scoping, clear, in flight.
async fn inspect_and_clear<St: IdempotencyStore>(layer: IdempotencyLayer<St>) {
    let (router, runs, gate) = app(layer);
    let addr = serve(router).await;
    let http = http();
    let post = || http.post(format!("http://{addr}/webhook")).header("x-idempotency-key", KEY).body("{}");
    let key_url = format!("http://{addr}/webhook/idempotency/{KEY}");

    assert_eq!(send(http.get(&key_url), ALICE).await.0, StatusCode::NOT_FOUND, "unknown before");
    assert_eq!(send(post(), ALICE).await.0, StatusCode::CREATED);
    let (status, found) = send(http.get(&key_url), ALICE).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["state"], "completed");
    assert_eq!(found["status"], 201);
    assert_eq!(found["body"], "processed run 1");
    assert!(found["headers"].as_array().expect("headers").iter().any(|h| h[0] == "content-type"), "{found}");
    assert_eq!(found["fingerprint"].as_str().map(str::len), Some(64));

    // Another caller sees nothing and clears nothing: the key is Alice's.
    assert_eq!(send(http.get(&key_url), MALLORY).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(http.delete(&key_url), MALLORY).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(http.get(&key_url), ALICE).await.1["state"], "completed");

    // Cleared: gone, and the next request with the key runs again.
    let (status, cleared) = send(http.delete(&key_url), ALICE).await;
    assert_eq!((status, cleared["state"].as_str()), (StatusCode::OK, Some("cleared")));
    assert_eq!(send(http.get(&key_url), ALICE).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(http.delete(&key_url), ALICE).await.0, StatusCode::NOT_FOUND);

    // While it runs: in flight, and not cleared.
    let permits = gate.forget_permits(Semaphore::MAX_PERMITS);
    assert_eq!(permits, Semaphore::MAX_PERMITS);
    let running = tokio::spawn(send(post(), ALICE));
    // The handler runs only once the key is held.
    ezthrottle_test_support::eventually("the second run", || runs.load(Ordering::SeqCst) == 2).await;
    assert_eq!(send(http.get(&key_url), ALICE).await.1["state"], "in_flight");
    assert_eq!(send(http.delete(&key_url), ALICE).await.0, StatusCode::CONFLICT);
    gate.add_permits(1);
    assert_eq!(running.await.expect("task").0, StatusCode::CREATED);
    assert_eq!(send(http.get(&key_url), ALICE).await.1["body"], "processed run 2");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_callers_key_is_inspected_and_cleared_in_memory() {
    inspect_and_clear(IdempotencyLayer::new(MemoryIdempotencyStore::new())).await;
}

#[tokio::test]
async fn a_callers_key_is_inspected_and_cleared_in_redis() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let client = redis::Client::open(redis.url.as_str()).expect("url");
    let store = RedisIdempotencyStore::with_options(client, "ezthrottle:idem:", std::time::Duration::from_secs(5));
    inspect_and_clear(IdempotencyLayer::new(store)).await;
}

/// A delivery's key is its job id, in the scope of the (credential-less) delivery.
#[tokio::test]
async fn a_deliverys_job_id_is_its_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = IdempotencyLayer::memory();
    let router =
        charge_router(layer.clone(), Arc::clone(&runs), 0, None).route("/keys/{key}", idempotency_key_route(&layer));
    let addr = serve(router).await;
    assert_eq!(deliver(&format!("http://{addr}/charge"), &payload_json("job_keys", None)).await.status(), 201);
    let (status, found) = send(http().get(format!("http://{addr}/keys/job_keys")), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((found["state"].as_str(), found["body"].as_str()), (Some("completed"), Some("charged once (run 1)")));
}
