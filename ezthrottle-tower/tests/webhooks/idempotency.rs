use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use ezthrottle_core::webhook::Verifier;
use ezthrottle_core::webhook::sign;
use ezthrottle_tower::REPLAY_HEADER;
use ezthrottle_tower::idempotency::{IdempotencyLayer, IdempotencyStore, InFlight, MemoryIdempotencyStore};
use ezthrottle_tower::webhook::VerifyWebhookLayer;
use reqwest::StatusCode;
use tokio::sync::Notify;

use super::support::{SECRET, http, now, payload_json, serve};

/// A `/charge` route counting its runs; the first `fail_first` runs answer 500.
pub(crate) fn charge_router<St: IdempotencyStore>(
    layer: IdempotencyLayer<St>,
    runs: Arc<AtomicUsize>,
    fail_first: usize,
    gate: Option<Arc<(Notify, Notify)>>,
) -> Router {
    let handler = move || {
        let runs = Arc::clone(&runs);
        let gate = gate.clone();
        async move {
            if let Some(gate) = gate {
                gate.0.notify_one(); // started
                gate.1.notified().await; // released by the test
            }
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run <= fail_first {
                (AxumStatus::INTERNAL_SERVER_ERROR, format!("failed run {run}"))
            } else {
                (AxumStatus::CREATED, format!("charged once (run {run})"))
            }
        }
    };
    Router::new()
        .route("/charge", post(handler))
        // Added first = inner: verification (added last) runs before the idempotency check.
        .route_layer(layer)
        .route_layer(VerifyWebhookLayer::new(Verifier::new(SECRET).unwrap()))
}

pub(crate) async fn deliver(url: &str, body: &str) -> reqwest::Response {
    deliver_with(&http(), url, body).await
}

pub(crate) async fn deliver_with(client: &reqwest::Client, url: &str, body: &str) -> reqwest::Response {
    deliver_signed(client, SECRET, url, body).await
}

