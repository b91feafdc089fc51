//! What the layer holds is bounded: an answer's buffered part (the rest streams), safe
//! methods not keyed, the memory store by bytes with finished entries evicted.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body as AxumBody;
use axum::http::StatusCode as AxumStatus;
use axum::routing::{any, post};
use bytes::Bytes;
use ezthrottle_test_support::{EndlessChunks, Gate};
use ezthrottle_tower::REPLAY_HEADER;
use ezthrottle_tower::idempotency::{IdempotencyLayer, MemoryIdempotencyStore};
use http_body::Frame;
use reqwest::StatusCode;
use tokio::sync::{Notify, Semaphore};

use crate::webhooks::support::{http, serve};

/// A body that never ends ([`EndlessChunks`]): 128 chunks (twice the layer's limit),
/// then it waits for the client to have the answer's head.
struct Endless(EndlessChunks);

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_chunk(cx).map(|chunk| Some(Ok(Frame::data(chunk))))
    }
}

/// A keyed POST to an endless streaming answer: it is answered and streams (at most
/// `max_stored_body` was buffered), the key is released, nothing is kept.
#[tokio::test]
async fn an_endless_answer_streams_through_and_is_not_buffered() {
    let runs = Arc::new(AtomicUsize::new(0));
    let flowing = Arc::new(Gate::default());
    let store = MemoryIdempotencyStore::new();
    let (counter, gate) = (Arc::clone(&runs), Arc::clone(&flowing));
    let router = Router::new()
        .route(
            "/events",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let flowing = Arc::clone(&gate);
                async move { AxumBody::new(Endless(EndlessChunks::new(128, flowing))) }
            }),
        )
        .route_layer(IdempotencyLayer::new(store.clone()).max_stored_body(64 * 1024));
    let url = format!("http://{}/events", serve(router).await);
    for run in 1..=2 {
        let request = http().post(&url).header("Idempotency-Key", "stream-0123456789abcdef").send();
        let mut response = tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .expect("the streaming answer starts (it is not buffered to its end)")
            .expect("send");
        flowing.open();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(REPLAY_HEADER).is_none());
        let mut read = Vec::new();
        for _ in 0..10_000 {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("a chunk in time");
            read.extend_from_slice(&chunk.expect("chunk").expect("not the end"));
            if read.len() >= 1024 * 1024 {
                break;
            }
        }
        assert!(read.len() >= 1024 * 1024, "read {} bytes", read.len());
        assert!(read.iter().all(|byte| *byte == b'x'), "the buffered start, then the rest, in order");
        drop(response);
        // Too large to keep: the key is released, so the repeat runs again.
        assert_eq!(runs.load(Ordering::SeqCst), run);
    }
    assert!(store.is_empty(), "nothing of an unstorable answer is kept");
}

