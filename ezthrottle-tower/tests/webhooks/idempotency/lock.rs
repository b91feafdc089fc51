//! A request holds its key while it runs: the lock is renewed, a lost lock answers 409
//! instead of running twice, a failed `complete` is retried and said, and no configured
//! duration overflows the clock. The clock is tokio's, paused: the layer runs in-process
//! around a real axum router.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode as AxumStatus;
use axum::response::Response;
use axum::routing::post;
use ezthrottle_tower::idempotency::{
    Begin, Fingerprint, IdempotencyLayer, IdempotencyStore, InFlight, LockToken, MemoryIdempotencyStore,
    STORE_FAILED_HEADER, StoredResponse,
};
use ezthrottle_tower::{REPLAY_HEADER, StoreError};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

const LOCK: Duration = Duration::from_secs(3);

/// A memory store that can be cut off (its replica lost the store): `renew`, `complete` and
/// `release` fail then. Counts renewals and completions.
#[derive(Clone, Default)]
struct Cuttable {
    inner: MemoryIdempotencyStore,
    cut: Arc<AtomicBool>,
    renewals: Arc<AtomicUsize>,
    completes: Arc<AtomicUsize>,
}

impl Cuttable {
    fn check(&self) -> Result<(), StoreError> {
        if self.cut.load(Ordering::SeqCst) { Err(StoreError::new("cut off from the store")) } else { Ok(()) }
    }
}

impl IdempotencyStore for Cuttable {
    async fn begin(&self, key: &str, fingerprint: Fingerprint, lock_ttl: Duration) -> Result<Begin, StoreError> {
        self.inner.begin(key, fingerprint, lock_ttl).await
    }

    async fn renew(&self, key: &str, token: &LockToken, lock_ttl: Duration) -> Result<bool, StoreError> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.renew(key, token, lock_ttl).await
    }

    async fn complete(
        &self,
        key: &str,
        token: &LockToken,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.completes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.complete(key, token, response, ttl).await
    }

    async fn release(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release(key, token).await
    }

    async fn wait(&self, key: &str, timeout: Duration) -> Result<Begin, StoreError> {
        self.inner.wait(key, timeout).await
    }

    async fn inspect(&self, key: &str) -> Result<Option<Begin>, StoreError> {
        self.inner.inspect(key).await
    }

    async fn clear(&self, key: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.clear(key).await
    }
}

/// `/slow` signals `started`, waits for a permit of `gate`, answers 201 with its run.
fn slow_router<St: IdempotencyStore>(
    layer: IdempotencyLayer<St>,
) -> (Router, Arc<AtomicUsize>, Arc<Notify>, Arc<Semaphore>) {
    let (runs, started, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()), Arc::new(Semaphore::new(0)));
    let (counter, begun, open) = (Arc::clone(&runs), Arc::clone(&started), Arc::clone(&gate));
    let router = Router::new()
        .route(
            "/slow",
            post(move || {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let (begun, open) = (Arc::clone(&begun), Arc::clone(&open));
                async move {
                    begun.notify_one();
                    let _permit = open.acquire().await.expect("gate");
                    (AxumStatus::CREATED, format!("run {run}"))
                }
            }),
        )
        .layer(layer);
    (router, runs, started, gate)
}

