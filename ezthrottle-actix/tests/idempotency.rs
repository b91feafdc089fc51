//! `ActixIdempotency` under hostile input: endless answers stream through unbuffered, safe
//! methods are not keyed, keys belong to their caller, the query counts, sessions are
//! never replayed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use ezthrottle_actix::ActixIdempotency;
use ezthrottle_test_support::{EndlessChunks, Gate};
use ezthrottle_tower::REPLAY_HEADER;
use ezthrottle_tower::idempotency::IdempotencyLayer;

const KEY: &str = "order-0001-abcdefgh";

/// An answer that never ends ([`EndlessChunks`]): 128 chunks, then it waits for the
/// test to have the answer's head (twice the layer's limit).
struct Endless(EndlessChunks);

impl MessageBody for Endless {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.0.poll_chunk(cx).map(|chunk| Some(Ok(chunk)))
    }
}

#[actix_web::test]
async fn an_endless_answer_streams_through_and_is_not_buffered() {
    let runs = Arc::new(AtomicUsize::new(0));
    let flowing = Arc::new(Gate::default());
    let (counter, gate) = (Arc::clone(&runs), Arc::clone(&flowing));
    let layer = IdempotencyLayer::memory().max_stored_body(64 * 1024);
    let app = test::init_service(App::new().wrap(ActixIdempotency::new(layer)).route(
        "/events",
        web::post().to(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let flowing = Arc::clone(&gate);
            async move { HttpResponse::Ok().body(Endless(EndlessChunks::new(128, flowing))) }
        }),
    ))
    .await;
    for run in 1..=2 {
        let request = test::TestRequest::post().uri("/events").insert_header(("Idempotency-Key", KEY));
        let answer = test::call_service(&app, request.to_request());
        let response = tokio::time::timeout(std::time::Duration::from_secs(10), answer)
            .await
            .expect("the streaming answer starts (it is not buffered to its end)");
        flowing.open();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(REPLAY_HEADER).is_none());
        let mut body = Box::pin(response.into_body());
        let mut read = 0usize;
        for _ in 0..10_000 {
            let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
            let chunk = chunk.expect("not the end").expect("chunk");
            assert!(chunk.iter().all(|byte| *byte == b'x'));
            read += chunk.len();
            if read >= 1024 * 1024 {
                break;
            }
        }
        assert!(read >= 1024 * 1024, "read {read} bytes");
        drop(body);
        assert_eq!(runs.load(Ordering::SeqCst), run, "too large to keep: the key was released");
    }
}

/// `/transfer` answers its caller, query and run, and sets a session cookie.
fn transfer(runs: Arc<AtomicUsize>) -> actix_web::Route {
    web::route().to(move |request: HttpRequest| {
        let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
        let caller =
            request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("nobody").to_owned();
        async move {
            HttpResponse::Ok()
                .insert_header(("set-cookie", format!("session={run}")))
                .body(format!("{caller} {} run {run}", request.query_string()))
        }
    })
}

#[actix_web::test]
async fn safe_methods_are_not_keyed_and_keys_belong_to_their_caller() {
    let runs = Arc::new(AtomicUsize::new(0));
    let app =
        test::init_service(App::new().wrap(ActixIdempotency::memory()).route("/transfer", transfer(Arc::clone(&runs))))
            .await;
    let call = |request: test::TestRequest| {
        let app = &app;
        async move {
            let response = test::call_service(app, request.insert_header(("Idempotency-Key", KEY)).to_request()).await;
            let status = response.status();
            let replayed = response.headers().contains_key(REPLAY_HEADER);
            let cookie = response.headers().contains_key("set-cookie");
            (status, replayed, cookie, String::from_utf8(test::read_body(response).await.to_vec()).expect("utf-8"))
        }
    };
    // GET: the key is ignored (each runs, an invalid one is no 400).
    assert_eq!(call(test::TestRequest::get().uri("/transfer")).await.3, "nobody  run 1");
    assert_eq!(call(test::TestRequest::get().uri("/transfer")).await.3, "nobody  run 2");
    let post = |who: &'static str, query: &'static str| {
        test::TestRequest::post().uri(&format!("/transfer?{query}")).insert_header(("authorization", who))
    };
    // Mallory takes the key first; Alice's request still runs, and each replays their own.
    assert_eq!(call(post("mallory", "amount=1")).await.3, "mallory amount=1 run 3");
    assert_eq!(call(post("alice", "amount=1")).await, (StatusCode::OK, false, true, "alice amount=1 run 4".into()));
    assert_eq!(call(post("alice", "amount=1")).await, (StatusCode::OK, true, false, "alice amount=1 run 4".into()));
    assert_eq!(call(post("mallory", "amount=1")).await.3, "mallory amount=1 run 3");
    // The same key and caller with another query: 422.
    assert_eq!(call(post("alice", "amount=1000")).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}
