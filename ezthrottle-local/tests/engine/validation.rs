use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_400_naming_the_field() {
    let (engine, api) = start(fast_engine()).await;
    let hook = "http://127.0.0.1:9/hook";
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "body:"),
        ("[]".into(), "body:"),
        (json!({"method": "GET"}).to_string(), "url:"),
        (json!({"url": "/relative"}).to_string(), "url:"),
        (json!({"url": "ftp://host/x"}).to_string(), "url:"),
        (json!({"url": "http://127.0.0.1:9/x", "method": "BREW"}).to_string(), "method:"),
        (json!({"url": "http://127.0.0.1:9/x", "method": "NOT A METHOD"}).to_string(), "method:"),
        (json!({"url": "http://127.0.0.1:9/x", "webhooks": [{"url": hook}], "webhook_quorum": 2}).to_string(), "webhook_quorum:"),
        (
            json!({"url": "http://127.0.0.1:9/x", "fallback_job": {"url": "http://127.0.0.1:9/y", "trigger": {"type": "on_fire"}}}).to_string(),
            "fallback_job.trigger.type:",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "fallback_job": {"url": "http://127.0.0.1:9/y", "trigger": {"type": "on_error", "codes": []}}}).to_string(),
            "fallback_job.trigger.codes:",
        ),
        (json!({"url": "http://127.0.0.1:9/x", "on_success": {"url": "nope"}}).to_string(), "on_success.url:"),
        (json!({"url": "http://127.0.0.1:9/x", "regions": "iad"}).to_string(), "regions:"),
        (json!({"url": "http://127.0.0.1:9/x", "headers": {"Host": "internal.example"}}).to_string(), "headers:"),
        (json!({"url": "http://127.0.0.1:9/x", "headers": {"Content-Length": "0"}}).to_string(), "headers:"),
        (json!({"url": "http://127.0.0.1:9/x", "headers": {"transfer-encoding": "chunked"}}).to_string(), "headers:"),
        (json!({"url": "http://127.0.0.1:9/x", "headers": {"Connection": "close"}}).to_string(), "headers:"),
        (
            json!({"url": "http://127.0.0.1:9/x", "fallback_job": {"url": "http://127.0.0.1:9/y", "trigger": {},
                "headers": {"X-EZThrottle-Job-Id": "job_of_someone_else"}}})
            .to_string(),
            "fallback_job.headers:",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = api.submit_raw(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(field), "{body}: expected {field} in {answer}");
    }
    let response = api
        .http
        .post(format!("{}/api/v1/webhook-secrets", api.base))
        .bearer_auth(KEY)
        .body(json!({"primary_secret": "too_short"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: serde_json::Value = response.json_value().await;
    assert!(answer["error"].as_str().unwrap().starts_with("primary_secret:"), "{answer}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_declared_or_chunked() {
    let (engine, api) = start(fast_engine().max_body_bytes(1024)).await;
    let big = json!({"url": "http://127.0.0.1:9/x", "body": "x".repeat(2000)}).to_string();
    let (status, answer) = api.submit_raw(big.clone()).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("body:"));
    // Chunked: no Content-Length, the limit still applies while streaming.
    let chunks: Vec<Result<http_body::Frame<bytes::Bytes>, std::io::Error>> =
        big.as_bytes().chunks(100).map(|c| Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(c)))).collect();
    let response = api
        .http
        .post(format!("{}/api/v1/jobs", api.base))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(chunks))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Default limit is 1 MiB.
    let (engine2, api2) = start(fast_engine()).await;
    let huge = json!({"url": "http://127.0.0.1:9/x", "body": "x".repeat(1024 * 1024 + 1)}).to_string();
    assert_eq!(api2.submit_raw(huge).await.0, 413);
    engine2.shutdown().await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_with_retry_after_but_duplicates_still_answer() {
    let target = Server::start().await;
    // One request every 100 s: accepted jobs stay queued.
    let (engine, api) = start(
        fast_engine()
            .pace(target.host(), ezthrottle_core::Pace::new(0.01, 1).unwrap())
            .max_queued_jobs(2)
            .admission_retry_after(Duration::from_secs(5)),
    )
    .await;
    let first = api.submit_ok(&job(&target.url("/ok?1"), json!({"idempotent_key": "q1"}))).await;
    target.wait_hits("/ok", 1).await; // the first one starts at once
    api.submit_ok(&job(&target.url("/ok?2"), json!({}))).await;
    api.submit_ok(&job(&target.url("/ok?3"), json!({}))).await;
    let response = api.submit_response(job(&target.url("/ok?4"), json!({})).to_string()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "5");
    let answer: serde_json::Value = response.json_value().await;
    assert!(answer["error"].as_str().unwrap().starts_with("queue:"), "{answer}");
    let response = api.submit_response(job(&target.url("/ok?5"), json!({})).to_string()).await;
    assert_eq!(response.headers()["retry-after"], "10", "consecutive refusals double Retry-After");
    // Idempotency is checked before admission.
    let (status, answer) = api.submit(&job(&target.url("/ok?1"), json!({"idempotent_key": "q1"}))).await;
    assert_eq!(status, 200);
    assert_eq!(answer["job_id"], first.as_str());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_tenant_asks_for_is_bounded_and_the_400_names_the_field() {
    let (engine, api) = start(fast_engine()).await;
    let now_ms =
        u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let url = "http://127.0.0.1:9/x";
    let hooks: Vec<_> = (0..11).map(|i| json!({"url": format!("http://127.0.0.1:9/hook/{i}")})).collect();
    let cases = [
        (json!({"url": url, "retry_at": u64::MAX}), "retry_at: is more than 7 days ahead"),
        (json!({"url": url, "retry_at": now_ms + 8 * 86_400_000}), "retry_at: is more than 7 days ahead"),
        (
            json!({"url": url, "fallback_job": {"url": url, "trigger": {"type": "on_timeout", "timeout_ms": u64::MAX}}}),
            "fallback_job.trigger.timeout_ms: must be at most 1 hour",
        ),
        (
            json!({"url": url, "on_failure": {"url": url}, "on_failure_timeout_ms": 30 * 86_400_000u64}),
            "on_failure_timeout_ms: must be at most 7 days",
        ),
        (
            json!({"url": url, "retry_policy": {"max_retries": 1_000_000}}),
            "retry_policy.max_retries: must be at most 10",
        ),
        (
            json!({"url": url, "on_success": {"url": url, "webhooks": hooks}}),
            "on_success.webhooks: at most 10 webhooks per job",
        ),
    ];
    for (job, error) in cases {
        let (status, answer) = api.submit(&job).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some(error)), "{job}");
    }
    // A refused job holds no queue slot: the engine still has room for everyone.
    let (status, _) = api.submit(&json!({"url": url, "retry_at": now_ms + 60_000})).await;
    assert_eq!(status, 201);
    engine.shutdown().await;
}
