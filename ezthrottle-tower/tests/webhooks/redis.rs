use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ezthrottle_tower::REPLAY_HEADER;
use ezthrottle_tower::idempotency::{IdempotencyLayer, RedisIdempotencyStore};
use reqwest::StatusCode;

use super::idempotency::{assert_ran_once, charge_router, deliver, storm};

/// A store with a generous call timeout: these tests check what replicas agree on, and a
/// loaded 2-core CI machine must not turn a slow Redis answer into a 503.
fn store(url: &str) -> RedisIdempotencyStore {
    RedisIdempotencyStore::with_options(
        redis::Client::open(url).expect("url"),
        "ezthrottle:idem:",
        std::time::Duration::from_secs(5),
    )
}
use super::support::{RedisServer, payload_json, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_run_the_handler_once() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let runs = Arc::new(AtomicUsize::new(0));
    // Two receiver instances, each with its own store (own connection) on the same Redis.
    let a = serve(charge_router(IdempotencyLayer::new(store(&redis.url)), Arc::clone(&runs), 0, None)).await;
    let b = serve(charge_router(IdempotencyLayer::new(store(&redis.url)), Arc::clone(&runs), 0, None)).await;
    let urls = [format!("http://{a}/charge"), format!("http://{b}/charge")];
    let body = payload_json("job_redis", Some("order-redis-1"));
    let answers = storm(&urls, &body, 1000).await;
    assert_ran_once(&runs, &answers);
}

#[tokio::test]
async fn redis_failure_then_retry_runs_again_and_422() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let runs = Arc::new(AtomicUsize::new(0));
    let a = serve(charge_router(IdempotencyLayer::new(store(&redis.url)), Arc::clone(&runs), 1, None)).await;
    let b = serve(charge_router(IdempotencyLayer::new(store(&redis.url)), Arc::clone(&runs), 1, None)).await;
    let body = payload_json("job_redis_fail", None);
    assert_eq!(deliver(&format!("http://{a}/charge"), &body).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(deliver(&format!("http://{b}/charge"), &body).await.status(), StatusCode::CREATED);
    let replay = deliver(&format!("http://{a}/charge"), &body).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert!(replay.headers().get(REPLAY_HEADER).is_some());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let different = body.replace("success", "failed");
    assert_eq!(deliver(&format!("http://{b}/charge"), &different).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
