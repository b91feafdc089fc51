use std::time::Duration;

use ezthrottle_tower::rate_limit::{Algorithm, FailMode, RateLimitLayer, RedisRateLimitStore, Rule, Scope};
use http::StatusCode;

use super::support::{RedisServer, burst, limited, request, send};

fn layer(url: &str, algorithm: Algorithm) -> RateLimitLayer<RedisRateLimitStore> {
    RateLimitLayer::with_store(RedisRateLimitStore::open(url).expect("url")).rule(Rule::new(
        "per_user",
        Scope::header("x-api-key"),
        algorithm,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_one_redis_enforce_one_limit() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    for algorithm in [Algorithm::sliding_window(50, Duration::from_secs(60)), Algorithm::token_bucket(0.001, 50)] {
        let (first, second) = (limited(&layer(&redis.url, algorithm)), limited(&layer(&redis.url, algorithm)));
        let user = format!("shared-{:?}", algorithm.limit() as f64 + algorithm.rate_per_sec());
        let (a, b) = tokio::join!(burst(&first, 100, &user), burst(&second, 100, &user));
        assert_eq!(a + b, 50, "{algorithm:?}: 200 concurrent requests over two instances, one limit");
    }
}

#[tokio::test]
async fn redis_answers_carry_the_same_headers() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let service = limited(&layer(&redis.url, Algorithm::sliding_window(2, Duration::from_secs(30))));
    let first = send(&service, request("/", Some("h"))).await;
    assert_eq!(first.headers()["ratelimit-remaining"], "1");
    assert_eq!(first.headers()["ratelimit-reset"], "30");
    send(&service, request("/", Some("h"))).await;
    let refused = send(&service, request("/", Some("h"))).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn flushed_scripts_are_loaded_again() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let service = limited(&layer(&redis.url, Algorithm::token_bucket(1.0, 5)));
    assert_eq!(send(&service, request("/", Some("f"))).await.status(), StatusCode::OK);
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut connection).await.unwrap();
    let response = send(&service, request("/", Some("f"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ratelimit-remaining"], "3", "the count survived; only the scripts were reloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_fails_open_or_closed_as_configured() {
    let Some(mut redis) = RedisServer::start_or_skip().await else { return };
    let open = layer(&redis.url, Algorithm::token_bucket(1.0, 1));
    let closed = layer(&redis.url, Algorithm::token_bucket(1.0, 1)).fail_mode(FailMode::Closed);
    let (open_service, closed_service) = (limited(&open), limited(&closed));
    assert_eq!(send(&open_service, request("/", Some("k"))).await.status(), StatusCode::OK);
    assert_eq!(send(&closed_service, request("/", Some("k"))).await.status(), StatusCode::TOO_MANY_REQUESTS);

    redis.stop().await;

    let started = std::time::Instant::now();
    for _ in 0..3 {
        let response = send(&open_service, request("/", Some("k"))).await;
        assert_eq!(response.status(), StatusCode::OK, "fail open lets requests through");
        assert!(response.headers().get("ratelimit-limit").is_none());
        let response = send(&closed_service, request("/", Some("k"))).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "fail closed refuses");
        assert_eq!(response.headers()["retry-after"], "1");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "bounded: {:?}", started.elapsed());
    assert_eq!(open.metrics().store_errors, 3);
    assert_eq!(closed.metrics().store_errors, 3);
}

#[tokio::test]
async fn redis_key_names_are_digests_never_the_values_clients_send() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let secret = "sk_live_0123456789abcdef";
    let address = "203.0.113.7";
    let layer = layer(&redis.url, Algorithm::sliding_window(5, Duration::from_secs(30))).rule(Rule::new(
        "per_ip",
        Scope::client_ip_from_header("x-forwarded-for"),
        Algorithm::token_bucket(1.0, 5),
    ));
    let service = limited(&layer);
    let mut hostile = request("/", Some(secret));
    hostile.headers_mut().insert("x-forwarded-for", http::HeaderValue::from_static("203.0.113.7, 10.0.0.1"));
    assert_eq!(send(&service, hostile).await.status(), StatusCode::OK);
    assert_eq!(send(&service, request("/", Some("anonymous"))).await.status(), StatusCode::OK);
    assert_eq!(send(&service, request("/", None)).await.status(), StatusCode::OK);

    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    for _ in 0..1_000 {
        let (next, batch): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(100).query_async(&mut connection).await.unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    let digest = |key: &str| key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    for key in &keys {
        for raw in [secret, address, "10.0.0.1"] {
            assert!(!key.contains(raw), "{key:?} shows {raw:?}");
        }
        let scope = key.rsplit('\n').next().unwrap_or_default();
        assert!(digest(scope) || scope == "anonymous", "{key:?}");
    }
    let per_user = keys.iter().filter(|key| key.starts_with("ezthrottle:rl:per_user\n")).count();
    let per_ip = keys.iter().filter(|key| key.starts_with("ezthrottle:rl:per_ip\n")).count();
    // per_user: the secret's digest, the digest of the text "anonymous", the anonymous bucket;
    // per_ip: the address's digest and the anonymous bucket (no header).
    assert_eq!((per_user, per_ip, keys.len()), (3, 2, 5), "{keys:?}");
    assert_eq!(keys.iter().filter(|key| key.ends_with("\nanonymous")).count(), 2, "{keys:?}");
}
