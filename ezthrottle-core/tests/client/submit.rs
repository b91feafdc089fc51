//! Submitting jobs: the exact bytes on the wire, in both modes.

use ezthrottle_core::{EZThrottle, ForwardOrFallback, Job, Method, SubmissionStatus, Webhook};

use crate::support::{Answer, Clients, TestServer, receipt, refused_url};

#[tokio::test]
async fn cloud_mode_sends_the_envelope_with_the_job_as_a_string() {
    let proxy = TestServer::always(|| Answer::proxied(201, receipt("job_1"))).await;
    let client = proxy.cloud_client();
    let mut job = Job::new("https://api.example.com/items");
    job.method = Method::POST;
    job.body = Some(r#"{"a":1}"#.into());

    let receipt = client.submit_job(&job).await.expect("accepted");

    assert_eq!(receipt.job_id, "job_1");
    assert_eq!(receipt.status, SubmissionStatus::Queued);
    assert_eq!(receipt.idempotent_key.as_deref(), Some("key_job_1"));
    assert!(!receipt.duplicate);
    let sent = proxy.only_request();
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, "/api/v1/proxy");
    assert_eq!(sent.headers["authorization"], "Bearer ck_test_key");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(
        sent.body_text(),
        r#"{"scope":"customer","metric_name":"","target_url":"https://ezthrottle.fly.dev/api/v1/jobs","method":"POST","headers":{"Content-Type":"application/json"},"body":"{\"url\":\"https://api.example.com/items\",\"method\":\"POST\",\"body\":\"{\\\"a\\\":1}\"}"}"#
    );
}

#[tokio::test]
async fn cloud_mode_uses_the_configured_ezthrottle_url() {
    let proxy = TestServer::always(|| Answer::proxied(201, receipt("job_2"))).await;
    let client = EZThrottle::builder()
        .api_key("k")
        .tracktags_url(format!("{}/", proxy.url))
        .ezthrottle_url("https://ezthrottle.internal.example/")
        .build()
        .expect("client");
    client.submit_job(&Job::new("https://api.example.com/x")).await.expect("accepted");
    assert_eq!(proxy.only_request().json()["target_url"], "https://ezthrottle.internal.example/api/v1/jobs");
}

#[tokio::test]
async fn duplicates_answer_the_original_job() {
    let proxy = TestServer::always(|| {
        Answer::proxied(200, serde_json::json!({"job_id": "job_orig", "status": "queued", "duplicate": true}))
    })
    .await;
    let receipt = proxy.cloud_client().submit_job(&Job::new("https://api.example.com/x")).await.expect("accepted");
    assert_eq!(receipt.job_id, "job_orig");
    assert!(receipt.duplicate);
    assert_eq!(receipt.idempotent_key, None);
}

#[tokio::test]
async fn racing_status_and_keys_with_separators_are_kept() {
    let proxy = TestServer::always(|| {
        Answer::proxied(201, serde_json::json!({"job_id": "j", "status": "racing", "idempotent_key": "cust_1:a/b"}))
    })
    .await;
    let receipt = proxy.cloud_client().submit_job(&Job::new("https://api.example.com/x")).await.expect("accepted");
    assert_eq!(receipt.status, SubmissionStatus::Racing);
    assert_eq!(receipt.idempotent_key.as_deref(), Some("cust_1:a/b"));
}

#[tokio::test]
async fn direct_mode_posts_the_job_itself() {
    let engine = TestServer::always(|| Answer::json(201, receipt("job_d"))).await;
    let mut job = Job::new("https://api.example.com/items");
    job.webhooks.push(Webhook::new("https://app.example.com/hook"));
    job.idempotent_key = Some("k-1".into());

    let receipt = engine.direct_client().submit_job(&job).await.expect("accepted");

    assert_eq!(receipt.job_id, "job_d");
    let sent = engine.only_request();
    assert_eq!(sent.path, "/api/v1/jobs");
    assert_eq!(sent.headers["authorization"], "Bearer ck_test_key");
    assert_eq!(
        sent.body_text(),
        r#"{"url":"https://api.example.com/items","method":"GET","webhooks":[{"url":"https://app.example.com/hook","has_quorum_vote":true}],"idempotent_key":"k-1"}"#
    );
}

