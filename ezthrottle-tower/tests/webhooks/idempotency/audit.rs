//! The audit hook sees every keyed request's decision, with the key's digest only.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ezthrottle_tower::idempotency::{IdempotencyLayer, IdempotencyOutcome, InFlight, RedisIdempotencyStore};
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use super::keys::app;
use crate::webhooks::support::{http, serve};

type Seen = Arc<Mutex<Vec<(IdempotencyOutcome, String)>>>;

fn recording<St: ezthrottle_tower::idempotency::IdempotencyStore>(
    layer: IdempotencyLayer<St>,
) -> (IdempotencyLayer<St>, Seen) {
    let seen = Seen::default();
    let sink = Arc::clone(&seen);
    let layer =
        layer.on_decision(move |event| sink.lock().expect("events").push((event.outcome, event.key.to_owned())));
    (layer, seen)
}

const FIRST: &str = "audit-key-first-0123";
const SECOND: &str = "audit-key-second-0123";

#[tokio::test]
async fn the_audit_hook_sees_every_keyed_decision() {
    let (layer, seen) = recording(IdempotencyLayer::memory().in_flight(InFlight::Conflict));
    let (router, runs, gate) = app(layer);
    let url = format!("http://{}/webhook", serve(router).await);
    let http = http();
    let post =
        |key: &'static str, body: &'static str| http.post(&url).header("x-idempotency-key", key).body(body).send();

    assert_eq!(post(FIRST, "1").await.expect("send").status(), StatusCode::CREATED);
    assert_eq!(post(FIRST, "1").await.expect("send").status(), StatusCode::CREATED);
    assert_eq!(post(FIRST, "2").await.expect("send").status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(gate.forget_permits(Semaphore::MAX_PERMITS), Semaphore::MAX_PERMITS);
    let running = tokio::spawn(post(SECOND, "1"));
    ezthrottle_test_support::eventually("the second run", || runs.load(Ordering::SeqCst) == 2).await;
    assert_eq!(post(SECOND, "1").await.expect("send").status(), StatusCode::CONFLICT);
    gate.add_permits(1);
    assert_eq!(running.await.expect("task").expect("send").status(), StatusCode::CREATED);
    gate.add_permits(Semaphore::MAX_PERMITS - 1);
    assert_eq!(http.post(&url).body("no key").send().await.expect("send").status(), StatusCode::CREATED);

    let events = seen.lock().expect("events").clone();
    let outcomes: Vec<IdempotencyOutcome> = events.iter().map(|(outcome, _)| *outcome).collect();
    use IdempotencyOutcome::{InProgress, Mismatch, Replayed, Run};
    assert_eq!(outcomes, [Run, Replayed, Mismatch, Run, InProgress], "a request without a key is not keyed");
    let keys: Vec<&str> = events.iter().map(|(_, key)| key.as_str()).collect();
    assert!(keys[..3].iter().all(|key| *key == keys[0]) && keys[3] == keys[4] && keys[0] != keys[3], "{keys:?}");
    for key in keys {
        let digest = key.strip_prefix("h:").expect("a header key");
        assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        assert!(!key.contains("audit-key"), "{key}");
    }
}

#[tokio::test]
async fn the_audit_hook_sees_a_store_failure() {
    let url = format!("redis://{}", ezthrottle_test_support::refused_addr().await);
    let store =
        RedisIdempotencyStore::with_options(redis::Client::open(url).expect("url"), "i:", Duration::from_millis(200));
    let (layer, seen) = recording(IdempotencyLayer::new(store));
    let (router, runs, _gate) = app(layer);
    let url = format!("http://{}/webhook", serve(router).await);
    let answer = http().post(&url).header("x-idempotency-key", FIRST).send().await.expect("send");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let outcomes: Vec<IdempotencyOutcome> = seen.lock().expect("events").iter().map(|(outcome, _)| *outcome).collect();
    assert_eq!(outcomes, [IdempotencyOutcome::StoreFailed]);
}
