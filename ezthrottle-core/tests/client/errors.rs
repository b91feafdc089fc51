//! Refusals: every one a typed error with status, message and retry time; invalid input
//! refused before the network.

use std::time::Duration;

use ezthrottle_core::protocol::time::to_unix_ms;
use ezthrottle_core::{EZThrottle, Error, Job, Origin, Webhook};

use crate::support::{Answer, Clients, TestServer, now_ms, refused_url};

async fn submit_to(proxy: &TestServer) -> Error {
    proxy.cloud_client().submit_job(&Job::new("https://api.example.com/x")).await.expect_err("refused")
}

/// The error of a submission to a proxy that always gives `answer`.
async fn refused_with(answer: Answer) -> Error {
    submit_to(&TestServer::always(move || answer.clone()).await).await
}

#[tokio::test]
async fn plan_limit_denial_keeps_retry_after_from_the_body() {
    let denial = serde_json::json!({"status": "denied", "error": "Plan limit exceeded", "retry_after": 3600, "breach_status": {}});
    let before = now_ms();
    let error = refused_with(Answer::json(429, denial)).await;
    let after = now_ms();
    assert!(matches!(error, Error::RateLimited { origin: Origin::Proxy, .. }), "{error:?}");
    let retry_at = error.retry_at().map(to_unix_ms).expect("retry_at computed");
    assert!((before + 3_600_000..=after + 3_600_000).contains(&retry_at), "{retry_at}");
    let text = error.to_string();
    assert!(text.starts_with("plan limit exceeded"), "{text}");
    assert!(text.contains("retry at 20"), "{text}");
}

#[tokio::test]
async fn ip_limit_uses_retry_after_seconds_and_headers_win() {
    let ip_limit = Answer::json(429, serde_json::json!({"error": "Too Many Requests", "retry_after_seconds": 300}));
    let before = now_ms();
    let retry_at = refused_with(ip_limit.clone()).await.retry_at().map(to_unix_ms).expect("retry_at");
    assert!(retry_at >= before + 300_000 && retry_at <= now_ms() + 300_000);

    // The header wins over the body; a date decades ahead is clamped to the 24 h horizon.
    let with_header = ip_limit.header("retry-after", "Wed, 21 Oct 2065 07:28:00 GMT");
    let before = now_ms();
    let retry_at = refused_with(with_header).await.retry_at().map(to_unix_ms).expect("retry_at");
    assert!((before + 86_400_000..=now_ms() + 86_400_000).contains(&retry_at), "{retry_at}");
}

#[tokio::test]
async fn forwarded_errors_are_unwrapped_with_their_status() {
    for status in [400u16, 404, 409, 500] {
        let proxy = TestServer::start(move |_| {
            Answer::proxied(status, serde_json::json!({"error": format!("refused with {status}")}))
        })
        .await;
        let error = submit_to(&proxy).await;
        assert_eq!(error.status().map(|s| s.as_u16()), Some(status), "{error:?}");
        assert!(matches!(error, Error::Api { origin: Origin::EZThrottle, .. }), "{error:?}");
        assert!(error.to_string().contains(&format!("refused with {status}")), "{error}");
        assert!(!error.is_not_sent() && !error.is_answer_unknown(), "an answer: {error:?}");
    }
}

#[tokio::test]
async fn forwarded_queue_full_keeps_its_retry_after() {
    let error = refused_with(Answer::proxied(429, serde_json::json!({"error": "queue full", "retry_at": 42}))).await;
    assert!(matches!(error, Error::RateLimited { origin: Origin::EZThrottle, .. }), "{error:?}");
    assert_eq!(error.retry_at().map(to_unix_ms), Some(42));
}

