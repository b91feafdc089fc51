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

mod locks {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use ezthrottle_tower::REPLAY_HEADER;
    use ezthrottle_tower::idempotency::{
        Begin, Fingerprint, IdempotencyLayer, IdempotencyStore, InFlight, LockToken, StoredResponse,
    };
    use redis::AsyncCommands;
    use reqwest::StatusCode;
    use tokio::sync::Notify;

    use super::store;
    use crate::webhooks::idempotency::{charge_router, deliver};
    use crate::webhooks::support::{RedisServer, payload_json, serve};

    const PRINT: Fingerprint = [3; 32];

    fn answer() -> StoredResponse {
        StoredResponse { fingerprint: PRINT, status: http::StatusCode::OK, headers: vec![], body: "ok".into() }
    }

    /// A plain connection, to look at (and cut) the store's keys.
    async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
        redis::Client::open(url).expect("url").get_multiplexed_async_connection().await.expect("connect")
    }

    /// Renewal is a compare-and-extend by token; a lapsed heartbeat is `Lost` (its holder may
    /// still renew and complete); durations past Redis's range are capped, not refused.
    #[tokio::test]
    async fn redis_locks_renew_by_token_and_a_lapsed_one_is_lost() {
        let Some(redis) = RedisServer::start_or_skip().await else { return };
        let store = store(&redis.url);
        let mut raw = raw(&redis.url).await;
        let Begin::Acquired(token) = store.begin("k", PRINT, Duration::from_secs(60)).await.expect("begin") else {
            panic!("acquired")
        };
        assert!(store.renew("k", &token, Duration::from_secs(60)).await.expect("renew"));
        assert!(!store.renew("k", &LockToken::new("Lsomeone:else"), Duration::from_secs(60)).await.expect("renew"));
        assert!(matches!(
            store.begin("k", PRINT, Duration::from_secs(60)).await.expect("begin"),
            Begin::InFlight { .. }
        ));
        // The holder stopped renewing: its heartbeat is gone.
        let _: i64 = raw.del("ezthrottle:idem:k:hb").await.expect("del");
        assert!(matches!(store.begin("k", PRINT, Duration::from_secs(60)).await.expect("begin"), Begin::Lost { .. }));
        assert!(matches!(store.wait("k", Duration::from_secs(5)).await.expect("wait"), Begin::Lost { .. }));
        assert!(store.renew("k", &token, Duration::MAX).await.expect("a huge lock_ttl is capped"));
        assert!(matches!(store.begin("k", PRINT, Duration::MAX).await.expect("begin"), Begin::InFlight { .. }));
        assert!(store.complete("k", &LockToken::new("Lsomeone:else"), answer(), Duration::MAX).await.is_err());
        store.complete("k", &token, answer(), Duration::MAX).await.expect("complete");
        assert!(matches!(store.begin("k", PRINT, Duration::MAX).await.expect("begin"), Begin::Completed(_)));
        let hb: bool = raw.exists("ezthrottle:idem:k:hb").await.expect("exists");
        assert!(!hb, "an answered key has no heartbeat");
    }

    /// `inspect` reads without taking; `clear` leaves a live lock, removes a lapsed one
    /// (heartbeat and all) and an answer.
    #[tokio::test]
    async fn redis_keys_are_inspected_and_only_lapsed_locks_or_answers_cleared() {
        let Some(redis) = RedisServer::start_or_skip().await else { return };
        let store = store(&redis.url);
        let mut raw = raw(&redis.url).await;
        assert!(store.inspect("k").await.expect("inspect").is_none());
        assert!(!store.clear("k").await.expect("clear"), "nothing to clear");
        let Begin::Acquired(token) = store.begin("k", PRINT, Duration::from_secs(60)).await.expect("begin") else {
            panic!("acquired")
        };
        assert!(matches!(store.inspect("k").await.expect("inspect"), Some(Begin::InFlight { .. })));
        assert!(!store.clear("k").await.expect("clear"), "a live lock stays");
        assert!(store.renew("k", &token, Duration::from_secs(60)).await.expect("renew"), "still held");
        let _: i64 = raw.del("ezthrottle:idem:k:hb").await.expect("del");
        assert!(matches!(store.inspect("k").await.expect("inspect"), Some(Begin::Lost { .. })));
        assert!(store.clear("k").await.expect("clear"), "a lapsed lock goes");
        assert!(store.inspect("k").await.expect("inspect").is_none());
        assert!(!store.renew("k", &token, Duration::from_secs(60)).await.expect("renew"), "its holder lost it");
        let Begin::Acquired(next) = store.begin("k", PRINT, Duration::from_secs(60)).await.expect("begin") else {
            panic!("free again")
        };
        store.complete("k", &next, answer(), Duration::from_secs(60)).await.expect("complete");
        assert!(
            matches!(store.inspect("k").await.expect("inspect"), Some(Begin::Completed(stored)) if stored == answer())
        );
        assert!(store.clear("k").await.expect("clear"));
        let left: i64 = raw.exists(&["ezthrottle:idem:k", "ezthrottle:idem:k:hb"][..]).await.expect("exists");
        assert_eq!(left, 0);
    }

    /// A handler slower than three lock lives on replica A: B's repeat meanwhile is told it is
    /// in progress (not "outcome unknown", not a second run), then replays A's answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_handler_keeps_its_redis_lock() {
        let Some(redis) = RedisServer::start_or_skip().await else { return };
        let lock = Duration::from_millis(300);
        let layer = || IdempotencyLayer::new(store(&redis.url)).lock_ttl(lock).in_flight(InFlight::Conflict);
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new((Notify::new(), Notify::new()));
        let a = serve(charge_router(layer(), Arc::clone(&runs), 0, Some(Arc::clone(&gate)))).await;
        let b = serve(charge_router(layer(), Arc::clone(&runs), 0, None)).await;
        let body = payload_json("job_redis_slow", None);
        let first = tokio::spawn({
            let (url, body) = (format!("http://{a}/charge"), body.clone());
            async move { deliver(&url, &body).await.status() }
        });
        tokio::time::timeout(Duration::from_secs(10), gate.0.notified()).await.expect("the handler started");
        // Time must pass beyond the lock's life: no event marks it.
        tokio::time::sleep(lock * 3).await;
        let repeat = deliver(&format!("http://{b}/charge"), &body).await;
        assert_eq!(repeat.status(), StatusCode::CONFLICT);
        assert!(repeat.text().await.expect("text").contains("in progress"));
        gate.1.notify_one();
        assert_eq!(first.await.expect("task"), StatusCode::CREATED);
        let replay = deliver(&format!("http://{b}/charge"), &body).await;
        assert!(replay.headers().get(REPLAY_HEADER).is_some());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
