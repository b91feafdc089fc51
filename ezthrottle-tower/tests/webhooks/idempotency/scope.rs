//! Keys belong to their caller; the query is part of the request; sessions are never
//! replayed; a delivery is one job's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::routing::post;
use ezthrottle_tower::REPLAY_HEADER;
use ezthrottle_tower::idempotency::IdempotencyLayer;
use reqwest::StatusCode;

use super::{charge_router, deliver};
use crate::webhooks::support::{http, payload_json, serve};

const KEY: &str = "transfer-0123456789abcdef";

/// `/transfer` answers who asked (its `Authorization` or `x-user`), the query and its run,
/// and sets a session cookie.
fn transfer_router(layer: IdempotencyLayer) -> (Router, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let router = Router::new()
        .route(
            "/transfer",
            post(move |headers: HeaderMap, RawQuery(query): RawQuery| {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let caller = ["authorization", "x-user"]
                        .iter()
                        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
                        .unwrap_or("nobody")
                        .to_owned();
                    let cookie = [("set-cookie", format!("session={caller}-{run}"))];
                    (cookie, format!("{caller} {} run {run}", query.unwrap_or_default()))
                }
            }),
        )
        .route_layer(layer);
    (router, runs)
}

async fn transfer(url: &str, credential: Option<(&str, &str)>) -> (StatusCode, bool, Option<String>, String) {
    let mut request = http().post(url).header("Idempotency-Key", KEY);
    if let Some((name, value)) = credential {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("send");
    let replayed = response.headers().get(REPLAY_HEADER).is_some();
    let cookie = response.headers().get("set-cookie").map(|v| v.to_str().expect("ascii").to_owned());
    (response.status(), replayed, cookie, response.text().await.expect("text"))
}

#[tokio::test]
async fn callers_with_different_credentials_never_share_a_key() {
    let (router, runs) = transfer_router(IdempotencyLayer::memory());
    let url = format!("http://{}/transfer?amount=5", serve(router).await);
    let alice = Some(("authorization", "Bearer alice-token"));
    let mallory = Some(("authorization", "Bearer mallory-token"));
    // Mallory takes the key first: it is his own, not Alice's.
    assert_eq!(transfer(&url, mallory).await.3, "Bearer mallory-token amount=5 run 1");
    let first = transfer(&url, alice).await;
    assert_eq!((first.0, first.1), (StatusCode::OK, false), "Alice's request runs: not pre-claimed");
    assert_eq!(first.3, "Bearer alice-token amount=5 run 2");
    assert_eq!(first.2.as_deref(), Some("session=Bearer alice-token-2"), "the first answer keeps its cookie");
    // Each one's repeat replays their own answer, without its cookie.
    let (status, replayed, cookie, text) = transfer(&url, alice).await;
    assert_eq!(
        (status, replayed, cookie, text.as_str()),
        (StatusCode::OK, true, None, "Bearer alice-token amount=5 run 2")
    );
    assert_eq!(transfer(&url, mallory).await.3, "Bearer mallory-token amount=5 run 1");
    // No credentials: the anonymous scope, not anyone's.
    assert_eq!(transfer(&url, None).await.3, "nobody amount=5 run 3");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_custom_scope_separates_callers() {
    let layer = IdempotencyLayer::memory()
        .scope(|parts| parts.headers.get("x-user").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned());
    let (router, runs) = transfer_router(layer);
    let url = format!("http://{}/transfer", serve(router).await);
    assert_eq!(transfer(&url, Some(("x-user", "ann"))).await.3, "ann  run 1");
    assert_eq!(transfer(&url, Some(("x-user", "ben"))).await.3, "ben  run 2");
    assert!(transfer(&url, Some(("x-user", "ann"))).await.1, "ann's repeat replays");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_query_is_part_of_the_fingerprint() {
    let (router, runs) = transfer_router(IdempotencyLayer::memory());
    let addr = serve(router).await;
    let small = transfer(&format!("http://{addr}/transfer?amount=1"), None).await;
    assert_eq!((small.0, small.3.as_str()), (StatusCode::OK, "nobody amount=1 run 1"));
    let large = transfer(&format!("http://{addr}/transfer?amount=1000"), None).await;
    assert_eq!(large.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", large.3);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Two jobs may carry one `idempotent_key` (HASH keys repeat): each job's delivery runs.
#[tokio::test]
async fn a_later_job_with_the_same_idempotent_key_reaches_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    let addr = serve(charge_router(IdempotencyLayer::memory(), Arc::clone(&runs), 0, None)).await;
    let url = format!("http://{addr}/charge");
    let first = deliver(&url, &payload_json("job_first", Some("order-shared"))).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let later = deliver(&url, &payload_json("job_later", Some("order-shared"))).await;
    assert_eq!(later.status(), StatusCode::CREATED);
    assert!(later.headers().get(REPLAY_HEADER).is_none());
    assert_eq!(later.text().await.expect("text"), "charged once (run 2)");
    // A repeat of a delivery (same job) still replays.
    let repeat = deliver(&url, &payload_json("job_later", Some("order-shared"))).await;
    assert!(repeat.headers().get(REPLAY_HEADER).is_some());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
