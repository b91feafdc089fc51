//! Clients that try to get around the limits: made-up keys, the literal `anonymous`, a
//! flood of fresh keys against the memory store's bound; and configuration that cannot
//! be enforced.

use std::time::Duration;

use ezthrottle_tower::rate_limit::{
    Algorithm, InvalidRule, ManualClock, MemoryRateLimitStore, RateLimitLayer, Rule, Scope,
};
use http::StatusCode;

use super::support::{limited, request, send};

const MINUTE: Duration = Duration::from_secs(60);

fn one_per_minute(store: MemoryRateLimitStore) -> RateLimitLayer<MemoryRateLimitStore> {
    RateLimitLayer::with_store(store).rule(Rule::new(
        "per_key",
        Scope::header("x-api-key"),
        Algorithm::sliding_window(1, MINUTE),
    ))
}

#[tokio::test]
async fn the_literal_anonymous_does_not_join_the_shared_bucket() {
    let service = limited(&one_per_minute(MemoryRateLimitStore::new()));
    assert_eq!(send(&service, request("/", None)).await.status(), StatusCode::OK);
    assert_eq!(send(&service, request("/", None)).await.status(), StatusCode::TOO_MANY_REQUESTS, "shared bucket");
    assert_eq!(send(&service, request("/", Some("anonymous"))).await.status(), StatusCode::OK, "a key of its own");
    assert_eq!(send(&service, request("/", Some("anonymous"))).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn fresh_keys_per_request_are_stopped_by_the_fallback_rule() {
    let layer = one_per_minute(MemoryRateLimitStore::new()).rule(Rule::new(
        "global",
        Scope::global(),
        Algorithm::sliding_window(10, MINUTE),
    ));
    let service = limited(&layer);
    let mut admitted = 0;
    for i in 0..100 {
        let key = format!("made-up-{i}");
        if send(&service, request("/", Some(&key))).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10, "every fresh key has a full per-key bucket; the global rule is the ceiling");
}

#[tokio::test]
async fn a_flood_of_fresh_keys_fills_the_store_to_its_bound_then_shares_one_bucket() {
    let clock = ManualClock::new();
    let store = MemoryRateLimitStore::with_clock(clock.clone()).max_keys(64);
    assert_eq!(store.capacity(), 64);
    let service = limited(&one_per_minute(store.clone()));
    let mut admitted = 0;
    for i in 0..2_000 {
        let key = format!("flood-{i}");
        if send(&service, request("/", Some(&key))).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    // At most one bucket per tracked key, plus the overflow bucket's one request.
    assert!(admitted <= 64 + 1, "{admitted} of 2000 fresh keys admitted");
    assert!(admitted > 1, "tracked keys had their own buckets: {admitted}");
    assert!(store.len() <= 64 + 1, "the store holds {} keys", store.len());

    // A key tracked before the flood keeps its own bucket; newcomers share the overflow one.
    let newcomer = send(&service, request("/", Some("newcomer"))).await;
    assert_eq!(newcomer.status(), StatusCode::TOO_MANY_REQUESTS, "while full, a new key is limited, not waved through");

    // Once the flood's keys are idle (their state is a fresh one's), they make room: ten
    // newcomers get buckets of their own, not just the overflow bucket's one request (even
    // if all ten land in one shard: one evicts the idle key, one takes the overflow bucket).
    clock.advance(MINUTE);
    let mut admitted = 0;
    for i in 0..10 {
        let key = format!("newcomer-{i}");
        if send(&service, request("/", Some(&key))).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    assert!(admitted >= 2, "{admitted} of 10 newcomers admitted after the flood went idle");
    assert!(store.len() <= 64 + 1, "{}", store.len());
}

#[test]
fn a_rule_read_at_run_time_is_refused_with_its_name_and_field() {
    let cases = [
        (Algorithm::token_bucket(f64::NAN, 10), "rate_per_sec"),
        (Algorithm::token_bucket(1.0, 0), "burst"),
        (Algorithm::sliding_window(0, MINUTE), "limit"),
        (Algorithm::sliding_window(10, Duration::MAX), "window"),
    ];
    for (algorithm, field) in cases {
        let error: InvalidRule =
            RateLimitLayer::new().try_rule(Rule::new("from_config", Scope::global(), algorithm)).expect_err("unusable");
        assert_eq!((error.rule(), error.algorithm().field()), ("from_config", field), "{error}");
        assert!(error.to_string().starts_with(&format!("rate-limit rule \"from_config\": `{field}` ")), "{error}");
    }
    let layer = RateLimitLayer::new()
        .try_rule(Rule::new("fine", Scope::global(), Algorithm::sliding_window(1, Algorithm::MAX_PERIOD)))
        .expect("usable");
    assert_eq!(layer.metrics().allowed, 0);
}

#[tokio::test]
async fn the_longest_usable_periods_answer_without_overflow() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(u64::MAX / 4));
    let layer = RateLimitLayer::with_store(MemoryRateLimitStore::with_clock(clock.clone()))
        .rule(Rule::new("window", Scope::global(), Algorithm::sliding_window(1, Algorithm::MAX_PERIOD)))
        .rule(Rule::new(
            "bucket",
            Scope::global(),
            Algorithm::token_bucket(1.001 / Algorithm::MAX_PERIOD.as_secs_f64(), 1),
        ))
        .pace_headers(true);
    let service = limited(&layer);
    assert_eq!(send(&service, request("/", None)).await.status(), StatusCode::OK);
    let refused = send(&service, request("/", None)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > Algorithm::MAX_PERIOD.as_secs() / 2, "{retry_after}");
    assert_eq!(refused.headers()["x-ezthrottle-rps"], "0", "a rate below the pace resolution");
}