fn call(router: &Router) -> tokio::task::JoinHandle<Response> {
    let request = axum::http::Request::post("/slow")
        .header("Idempotency-Key", "slow-0123456789abcdef")
        .body(Body::empty())
        .expect("request");
    let router = router.clone();
    tokio::spawn(async move { router.oneshot(request).await.expect("infallible") })
}

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// The handler runs for over three lock lives: its lock is renewed, so a repeat waits for
/// its answer and replays it (without renewal it would lapse: a 409, or a second run).
#[tokio::test(start_paused = true)]
async fn a_slow_handler_keeps_its_key() {
    let store = Cuttable::default();
    let layer = IdempotencyLayer::new(store.clone()).lock_ttl(LOCK).wait_timeout(Duration::from_secs(600));
    let (router, runs, started, gate) = slow_router(layer);
    let first = call(&router);
    started.notified().await;
    tokio::time::sleep(LOCK * 3 + Duration::from_secs(1)).await; // the paused clock jumps
    assert!(store.renewals.load(Ordering::SeqCst) >= 9, "renewed every third of the lock's life");
    let repeat = call(&router);
    tokio::time::sleep(LOCK * 2).await;
    gate.add_permits(10);
    let first = first.await.expect("task");
    assert_eq!(first.status(), AxumStatus::CREATED);
    assert!(first.headers().get(STORE_FAILED_HEADER).is_none());
    let repeat = repeat.await.expect("task");
    assert_eq!(repeat.status(), AxumStatus::CREATED);
    assert!(repeat.headers().contains_key(REPLAY_HEADER));
    assert_eq!(text(repeat).await, "run 1");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// The replica running the handler loses the store: its lock lapses, and a repeat gets 409
/// "outcome unknown" (not a second run) for another lock life, then the key is free. The
/// first request still gets its own answer, saying it was not stored.
#[tokio::test(start_paused = true)]
async fn a_lost_lock_answers_409_and_a_failed_complete_is_said() {
    let store = Cuttable::default();
    let layer = IdempotencyLayer::new(store.clone()).lock_ttl(LOCK).in_flight(InFlight::Conflict);
    let (router, runs, started, gate) = slow_router(layer);
    let first = call(&router);
    started.notified().await;
    store.cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(LOCK + Duration::from_secs(1)).await;
    let repeat = call(&router).await.expect("task");
    assert_eq!(repeat.status(), AxumStatus::CONFLICT);
    assert_eq!(repeat.headers()["retry-after"], "3");
    assert!(text(repeat).await.contains("unknown"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    gate.add_permits(10);
    let first = first.await.expect("task");
    assert_eq!(first.status(), AxumStatus::CREATED, "the original answer is returned");
    assert_eq!(first.headers()[STORE_FAILED_HEADER], "true");
    assert_eq!(text(first).await, "run 1");
    assert_eq!(store.completes.load(Ordering::SeqCst), 3, "complete is retried a bounded number of times");

    // Still unknown until the lost lock expires; then the key is free again.
    assert_eq!(call(&router).await.expect("task").status(), AxumStatus::CONFLICT);
    store.cut.store(false, Ordering::SeqCst);
    tokio::time::sleep(LOCK).await;
    let again = call(&router);
    started.notified().await;
    assert_eq!(again.await.expect("task").status(), AxumStatus::CREATED);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// The store's own lock life: lapsed is `Lost` (its holder may still renew or complete it),
/// then free; a stranger's token does nothing.
#[tokio::test(start_paused = true)]
async fn the_memory_store_keeps_a_lapsed_lock_as_lost_for_another_lock_life() {
    let store = MemoryIdempotencyStore::new();
    let print: Fingerprint = [7; 32];
    let Begin::Acquired(token) = store.begin("k", print, LOCK).await.expect("begin") else { panic!("acquired") };
    tokio::time::advance(LOCK).await;
    assert!(matches!(store.begin("k", print, LOCK).await.expect("begin"), Begin::Lost { .. }));
    assert!(matches!(store.wait("k", Duration::from_secs(1)).await.expect("wait"), Begin::Lost { .. }));
    assert!(!store.renew("k", &LockToken::new("999"), LOCK).await.expect("renew"), "not a stranger's");
    assert!(store.renew("k", &token, LOCK).await.expect("renew"), "its holder renews a lapsed lock");
    assert!(matches!(store.begin("k", print, LOCK).await.expect("begin"), Begin::InFlight { .. }));
    tokio::time::advance(LOCK * 2).await;
    assert!(store.complete("k", &token, stored(print), LOCK).await.is_err(), "an expired lock is no longer held");
    assert!(matches!(store.begin("k", print, LOCK).await.expect("begin"), Begin::Acquired(_)));
}

fn stored(fingerprint: Fingerprint) -> StoredResponse {
    StoredResponse { fingerprint, status: http::StatusCode::OK, headers: vec![], body: "ok".into() }
}

/// Durations too large for the clock saturate (forever), in the store and in the layer.
#[tokio::test(start_paused = true)]
async fn huge_durations_do_not_overflow_the_clock() {
    let store = MemoryIdempotencyStore::new();
    let print: Fingerprint = [1; 32];
    let Begin::Acquired(token) = store.begin("k", print, Duration::MAX).await.expect("begin") else { panic!() };
    assert!(store.renew("k", &token, Duration::MAX).await.expect("renew"));
    // An endless wait on a running key ends at the saturated deadline (the paused clock jumps).
    assert!(matches!(store.wait("k", Duration::MAX).await.expect("wait"), Begin::InFlight { .. }));
    store.complete("k", &token, stored(print), Duration::MAX).await.expect("complete");
    assert!(matches!(store.wait("k", Duration::MAX).await.expect("wait"), Begin::Completed(_)));

    let layer = IdempotencyLayer::new(MemoryIdempotencyStore::new())
        .ttl(Duration::MAX)
        .non_success_ttl(Duration::MAX)
        .lock_ttl(Duration::MAX)
        .wait_timeout(Duration::MAX);
    let (router, runs, started, gate) = slow_router(layer);
    let first = call(&router);
    started.notified().await;
    let repeat = call(&router);
    gate.add_permits(10);
    assert_eq!(first.await.expect("task").status(), AxumStatus::CREATED);
    let repeat = repeat.await.expect("task");
    assert!(repeat.headers().contains_key(REPLAY_HEADER));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A lapsed lock inspects as lost and can be cleared; a live one cannot.
#[tokio::test(start_paused = true)]
async fn a_lapsed_memory_lock_is_inspected_as_lost_and_cleared() {
    let store = MemoryIdempotencyStore::new();
    let Ok(Begin::Acquired(token)) = store.begin("k", [1; 32], LOCK).await else { panic!("acquired") };
    assert!(matches!(store.inspect("k").await, Ok(Some(Begin::InFlight { .. }))));
    assert_eq!(store.clear("k").await, Ok(false), "a live lock stays");
    tokio::time::advance(LOCK).await;
    assert!(matches!(store.inspect("k").await, Ok(Some(Begin::Lost { .. }))));
    assert_eq!(store.clear("k").await, Ok(true), "a lapsed lock goes");
    assert!(matches!(store.inspect("k").await, Ok(None)));
    assert!(!store.renew("k", &token, LOCK).await.expect("renew"), "its holder lost it");
    assert!(matches!(store.begin("k", [1; 32], LOCK).await, Ok(Begin::Acquired(_))), "free again");
    tokio::time::advance(LOCK * 2).await;
    assert!(matches!(store.inspect("k").await, Ok(None)), "expired");
    assert_eq!(store.clear("k").await, Ok(false), "an expired entry was not there to clear");
}
