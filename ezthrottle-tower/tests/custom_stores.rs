//! The store traits are implementable outside the crate: a small `IdempotencyStore` and a
//! small `RateLimitStore` written here, with only the crate's public API, each behind its
//! layer in a real axum server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use ezthrottle_tower::idempotency::{
    Begin, Fingerprint, IdempotencyLayer, IdempotencyStore, KeyCleared, LockToken, StoredResponse,
};
use ezthrottle_tower::rate_limit::{
    Algorithm, Check, Decision, FailMode, RateLimitLayer, RateLimitStore, RequestHead, Rule, Scope,
};
use ezthrottle_tower::{REPLAY_HEADER, StoreError};
use tokio::sync::Notify;

async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    (addr, server)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// One mutex-guarded map: a key is locked (with its token and fingerprint) or answered.
#[derive(Clone, Default)]
struct MapStore {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    tokens: Arc<AtomicU64>,
    changed: Arc<Notify>,
    failing: Arc<AtomicBool>,
    renewals: Arc<AtomicUsize>,
}

enum Slot {
    Locked { token: LockToken, fingerprint: Fingerprint },
    Answered(StoredResponse),
}

impl MapStore {
    fn check_up(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::new("the map store is down"));
        }
        Ok(())
    }

    fn state(&self, key: &str) -> Option<Begin> {
        match self.slots.lock().unwrap().get(key)? {
            Slot::Locked { fingerprint, .. } => Some(Begin::InFlight { fingerprint: *fingerprint }),
            Slot::Answered(stored) => Some(Begin::Completed(stored.clone())),
        }
    }

    fn holds(&self, key: &str, token: &LockToken) -> bool {
        matches!(self.slots.lock().unwrap().get(key), Some(Slot::Locked { token: held, .. }) if held == token)
    }
}

impl IdempotencyStore for MapStore {
    async fn begin(&self, key: &str, fingerprint: Fingerprint, _lock_ttl: Duration) -> Result<Begin, StoreError> {
        self.check_up()?;
        let mut slots = self.slots.lock().unwrap();
        match slots.get(key) {
            Some(Slot::Locked { fingerprint, .. }) => Ok(Begin::InFlight { fingerprint: *fingerprint }),
            Some(Slot::Answered(stored)) => Ok(Begin::Completed(stored.clone())),
            None => {
                let token = LockToken::new(format!("map-{}", self.tokens.fetch_add(1, Ordering::SeqCst)));
                slots.insert(key.to_owned(), Slot::Locked { token: token.clone(), fingerprint });
                Ok(Begin::Acquired(token))
            }
        }
    }

    async fn renew(&self, key: &str, token: &LockToken, _lock_ttl: Duration) -> Result<bool, StoreError> {
        self.check_up()?;
        self.renewals.fetch_add(1, Ordering::SeqCst);
        Ok(self.holds(key, token))
    }

    async fn complete(
        &self,
        key: &str,
        token: &LockToken,
        response: StoredResponse,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        self.check_up()?;
        if !self.holds(key, token) {
            return Err(StoreError::new("the lock is not held"));
        }
        self.slots.lock().unwrap().insert(key.to_owned(), Slot::Answered(response));
        self.changed.notify_waiters();
        Ok(())
    }

    async fn release(&self, key: &str, token: &LockToken) -> Result<(), StoreError> {
        if self.holds(key, token) {
            self.slots.lock().unwrap().remove(key);
            self.changed.notify_waiters();
        }
        Ok(())
    }

    async fn wait(&self, key: &str, timeout: Duration) -> Result<Begin, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            match self.state(key) {
                None => return Ok(Begin::Released),
                Some(in_flight @ Begin::InFlight { .. }) => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Ok(in_flight);
                    }
                }
                Some(other) => return Ok(other),
            }
        }
    }

    async fn inspect(&self, key: &str) -> Result<Option<Begin>, StoreError> {
        self.check_up()?;
        Ok(self.state(key))
    }

    async fn clear(&self, key: &str) -> Result<bool, StoreError> {
        self.check_up()?;
        let mut slots = self.slots.lock().unwrap();
        if matches!(slots.get(key), Some(Slot::Locked { .. })) {
            return Ok(false);
        }
        Ok(slots.remove(key).is_some())
    }
}