#[tokio::test]
async fn proxy_refusals_are_typed() {
    let error =
        refused_with(Answer::json(401, serde_json::json!({"error": "Unauthorized", "message": "Invalid API key"})))
            .await;
    assert!(matches!(error, Error::Unauthorized { origin: Origin::Proxy, .. }), "{error:?}");
    assert!(error.to_string().starts_with("invalid API key"), "{error}");

    let message = "Request body exceeds maximum size of 1MB";
    let error =
        refused_with(Answer::json(413, serde_json::json!({"error": "Request Too Large", "message": message}))).await;
    assert!(matches!(error, Error::PayloadTooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("1MB"), "{error}");

    let message = "Business key cannot use proxy endpoint";
    let error = refused_with(Answer::json(403, serde_json::json!({"error": "Forbidden", "message": message}))).await;
    assert!(matches!(error, Error::Forbidden { .. }), "{error:?}");

    let error = refused_with(Answer::text(502, "upstream down")).await;
    assert_eq!(error.status().map(|s| s.as_u16()), Some(502));
    assert!(error.to_string().contains("upstream down"), "{error}");
}

#[tokio::test]
async fn unreadable_answers_are_reported_not_panicked_on() {
    let error = refused_with(Answer::text(200, "<html>not json</html>")).await;
    assert!(matches!(error, Error::InvalidResponse { .. }), "{error:?}");
    assert!(error.to_string().contains("not json"), "{error}");

    let bad_status = serde_json::json!({"status": "allowed", "forwarded_response": {"status_code": 9999, "body": ""}});
    let error = refused_with(Answer::json(200, bad_status)).await;
    assert!(matches!(error, Error::InvalidResponse { .. }), "{error:?}");
}

#[tokio::test]
async fn connection_refused_is_not_sent() {
    let client = EZThrottle::builder().api_key("k").tracktags_url(refused_url().await).build().expect("client");
    let error = client.submit_job(&Job::new("https://api.example.com/x")).await.expect_err("refused");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert!(error.is_not_sent() && !error.is_answer_unknown(), "{error:?}");
    assert_eq!(error.status(), None);
    assert!(error.to_string().starts_with("EZThrottle unreachable at http://127.0.0.1:"), "{error}");
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_answer_unknown() {
    let slow =
        TestServer::always(|| Answer::proxied(201, crate::support::receipt("late")).after(Duration::from_secs(5)))
            .await;
    let client = EZThrottle::builder()
        .api_key("k")
        .tracktags_url(&slow.url)
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let error = client.submit_job(&Job::new("https://api.example.com/x")).await.expect_err("timed out");
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(error.is_answer_unknown() && !error.is_not_sent() && error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn invalid_input_fails_before_any_network_call() {
    let proxy = TestServer::always(|| Answer::proxied(201, crate::support::receipt("never"))).await;
    let client = proxy.cloud_client();

    let error = client.submit_job(&Job::new("")).await.expect_err("no url");
    assert!(matches!(&error, Error::InvalidInput { field, .. } if field == "url"), "{error:?}");
    let error = client.submit_job(&Job::new("/relative/path")).await.expect_err("relative");
    assert!(error.to_string().contains("relative"), "{error}");

    let mut job = Job::new("https://api.example.com/x");
    job.webhooks =
        vec![Webhook::new("https://a.example/h"), Webhook::new("https://b.example/h").has_quorum_vote(false)];
    job.webhook_quorum = 2;
    let error = client.submit_job(&job).await.expect_err("quorum");
    assert!(matches!(&error, Error::InvalidInput { field, .. } if field == "webhook_quorum"), "{error:?}");

    let error = client.create_webhook_secret("too-short", None).await.expect_err("short secret");
    assert!(matches!(&error, Error::InvalidInput { field, .. } if field == "primary_secret"), "{error:?}");
    let error = client.rotate_webhook_secret("long-enough-secret-1", "short").await.expect_err("short previous");
    assert!(matches!(&error, Error::InvalidInput { field, .. } if field == "secondary_secret"), "{error:?}");

    assert!(proxy.requests().is_empty(), "nothing may be sent: {:?}", proxy.requests());
}

#[test]
fn configuration_errors_are_clear() {
    let error = EZThrottle::builder().build().expect_err("no key");
    assert!(error.to_string().contains("EZTHROTTLE_API_KEY"), "{error}");
    let error = EZThrottle::builder().api_key("k").tracktags_url("tracktags.fly.dev").build().expect_err("relative");
    assert!(error.to_string().contains("tracktags_url"), "{error}");
    let error =
        EZThrottle::builder().direct("http://127.0.0.1:1").tracktags_url("http://x").build().expect_err("mixed");
    assert!(matches!(error, Error::Config(_)));
}

#[test]
fn the_api_key_never_prints() {
    let client = EZThrottle::builder().api_key("ck_live_supersecret").build().expect("client");
    let printed = format!("{client:?} {:?}", EZThrottle::builder().api_key("ck_live_supersecret"));
    assert!(!printed.contains("supersecret"), "{printed}");
}
