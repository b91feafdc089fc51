//! What a caller sees of its limits: the budget read without counting
//! (`rate_limit_status_route`), the audit hook seeing every decision, and the recommended
//! retry configuration applied to the layer's real answers. Real axum servers on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use ezthrottle_tower::axum::rate_limit_status_route;
use ezthrottle_tower::rate_limit::{
    Algorithm, FailMode, RateLimitLayer, RateLimitStore, RedisRateLimitStore, RetryConfig, Rule, Scope,
};
use serde_json::Value;

use super::support::RedisServer;

const ALICE: &str = "alice-secret-api-key";
const BOB: &str = "bob-secret-api-key";

fn limits<St: RateLimitStore>(store: St) -> RateLimitLayer<St> {
    RateLimitLayer::with_store(store)
        .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(3, Duration::from_secs(60))))
        .rule(Rule::new("burst", Scope::header("x-api-key"), Algorithm::token_bucket(0.001, 5)))
}

/// `/pay` behind `layer`, `/api/v1/rate-limits` beside it.
async fn serve<St: RateLimitStore>(layer: RateLimitLayer<St>) -> String {
    let app = Router::new()
        .route("/pay", post(|| async { "paid" }).layer(layer.clone()))
        .route("/api/v1/rate-limits", rate_limit_status_route(&layer));
    format!("http://{}", ezthrottle_test_support::serve(app).await)
}

async fn pay(base: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new().post(format!("{base}/pay")).header("x-api-key", key).send().await.expect("pay")
}

/// The caller's limits as the route answers them: (rule, limit, remaining, reset).
async fn budget(base: &str, key: &str) -> Vec<(String, u64, u64, u64)> {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/rate-limits"))
        .header("x-api-key", key)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    body["limits"]
        .as_array()
        .expect("limits")
        .iter()
        .map(|limit| {
            let number = |field: &str| limit[field].as_u64().unwrap_or_else(|| panic!("{field} in {limit}"));
            (limit["rule"].as_str().expect("rule").to_owned(), number("limit"), number("remaining"), number("reset"))
        })
        .collect()
}

async fn budget_is_read_without_counting<St: RateLimitStore>(store: St) {
    let base = serve(limits(store)).await;
    let fresh = budget(&base, ALICE).await;
    assert_eq!(fresh, [("per_key".to_owned(), 3, 3, 0), ("burst".to_owned(), 5, 5, 0)]);
    assert_eq!(budget(&base, ALICE).await, fresh, "reading counts nothing");
    for _ in 0..2 {
        assert_eq!(pay(&base, ALICE).await.status(), 200);
    }
    let used = budget(&base, ALICE).await;
    assert_eq!(used.iter().map(|(_, _, remaining, _)| *remaining).collect::<Vec<_>>(), [1, 3]);
    let (_, _, _, window_reset) = &used[0];
    assert!((50..=60).contains(window_reset), "{used:?}");
    assert_eq!(budget(&base, ALICE).await[0].2, 1, "still 1: reading counts nothing");
    assert_eq!(budget(&base, BOB).await, fresh, "another caller's budget is its own");
    assert_eq!(pay(&base, ALICE).await.status(), 200);
    assert_eq!(pay(&base, ALICE).await.status(), 429);
    assert_eq!(budget(&base, ALICE).await[0].2, 0);
}

#[tokio::test]
async fn a_callers_budget_is_read_without_counting_in_memory() {
    budget_is_read_without_counting(ezthrottle_tower::rate_limit::MemoryRateLimitStore::new()).await;
}

#[tokio::test]
async fn a_callers_budget_is_read_without_counting_in_redis() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let client = redis::Client::open(redis.url.as_str()).expect("url");
    budget_is_read_without_counting(RedisRateLimitStore::with_options(client, "rl:", Duration::from_secs(5))).await;
}

/// (allowed, rule, scope, remaining) of each event.
type Seen = Arc<Mutex<Vec<(bool, Option<String>, Option<String>, Option<u32>)>>>;

fn recording<St>(layer: RateLimitLayer<St>) -> (RateLimitLayer<St>, Seen) {
    let seen = Seen::default();
    let sink = Arc::clone(&seen);
    let layer = layer.on_decision(move |event| {
        sink.lock().expect("events").push((
            event.allowed,
            event.rule.map(str::to_owned),
            event.scope.map(str::to_owned),
            event.decision.map(|decision| decision.remaining),
        ));
    });
    (layer, seen)
}