#[tokio::test]
async fn an_idempotency_store_written_outside_the_crate() {
    let store = MapStore::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let app = Router::new()
        .route(
            "/charge",
            post(move |body: String| {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { format!("charged {body} (run {run})") }
            }),
        )
        .layer(IdempotencyLayer::new(store.clone()));
    let (addr, server) = serve(app).await;
    let http = http();
    let charge = |body: &'static str| {
        http.post(format!("http://{addr}/charge")).header("Idempotency-Key", "order-0001-abcdefgh").body(body).send()
    };

    let first = charge("a").await.expect("answer");
    assert_eq!(first.status(), 200);
    assert!(first.headers().get(REPLAY_HEADER).is_none());
    assert_eq!(first.text().await.expect("body"), "charged a (run 1)");
    let repeat = charge("a").await.expect("answer");
    assert_eq!(repeat.headers()[REPLAY_HEADER], "true");
    assert_eq!(repeat.text().await.expect("body"), "charged a (run 1)");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // One key, stored under a digest of the caller's scope and the key, not the key itself.
    let keys: Vec<String> = store.slots.lock().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains("order-0001"), "{keys:?}");
    assert!(matches!(store.state(&keys[0]), Some(Begin::Completed(stored)) if stored.status == 200));
    // The same key with another body is refused, and the handler does not run.
    assert_eq!(charge("b").await.expect("answer").status(), 422);
    // Inspected and cleared through the layer, in the (anonymous) caller's scope.
    let keys = IdempotencyLayer::new(store.clone()).keys();
    let (anonymous, ()) = http::Request::post("/charge").body(()).unwrap().into_parts();
    assert!(matches!(keys.inspect(&anonymous, "order-0001-abcdefgh").await, Ok(Some(Begin::Completed(_)))));
    assert_eq!(keys.clear(&anonymous, "order-0001-abcdefgh").await, Ok(KeyCleared::Cleared));
    assert_eq!(charge("b").await.expect("answer").text().await.expect("body"), "charged b (run 2)");

    // A failing store fails closed: 503 with Retry-After, the handler does not run.
    store.failing.store(true, Ordering::SeqCst);
    let down = http
        .post(format!("http://{addr}/charge"))
        .header("Idempotency-Key", "order-0002-abcdefgh")
        .body("c")
        .send()
        .await
        .expect("answer");
    assert_eq!(down.status(), 503);
    assert_eq!(down.headers()["retry-after"], "1");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    server.abort();
}

/// A fixed-window counter per key that never refills: enough to show the contract.
#[derive(Clone, Default)]
struct CountingStore {
    counts: Arc<Mutex<HashMap<String, u32>>>,
    failing: Arc<AtomicBool>,
}

impl RateLimitStore for CountingStore {
    type Future = Ready<Result<Vec<Decision>, StoreError>>;

    fn check(&self, checks: Vec<Check>) -> Self::Future {
        if self.failing.load(Ordering::SeqCst) {
            return ready(Err(StoreError::new("the counting store is down")));
        }
        let mut counts = self.counts.lock().unwrap();
        let decisions = checks
            .into_iter()
            .map(|check| {
                let limit = check.algorithm.limit();
                let used = counts.entry(check.key).or_default();
                let allowed = *used < limit;
                if allowed {
                    *used += 1;
                }
                Decision {
                    allowed,
                    limit,
                    remaining: limit - *used,
                    reset: Duration::from_secs(60),
                    retry_after: if allowed { Duration::ZERO } else { Duration::from_secs(60) },
                }
            })
            .collect();
        ready(Ok(decisions))
    }

    fn peek(&self, checks: Vec<Check>) -> Self::Future {
        if self.failing.load(Ordering::SeqCst) {
            return ready(Err(StoreError::new("the counting store is down")));
        }
        let counts = self.counts.lock().unwrap();
        let decisions = checks
            .into_iter()
            .map(|check| {
                let limit = check.algorithm.limit();
                let used = counts.get(&check.key).copied().unwrap_or(0);
                Decision {
                    allowed: used < limit,
                    limit,
                    remaining: limit - used,
                    reset: Duration::from_secs(60),
                    retry_after: if used < limit { Duration::ZERO } else { Duration::from_secs(60) },
                }
            })
            .collect();
        ready(Ok(decisions))
    }
}

#[tokio::test]
async fn a_rate_limit_store_written_outside_the_crate() {
    let store = CountingStore::default();
    let layer = RateLimitLayer::with_store(store.clone())
        .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(2, Duration::from_secs(60))))
        .fail_mode(FailMode::Closed);
    let layer_for_status = layer.clone();
    let app = Router::new().route("/pay", get(|| async { "paid" })).layer(layer);
    let (addr, server) = serve(app).await;
    let http = http();
    let pay = |key: &'static str| http.get(format!("http://{addr}/pay")).header("x-api-key", key).send();

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = pay("alice").await.expect("answer");
        statuses.push(response.status().as_u16());
        assert_eq!(response.headers()["ratelimit-limit"], "2");
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "60");
            let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
            assert_eq!(body["limit"], "per_key");
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    // Its budget, read through the layer without counting.
    let alice = http::Request::get("/pay").header("x-api-key", "alice").body(()).unwrap();
    let status = layer_for_status.status(&RequestHead::of(&alice)).await.expect("status");
    assert_eq!((status[0].rule.as_str(), status[0].limit, status[0].remaining), ("per_key", 2, 0));
    assert_eq!(pay("bob").await.expect("answer").status(), 200, "another key counts on its own");

    // The store's failure, with FailMode::Closed: 503.
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(pay("carol").await.expect("answer").status(), 503);
    server.abort();
}