/// `body` posted to `url`, signed now with `secret` (a forger's, unless it is [`SECRET`]).
async fn deliver_signed(client: &reqwest::Client, secret: &str, url: &str, body: &str) -> reqwest::Response {
    client
        .post(url)
        .header("X-EZThrottle-Signature", sign(secret, now(), body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("send")
}

/// Checks the answers of a [`storm`] of 1000 copies of one delivery: the handler ran
/// once, every copy got its `201`, and all but one are replays.
pub(crate) fn assert_ran_once(runs: &AtomicUsize, answers: &[(StatusCode, String, bool)]) {
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(answers.len(), 1000);
    for (status, text, _) in answers {
        assert_eq!(*status, StatusCode::CREATED, "{text}");
        assert_eq!(text, "charged once (run 1)");
    }
    assert_eq!(answers.iter().filter(|(_, _, replayed)| *replayed).count(), 999);
}

/// Sends `count` signed copies of `body` at once, each to one of `urls` in turn; answers
/// (status, body, replayed) per request.
pub(crate) async fn storm(urls: &[String], body: &str, count: usize) -> Vec<(StatusCode, String, bool)> {
    let mut tasks = tokio::task::JoinSet::new();
    let client = http();
    for i in 0..count {
        let client = client.clone();
        let url = urls[i % urls.len()].clone();
        let body = body.to_owned();
        tasks.spawn(async move {
            let response = deliver_with(&client, &url, &body).await;
            let replayed = response.headers().get(REPLAY_HEADER).is_some();
            (response.status(), response.text().await.expect("text"), replayed)
        });
    }
    let mut answers = Vec::with_capacity(count);
    let collect = async {
        while let Some(answer) = tasks.join_next().await {
            answers.push(answer.expect("task"));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), collect).await.expect("storm within 60 s");
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_duplicates_run_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let addr = serve(charge_router(IdempotencyLayer::memory(), Arc::clone(&runs), 0, None)).await;
    let body = payload_json("job_dup", Some("order-dup-1"));
    let answers = storm(&[format!("http://{addr}/charge")], &body, 1000).await;
    assert_ran_once(&runs, &answers);
}

#[tokio::test]
async fn a_server_error_releases_the_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let addr = serve(charge_router(IdempotencyLayer::memory(), Arc::clone(&runs), 1, None)).await;
    let url = format!("http://{addr}/charge");
    let body = payload_json("job_fail", None);
    let first = deliver(&url, &body).await;
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let retry = deliver(&url, &body).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert!(retry.headers().get(REPLAY_HEADER).is_none());
    let repeat = deliver(&url, &body).await;
    assert_eq!(repeat.status(), StatusCode::CREATED);
    assert_eq!(repeat.headers().get(REPLAY_HEADER).map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(repeat.text().await.expect("text"), "charged once (run 2)");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn same_key_different_body_is_422_and_unverified_never_replays() {
    let runs = Arc::new(AtomicUsize::new(0));
    let addr = serve(charge_router(IdempotencyLayer::memory(), Arc::clone(&runs), 0, None)).await;
    let url = format!("http://{addr}/charge");
    let first = payload_json("job_1", Some("order-422"));
    assert_eq!(deliver(&url, &first).await.status(), StatusCode::CREATED);
    let other = first.replace("success", "failed");
    assert_ne!(other, first);
    assert_eq!(deliver(&url, &other).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The same body without a valid signature is refused before any replay.
    let unsigned = http().post(&url).body(first.clone()).send().await.expect("send");
    assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);
    let forged = deliver_signed(&http(), "whsec_forger", &url, &first).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn header_keys_for_ordinary_apis() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let router = Router::new()
        .route(
            "/pay",
            post(move |body: String| {
                let counter = Arc::clone(&counter);
                async move { format!("paid {body} #{}", counter.fetch_add(1, Ordering::SeqCst) + 1) }
            }),
        )
        .route_layer(IdempotencyLayer::new(MemoryIdempotencyStore::new()).ttl(Duration::from_secs(60)).max_body(64));
    let addr = serve(router).await;
    let url = format!("http://{addr}/pay");
    let send = |key: &'static str, body: &'static str| {
        let url = url.clone();
        async move { http().post(url).header("Idempotency-Key", key).body(body).send().await.expect("send") }
    };
    let first = send("key-0123456789abcdef", "10").await;
    assert_eq!(first.text().await.expect("text"), "paid 10 #1");
    let again = send("key-0123456789abcdef", "10").await;
    assert!(again.headers().get(REPLAY_HEADER).is_some());
    assert_eq!(again.text().await.expect("text"), "paid 10 #1");
    assert_eq!(send("key-0123456789abcdef", "20").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(send("short", "10").await.status(), StatusCode::BAD_REQUEST);
    // No key: passes through every time.
    let plain = http().post(&url).body("30").send().await.expect("send");
    assert_eq!(plain.text().await.expect("text"), "paid 30 #2");
    let plain = http().post(&url).body("30").send().await.expect("send");
    assert_eq!(plain.text().await.expect("text"), "paid 30 #3");
    // An unsigned body naming a job is data, not a key (only a signed delivery's is): both
    // run, and the second is not refused as "the same key with a different body".
    for (amount, run) in [(1, 4), (2, 5)] {
        let body = format!(r#"{{"job_id":"job_7","amount":{amount}}}"#);
        let answer = http().post(&url).body(body.clone()).send().await.expect("send");
        assert_eq!(answer.text().await.expect("text"), format!("paid {body} #{run}"));
    }
    // Without a key the body is never buffered, so the 64-byte cap does not apply to it.
    let large = "9".repeat(1000);
    let answer = http().post(&url).body(large.clone()).send().await.expect("send");
    assert_eq!(answer.text().await.expect("text"), format!("paid {large} #6"));
    let keyed = http().post(&url).header("Idempotency-Key", "key-large-0123456789").body(large).send().await;
    assert_eq!(keyed.expect("send").status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn conflict_mode_answers_409_while_in_flight() {
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new((Notify::new(), Notify::new()));
    let layer = IdempotencyLayer::memory().in_flight(InFlight::Conflict);
    let addr = serve(charge_router(layer, Arc::clone(&runs), 0, Some(Arc::clone(&gate)))).await;
    let url = format!("http://{addr}/charge");
    let body = payload_json("job_conflict", None);
    let first = tokio::spawn({
        let (url, body) = (url.clone(), body.clone());
        async move { deliver(&url, &body).await.status() }
    });
    tokio::time::timeout(Duration::from_secs(10), gate.0.notified()).await.expect("the first request started");
    let conflict = deliver(&url, &body).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert_eq!(conflict.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    gate.1.notify_one();
    assert_eq!(first.await.expect("task"), StatusCode::CREATED);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// The extractor verifies *inside* the layer (the order `.route_layer(IdempotencyLayer)`
/// alone gives): a forged delivery's 401 must not be stored under the job's key.
#[tokio::test]
async fn a_refused_forgery_does_not_take_the_key_of_the_genuine_delivery() {
    use ezthrottle_tower::webhook::VerifiedWebhook;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let router =
        Router::new()
            .route(
                "/webhook",
                post(move |delivery: VerifiedWebhook| {
                    let counter = Arc::clone(&counter);
                    async move {
                        format!("{} handled #{}", delivery.payload.job_id, counter.fetch_add(1, Ordering::SeqCst) + 1)
                    }
                }),
            )
            .route_layer(IdempotencyLayer::memory())
            .with_state(Verifier::new(SECRET).unwrap());
    let url = format!("http://{}/webhook", serve(router).await);
    let body = payload_json("job_forged_first", None);
    let forged = deliver_signed(&http(), "whsec_forger_0123456", &url, &body).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let unsigned = http().post(&url).body(body.clone()).send().await.expect("send");
    assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);

    let genuine = deliver(&url, &body).await;
    assert_eq!(genuine.status(), StatusCode::OK);
    assert!(genuine.headers().get(REPLAY_HEADER).is_none());
    assert_eq!(genuine.text().await.expect("text"), "job_forged_first handled #1");
    let repeat = deliver(&url, &body).await;
    assert_eq!(repeat.headers().get(REPLAY_HEADER).map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

mod audit;
mod bounds;
mod keys;
mod lock;
mod props;
mod scope;

/// The replay header is the layer's: `X-Idempotent-Replay` by default, the design's
/// `X-Cached: true` in one call, or any name.
#[tokio::test]
async fn the_replay_header_is_configurable() {
    use ezthrottle_tower::idempotency::CACHED_HEADER;
    let custom = http::HeaderName::from_static("x-replayed");
    for (layer, header) in [
        (IdempotencyLayer::memory(), REPLAY_HEADER),
        (IdempotencyLayer::memory().x_cached(), CACHED_HEADER),
        (IdempotencyLayer::memory().replay_header(custom.clone()), custom.as_str()),
    ] {
        let router = Router::new().route("/pay", post(|| async { "paid" })).route_layer(layer);
        let url = format!("http://{}/pay", serve(router).await);
        let send = || http().post(&url).header("Idempotency-Key", "key-0123456789abcdef").send();
        assert!(send().await.expect("send").headers().get(header).is_none(), "{header} on the first answer");
        let again = send().await.expect("send");
        assert_eq!(again.headers().get(header).map(|v| v.as_bytes()), Some(&b"true"[..]), "{header}");
        for other in [REPLAY_HEADER, CACHED_HEADER, custom.as_str()].into_iter().filter(|name| *name != header) {
            assert!(again.headers().get(other).is_none(), "{other} besides {header}");
        }
        assert_eq!(again.text().await.expect("text"), "paid");
    }
}