#[tokio::test]
async fn the_audit_hook_sees_every_decision_and_no_credential() {
    let (layer, seen) = recording(limits(ezthrottle_tower::rate_limit::MemoryRateLimitStore::new()));
    let base = serve(layer).await;
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(pay(&base, ALICE).await.status().as_u16());
        }
        statuses
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
    budget(&base, ALICE).await; // reading the budget decides nothing
    let events = seen.lock().expect("events").clone();
    let outcomes: Vec<(bool, Option<&str>, Option<u32>)> =
        events.iter().map(|(allowed, rule, _, remaining)| (*allowed, rule.as_deref(), *remaining)).collect();
    assert_eq!(
        outcomes,
        [
            (true, Some("per_key"), Some(2)),
            (true, Some("per_key"), Some(1)),
            (true, Some("per_key"), Some(0)),
            (false, Some("per_key"), Some(0)),
        ]
    );
    let scopes: Vec<&str> = events.iter().filter_map(|(_, _, scope, _)| scope.as_deref()).collect();
    assert_eq!(scopes.len(), 4);
    for scope in &scopes {
        assert!(scope.len() == 64 && scope.bytes().all(|b| b.is_ascii_hexdigit()), "a digest: {scope}");
        assert!(!scope.contains("alice"), "{scope}");
    }
    assert!(scopes.iter().all(|scope| *scope == scopes[0]), "one caller, one scope: {scopes:?}");
    assert!(!format!("{events:?}").contains(ALICE));
}

#[tokio::test]
async fn the_audit_hook_sees_a_store_failure_decided_by_the_fail_mode() {
    let url = format!("redis://{}", ezthrottle_test_support::refused_addr().await);
    let unreachable = redis::Client::open(url.as_str()).expect("url");
    for (mode, status, allowed) in [(FailMode::Open, 200, true), (FailMode::Closed, 503, false)] {
        let store = RedisRateLimitStore::with_options(unreachable.clone(), "rl:", Duration::from_millis(200));
        let (layer, seen) = recording(limits(store).fail_mode(mode));
        let base = serve(layer).await;
        assert_eq!(pay(&base, ALICE).await.status(), status);
        assert_eq!(*seen.lock().expect("events"), [(allowed, None, None, None)], "{mode:?}");
    }
}

/// The recommended retry configuration, served as JSON and applied to the layer's answers.
#[tokio::test]
async fn the_retry_configuration_is_served_and_honours_retry_after() {
    let layer = RateLimitLayer::new().rule(Rule::new(
        "per_key",
        Scope::header("x-api-key"),
        Algorithm::sliding_window(1, Duration::from_secs(42)),
    ));
    let app = Router::new()
        .route("/pay", post(|| async { "paid" }).layer(layer))
        .route("/api/v1/retry-config", get(|| async { Json(RetryConfig::recommended()) }));
    let base = format!("http://{}", ezthrottle_test_support::serve(app).await);
    let served: Value = serde_json::from_slice(
        &reqwest::get(format!("{base}/api/v1/retry-config")).await.expect("get").bytes().await.expect("body"),
    )
    .expect("json");
    assert_eq!(
        served,
        serde_json::json!({
            "max_retries": 3, "retry_statuses": [429, 500, 502, 503, 504], "base_delay_secs": 1.0,
            "multiplier": 2.0, "jitter_secs": 1.0, "max_delay_secs": 30.0, "honor_retry_after": true,
            "max_retry_after_secs": 60.0,
        })
    );

    let retry = RetryConfig::recommended();
    let paid = pay(&base, ALICE).await;
    assert_eq!(retry.delay(0, paid.status(), paid.headers()), None, "a success is not retried");
    let refused = pay(&base, ALICE).await;
    assert_eq!(refused.status(), 429);
    // 42 s, less the time since the admission (a second on a loaded machine).
    let after: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((40..=42).contains(&after), "{after}");
    assert_eq!(retry.delay(0, refused.status(), refused.headers()), Some(Duration::from_secs(after)));
    assert_eq!(retry.delay(3, refused.status(), refused.headers()), None, "out of retries");
    let mut impatient = RetryConfig::recommended();
    impatient.max_retry_after = Duration::from_secs(10);
    assert_eq!(impatient.delay(0, refused.status(), refused.headers()), None, "longer than it waits");
    // Without Retry-After: the backoff, 1 s then 2 s, each with up to 1 s of jitter.
    for (retries, low) in [(0, 1), (1, 2), (2, 4)] {
        let delay = retry.delay(retries, http::StatusCode::BAD_GATEWAY, &http::HeaderMap::new()).expect("retried");
        assert!(delay >= Duration::from_secs(low) && delay <= Duration::from_secs(low + 1), "{retries}: {delay:?}");
    }
}
