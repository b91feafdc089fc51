use std::time::Duration;

use ezthrottle_tower::rate_limit::{
    Algorithm, HeaderStyle, ManualClock, MemoryRateLimitStore, RateLimitLayer, Rule, Scope,
};
use http::StatusCode;

use super::support::{body_json, burst, limited, request, send};

const SECOND: Duration = Duration::from_secs(1);

fn per_user(algorithm: Algorithm) -> (ManualClock, RateLimitLayer<MemoryRateLimitStore>) {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::with_store(MemoryRateLimitStore::with_clock(clock.clone())).rule(Rule::new(
        "per_user",
        Scope::header("x-api-key"),
        algorithm,
    ));
    (clock, layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_admits_exactly_its_burst_then_its_refill() {
    let (clock, layer) = per_user(Algorithm::token_bucket(5.0, 10));
    let service = limited(&layer);
    assert_eq!(burst(&service, 50, "alice").await, 10, "exactly the burst of 50 simultaneous requests");
    clock.advance(SECOND);
    assert_eq!(burst(&service, 50, "alice").await, 5, "one second refills exactly 5");
    clock.advance(Duration::from_millis(400));
    assert_eq!(burst(&service, 50, "alice").await, 2, "0.4 s refills 2");
    let metrics = layer.metrics();
    assert_eq!((metrics.allowed, metrics.refused, metrics.store_errors), (17, 133, 0));
}

#[tokio::test]
async fn sliding_window_never_admits_more_than_its_limit_in_any_window() {
    let (clock, layer) = per_user(Algorithm::sliding_window(10, SECOND));
    let service = limited(&layer);
    let mut admitted = Vec::new();
    let mut now = Duration::ZERO;
    for step in 0..600u64 {
        let status = send(&service, request("/", Some("bob"))).await.status();
        if status == StatusCode::OK {
            admitted.push(now);
        }
        // Uneven steps: bursts and gaps.
        let advance = Duration::from_millis([3, 1, 40, 7, 0, 120][(step % 6) as usize]);
        clock.advance(advance);
        now += advance;
    }
    for (i, start) in admitted.iter().enumerate() {
        let in_window = admitted[i..].iter().take_while(|at| **at - *start < SECOND).count();
        assert!(in_window <= 10, "{in_window} admissions in the second from {start:?}");
    }
    let elapsed_windows = (now.as_secs_f64()).ceil() as usize;
    assert!(admitted.len() >= elapsed_windows * 5, "it admits steadily: {} in {now:?}", admitted.len());
}

#[tokio::test]
async fn scopes_are_independent() {
    let clock = ManualClock::new();
    let layer = RateLimitLayer::with_store(MemoryRateLimitStore::with_clock(clock))
        .rule(Rule::new("global", Scope::global(), Algorithm::sliding_window(6, SECOND)))
        .rule(Rule::new("per_user", Scope::header("x-api-key"), Algorithm::sliding_window(2, SECOND)))
        .rule(Rule::new("per_route", Scope::route(), Algorithm::sliding_window(3, SECOND)));
    let service = limited(&layer);
    let status = |path: &'static str, user: &'static str| {
        let service = service.clone();
        async move { send(&service, request(path, Some(user))).await.status() }
    };
    assert_eq!(status("/a", "u1").await, StatusCode::OK);
    assert_eq!(status("/a", "u1").await, StatusCode::OK);
    let refused = send(&service, request("/b", Some("u1"))).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "u1 used its 2");
    assert_eq!(body_json(refused).await["limit"], "per_user");
    assert_eq!(status("/a", "u2").await, StatusCode::OK, "u2 has its own limit");
    let refused = send(&service, request("/a", Some("u3"))).await;
    assert_eq!(body_json(refused).await["limit"], "per_route", "/a used its 3");
    assert_eq!(status("/b", "u3").await, StatusCode::OK);
    // Counted globally so far (a refusal by another rule still counts): u1 2 + 1 refused,
    // u2 1, u3 1 refused + 1 = 6, the global limit.
    let refused = send(&service, request("/c", Some("u4"))).await;
    assert_eq!(body_json(refused).await["limit"], "global");
}

#[tokio::test]
async fn headers_are_correct_and_monotone_and_refusals_say_when() {
    let (_clock, layer) = per_user(Algorithm::sliding_window(3, Duration::from_secs(60)));
    let service = limited(&layer.pace_headers(true));
    let mut previous = u64::MAX;
    for expected_remaining in [2u64, 1, 0] {
        let response = send(&service, request("/", Some("carol"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        let number = |name: &str| headers[name].to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(number("ratelimit-limit"), 3);
        assert_eq!(number("ratelimit-remaining"), expected_remaining);
        assert!(number("ratelimit-remaining") < previous);
        previous = number("ratelimit-remaining");
        assert_eq!(number("x-ratelimit-remaining"), expected_remaining);
        assert_eq!(number("ratelimit-reset"), 60);
        assert_eq!(headers["x-ezthrottle-rps"], "0.05");
        assert_eq!(headers["x-ezthrottle-max-concurrent"], "1");
    }
    let refused = send(&service, request("/", Some("carol"))).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "60");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(refused.headers()["content-type"], "application/json");
    assert!(refused.body().is_refusal());
    assert_eq!(
        body_json(refused).await,
        serde_json::json!({"error": "rate limit exceeded", "limit": "per_user", "retry_after": 60})
    );
}

#[tokio::test]
async fn header_styles_are_configurable() {
    let (_clock, layer) = per_user(Algorithm::token_bucket(1.0, 5));
    let standard = send(&limited(&layer.clone().header_style(HeaderStyle::Standard)), request("/", Some("d"))).await;
    assert!(standard.headers().contains_key("ratelimit-limit"));
    assert!(!standard.headers().contains_key("x-ratelimit-limit"));
    let legacy = send(&limited(&layer.header_style(HeaderStyle::Legacy)), request("/", Some("e"))).await;
    assert!(!legacy.headers().contains_key("ratelimit-limit"));
    assert_eq!(legacy.headers()["x-ratelimit-limit"], "5");
}

#[test]
#[should_panic(expected = "rate-limit rule \"bad\": `rate_per_sec` must be finite and above zero, got 0")]
fn an_unusable_rule_is_refused_at_start_up() {
    let _ = RateLimitLayer::new().rule(Rule::new("bad", Scope::global(), Algorithm::token_bucket(0.0, 10)));
}