#[tokio::test]
async fn direct_mode_without_a_key_sends_no_authorization() {
    let engine = TestServer::always(|| Answer::json(201, receipt("job_open"))).await;
    let client = EZThrottle::builder().direct(&engine.url).build().expect("client");
    client.submit_job(&Job::new("https://api.example.com/x")).await.expect("accepted");
    assert!(engine.only_request().headers.get("authorization").is_none());
}

#[tokio::test]
#[allow(deprecated)]
async fn legacy_queue_request_adds_a_voting_webhook() {
    let engine = TestServer::always(|| Answer::json(201, receipt("job_q"))).await;
    engine
        .direct_client()
        .queue_request(Job::new("https://api.example.com/x"), "https://app.example.com/hook")
        .await
        .expect("accepted");
    assert_eq!(
        engine.only_request().json()["webhooks"],
        serde_json::json!([{"url": "https://app.example.com/hook", "has_quorum_vote": true}])
    );
}

#[tokio::test]
async fn forward_or_fallback_falls_back_only_when_not_sent() {
    let client = EZThrottle::builder().direct(refused_url().await).build().expect("client");
    let outcome = client.forward_or_fallback(&Job::new("https://api.example.com/x"), || async { 7 }).await;
    match outcome.expect("fallback ran") {
        ForwardOrFallback::FellBack { value, reason } => {
            assert_eq!(value, 7);
            assert!(reason.is_not_sent(), "{reason}");
        }
        other => panic!("expected the fallback, got {other:?}"),
    }

    let refusing = TestServer::always(|| Answer::json(400, serde_json::json!({"error": "url: is required"}))).await;
    let ran = std::sync::atomic::AtomicBool::new(false);
    let outcome = refusing
        .direct_client()
        .forward_or_fallback(&Job::new("https://api.example.com/x"), || async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .await;
    let error = outcome.expect_err("EZThrottle's own 4xx is an error");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "the fallback must not run on a 4xx");

    let accepting = TestServer::always(|| Answer::json(201, receipt("job_ok"))).await;
    let outcome = accepting.direct_client().forward_or_fallback(&Job::new("https://a.example"), || async {}).await;
    assert!(matches!(outcome, Ok(ForwardOrFallback::Forwarded(r)) if r.job_id == "job_ok"));
}

#[tokio::test]
async fn every_call_sends_the_sdk_user_agent_even_with_the_users_http_client() {
    let engine = TestServer::always(|| Answer::json(201, receipt("job_ua"))).await;
    let own = reqwest::Client::builder().user_agent("my-app/1.0").build().expect("an HTTP client");
    let client = EZThrottle::builder().direct(&engine.url).http_client(own).build().expect("client");
    client.submit_job(&Job::new("https://api.example.com/x")).await.expect("accepted");
    let _ = client.get_job("job_ua").await;
    let _ = client.get_webhook_secret().await;
    let cloud = engine.cloud_client();
    cloud.submit_job(&Job::new("https://api.example.com/x")).await.expect_err("not a proxy answer");

    let expected = format!("ezthrottle-rs/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(ezthrottle_core::USER_AGENT, expected);
    let sent = engine.requests();
    assert_eq!(sent.len(), 4, "{sent:#?}");
    for request in sent {
        assert_eq!(request.header("user-agent"), Some(expected.as_str()), "{} {}", request.method, request.path);
    }
}

#[test]
fn the_client_and_builders_are_cheap_to_share_across_tasks() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<EZThrottle>();
    shareable::<ezthrottle_core::Step>();
    shareable::<ezthrottle_core::ForwardToEZThrottle>();
    shareable::<ezthrottle_core::webhook::Verifier>();
    fn error_is_send_sync<T: std::error::Error + Send + Sync + 'static>() {}
    error_is_send_sync::<ezthrottle_core::Error>();
}
