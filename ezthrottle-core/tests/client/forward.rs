//! `ForwardToEZThrottle`: built from the request that failed, handed over intact.

use bytes::Bytes;
use ezthrottle_core::protocol::time::from_unix_ms;
use ezthrottle_core::{
    CallFailure, FailedCall, ForwardBuildError, ForwardToEZThrottle, Forwardable, KeepRequest, Method, StatusCode,
    Step, StepOutcome, Webhook,
};

use crate::support::{Answer, Clients, TestServer, receipt, refused_url};

#[test]
fn from_an_http_request_keeps_end_to_end_headers_and_the_body() {
    let request = http::Request::post("https://api.example.com/charge?x=1")
        .header("authorization", "Bearer t0k")
        .header("content-type", "application/json")
        .header("connection", "keep-alive")
        .header("host", "api.example.com")
        .header("x-trace", "a")
        .header("x-trace", "b")
        .body(Bytes::from_static(br#"{"amount":100}"#))
        .expect("request");
    let job = ForwardToEZThrottle::from_http_request(&request)
        .expect("forwardable")
        .map_step(|step| step.idempotent_key("k"))
        .to_job();
    assert_eq!(job.method, Method::POST);
    assert_eq!(job.url, "https://api.example.com/charge?x=1");
    assert_eq!(job.body.as_deref(), Some(r#"{"amount":100}"#));
    assert_eq!(
        job.headers.into_iter().collect::<Vec<_>>(),
        vec![
            ("authorization".to_owned(), "Bearer t0k".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-trace".to_owned(), "a, b".to_owned()),
        ]
    );
}

#[test]
fn requests_that_cannot_be_carried_are_refused_with_the_reason() {
    let relative = http::Request::get("/charge").body(Bytes::new()).expect("request");
    assert!(matches!(ForwardToEZThrottle::from_http_request(&relative), Err(ForwardBuildError::Url { .. })));

    let binary = http::Request::post("https://a.example/x").body(Bytes::from_static(&[0xff, 0xfe])).expect("request");
    assert_eq!(ForwardToEZThrottle::from_http_request(&binary), Err(ForwardBuildError::NonUtf8Body));

    let header = http::HeaderValue::from_bytes(&[0xe9]).expect("opaque header value");
    let opaque = http::Request::get("https://a.example/x").header("x-name", header).body(Bytes::new()).expect("req");
    assert_eq!(ForwardToEZThrottle::from_http_request(&opaque), Err(ForwardBuildError::NonUtf8Header("x-name".into())));
}

#[test]
fn from_a_reqwest_request_needs_a_buffered_body() {
    let client = reqwest::Client::new();
    let request = client
        .put("https://api.example.com/items/1")
        .header("authorization", "Bearer t")
        .body("payload")
        .build()
        .expect("request");
    let forward = ForwardToEZThrottle::from_reqwest(&request).expect("buffered");
    assert_eq!(forward.method(), Method::PUT);
    assert_eq!(forward.url(), "https://api.example.com/items/1");
    assert_eq!(forward.to_job().body.as_deref(), Some("payload"));

    let stream = futures_stream();
    let streaming = client.post("https://api.example.com/upload").body(stream).build().expect("request");
    assert_eq!(ForwardToEZThrottle::from_reqwest(&streaming), Err(ForwardBuildError::StreamingBody));
}

fn futures_stream() -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(b"chunk"))];
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[test]
fn defaults_are_performance_with_the_credential_key() {
    let forward = ForwardToEZThrottle::get("https://api.example.com/x");
    let (first, second) = (forward.to_job(), forward.to_job());
    assert!(first.idempotent_key.is_some());
    assert_eq!(first.idempotent_key, second.idempotent_key, "the same request is one job");
    let other_caller = forward.clone().map_step(|step| step.header("Authorization", "Bearer other")).to_job();
    assert_ne!(first.idempotent_key, other_caller.idempotent_key, "another caller is another job");
    assert!(!forward.step().is_frugal());
    assert_eq!(forward.forward_request(), Some(forward.clone()));
    assert_eq!(forward.to_string(), "forward GET https://api.example.com/x to EZThrottle");
}

#[tokio::test]
async fn the_client_forwards_it_intact() {
    let engine = TestServer::always(|| Answer::json(201, receipt("job_fwd"))).await;
    let forward = ForwardToEZThrottle::new(
        Step::new("https://api.example.com/charge")
            .method(Method::POST)
            .body(r#"{"amount":100}"#)
            .header("Authorization", "Bearer t0k")
            .idempotent_key("charge-42")
            .metadata_entry("order", "o-42")
            .webhook(Webhook::new("https://app.example.com/hook"))
            .regions(["iad"])
            .retry_at(from_unix_ms(1_800_000_000_000).expect("instant")),
    );
    let outcome = engine.direct_client().forward(&forward).await.expect("forwarded");
    assert!(matches!(&outcome, StepOutcome::Forwarded(r) if r.job_id == "job_fwd"), "{outcome:?}");
    assert_eq!(
        engine.only_request().json(),
        serde_json::json!({
            "url": "https://api.example.com/charge",
            "method": "POST",
            "headers": {"Authorization": "Bearer t0k"},
            "body": "{\"amount\":100}",
            "metadata": {"order": "o-42"},
            "webhooks": [{"url": "https://app.example.com/hook", "has_quorum_vote": true}],
            "regions": ["iad"],
            "retry_at": 1_800_000_000_000u64,
            "idempotent_key": "charge-42",
        })
    );
}

const TOKEN: &str = "Bearer sk_live_secret123";
const BODY: &str = r#"{"card":"4242"}"#;

fn authenticated_post(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("authorization", TOKEN)
        .header("content-type", "application/json")
        .header("idempotency-key", "pay-1")
        .body(BODY)
}

#[tokio::test]
async fn a_failed_call_keeps_the_request_that_was_made() {
    let api = TestServer::always(|| Answer::text(503, "busy").header("retry-after", "7")).await;
    let url = format!("{}/pay?region=eu", api.url);

    let failed = authenticated_post(&url).send_keeping_request().await.expect_err("a 503 is an error");

    assert_eq!(failed.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(failed.failure(), CallFailure::Status(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(failed.response_headers().and_then(|h| h.get("retry-after")).map(|v| v.as_bytes()), Some(&b"7"[..]));
    let job = failed.request().expect("kept").to_job();
    assert_eq!((job.method, job.url.as_str(), job.body.as_deref()), (Method::POST, url.as_str(), Some(BODY)));
    assert_eq!(job.headers.get("authorization").map(String::as_str), Some(TOKEN));
    assert_eq!(job.idempotent_key.as_deref(), Some("pay-1"), "the caller's key wins");
    assert_eq!(failed.to_string(), format!("POST {url} failed: the API answered 503 Service Unavailable"));
    assert!(std::error::Error::source(&failed).is_some_and(|source| source.is::<reqwest::Error>()));
    assert_eq!(api.requests().len(), 1);

    for shown in [format!("{failed:?}"), format!("{failed:#?}")] {
        assert!(!shown.contains("sk_live_secret123") && !shown.contains("4242"), "{shown}");
        assert!(shown.contains("authorization") && shown.contains("retry-after"), "{shown}");
    }
}

#[tokio::test]
async fn a_call_that_was_not_sent_says_so_and_a_2xx_is_not_an_error() {
    let failed = authenticated_post(&format!("{}/pay", refused_url().await)).send_keeping_request().await.unwrap_err();
    assert_eq!(failed.failure(), CallFailure::NotSent);
    assert_eq!(failed.status(), None);
    assert!(failed.request().is_some());

    let api = TestServer::always(|| Answer::text(201, "paid")).await;
    let response = authenticated_post(&api.url).send_keeping_request().await.expect("a 201 is not an error");
    assert_eq!(response.text().await.ok().as_deref(), Some("paid"));
}

#[tokio::test]
async fn a_request_that_cannot_be_kept_is_not_offered_for_forwarding() {
    let api = TestServer::always(|| Answer::text(429, "slow down")).await;
    let streaming = reqwest::Client::new().post(&api.url).body(futures_stream());
    let failed = streaming.send_keeping_request().await.unwrap_err();
    assert_eq!(failed.failure(), CallFailure::RateLimited);
    assert!(failed.request().is_none(), "a streaming body cannot be copied");

    let bare = reqwest::get(&api.url).await.and_then(reqwest::Response::error_for_status).unwrap_err();
    let failed = FailedCall::from(bare);
    assert!(failed.request().is_none(), "a bare reqwest::Error does not know its request");
    assert_eq!(failed.status(), Some(StatusCode::TOO_MANY_REQUESTS));
}