#[tokio::test]
async fn safe_methods_are_not_keyed_unless_asked() {
    let runs = Arc::new(AtomicUsize::new(0));
    let router = |layer: IdempotencyLayer| {
        let counter = Arc::clone(&runs);
        Router::new()
            .route(
                "/",
                any(move || {
                    let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    async move { format!("run {run}") }
                }),
            )
            .route_layer(layer)
    };
    let plain = format!("http://{}/", serve(router(IdempotencyLayer::memory())).await);
    let keyed = format!("http://{}/", serve(router(IdempotencyLayer::memory().key_safe_methods(true))).await);
    let get = |url: &str, key: &'static str| http().get(url).header("Idempotency-Key", key).send();
    // A GET's key is ignored: each runs, and even an invalid key is not a 400.
    assert_eq!(get(&plain, "safe-0123456789abcdef").await.expect("send").text().await.expect("text"), "run 1");
    assert_eq!(get(&plain, "safe-0123456789abcdef").await.expect("send").text().await.expect("text"), "run 2");
    assert_eq!(get(&plain, "short").await.expect("send").status(), StatusCode::OK);
    // Opted in, a repeated GET replays.
    assert_eq!(get(&keyed, "safe-0123456789abcdef").await.expect("send").text().await.expect("text"), "run 4");
    let repeat = get(&keyed, "safe-0123456789abcdef").await.expect("send");
    assert!(repeat.headers().get(REPLAY_HEADER).is_some());
    assert_eq!(repeat.text().await.expect("text"), "run 4");
    assert_eq!(get(&keyed, "short").await.expect("send").status(), StatusCode::BAD_REQUEST);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

/// A budget where each of the 64 shards holds one running request (about 200 bytes
/// counted) or one small finished answer, never two running requests.
const TIGHT: usize = 64 * 350;

/// Junk keys (answered 404) fill a tiny store; new keys still run, evicting them; when
/// every shard a key lands on is full of running requests, the answer is 503 with
/// `Retry-After` (fail closed), and room comes back as they finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_budget_evicts_finished_answers_and_fails_closed_when_full_of_running_ones() {
    let store = MemoryIdempotencyStore::new().max_bytes(TIGHT);
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(Notify::new());
    let (open, begun) = (Arc::clone(&gate), Arc::clone(&started));
    let router = Router::new()
        .route("/junk", post(|| async { (AxumStatus::NOT_FOUND, "junk") }))
        .route(
            "/slow",
            post(move || {
                let (open, begun) = (Arc::clone(&open), Arc::clone(&begun));
                async move {
                    begun.notify_one();
                    let _permit = open.acquire().await.expect("gate");
                    (AxumStatus::CREATED, "done")
                }
            }),
        )
        .route_layer(IdempotencyLayer::new(store.clone()));
    let addr = serve(router).await;
    let send = |path: &'static str, key: String| {
        http().post(format!("http://{addr}{path}")).header("Idempotency-Key", key).send()
    };
    for i in 0..300 {
        assert_eq!(send("/junk", format!("junk-key-{i:012}")).await.expect("send").status(), StatusCode::NOT_FOUND);
    }
    assert!(store.bytes() <= TIGHT, "{} bytes kept over a budget of {TIGHT}", store.bytes());
    assert!(store.len() <= 64, "{} entries", store.len());

    // Running requests take the shards until a key lands on a full one.
    let mut running = tokio::task::JoinSet::new();
    let mut refused = None;
    for i in 0..200 {
        let mut answer = tokio::spawn(send("/slow", format!("slow-key-{i:012}")));
        let done = tokio::select! {
            () = started.notified() => None,
            done = &mut answer => Some(done),
        };
        match done {
            None => drop(running.spawn(answer)),
            Some(done) => {
                refused = Some(done.expect("task").expect("send"));
                break;
            }
        }
    }
    let refused = refused.expect("a shard full of running requests within 200 keys");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));

    gate.add_permits(1000);
    while let Some(answer) = running.join_next().await {
        assert_eq!(answer.expect("task").expect("task").expect("send").status(), StatusCode::CREATED);
    }
    for i in 0..100 {
        let answer = send("/junk", format!("after-key-{i:012}")).await.expect("send");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "finished answers make room for new keys");
    }
}

/// Junk answers (404) are kept for the shorter `non_success_ttl`, 2xx ones for the `ttl`.
#[tokio::test(start_paused = true)]
async fn answers_other_than_2xx_expire_sooner() {
    use tower::ServiceExt;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let router = Router::new()
        .route(
            "/{status}",
            post(move |axum::extract::Path(status): axum::extract::Path<u16>| {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { (AxumStatus::from_u16(status).expect("status"), format!("run {run}")) }
            }),
        )
        .layer(IdempotencyLayer::memory().ttl(Duration::from_secs(3600)).non_success_ttl(Duration::from_secs(60)));
    let call = |path: &'static str| {
        let request = axum::http::Request::post(path)
            .header("Idempotency-Key", format!("ttl-key-{path}-0123456789"))
            .body(AxumBody::empty())
            .expect("request");
        router.clone().oneshot(request)
    };
    let replayed = |response: &axum::response::Response| response.headers().contains_key(REPLAY_HEADER);
    assert!(!replayed(&call("/404").await.expect("answer")));
    assert!(!replayed(&call("/201").await.expect("answer")));
    assert!(replayed(&call("/404").await.expect("answer")));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(!replayed(&call("/404").await.expect("answer")), "the 404 expired after non_success_ttl");
    assert!(replayed(&call("/201").await.expect("answer")), "the 201 is kept for the ttl");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
