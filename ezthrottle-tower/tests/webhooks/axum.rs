use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use ezthrottle_core::inbox::{StepDelivery, WebhookInbox};
use ezthrottle_core::webhook::Verifier;
use ezthrottle_core::webhook::{SecretSlot, sign};
use ezthrottle_core::{DeliveryStatus, EZThrottle, Error, Step, StepType, Webhook};
use ezthrottle_local::Engine;
use ezthrottle_tower::axum::webhook_routes;
use ezthrottle_tower::webhook::VerifiedWebhook;
use reqwest::StatusCode;

use super::support::{OLD_SECRET, SECRET, http, now, payload_json, serve};

async fn secret_handler(delivery: VerifiedWebhook) -> String {
    format!("{}:{:?}", delivery.payload.job_id, delivery.secret())
}

fn verifying_router(verifier: Verifier, limit: usize) -> Router {
    Router::new().route("/hook", post(secret_handler)).layer(DefaultBodyLimit::max(limit)).with_state(verifier)
}

async fn post_signed(url: &str, body: &str, header: Option<String>) -> (StatusCode, String) {
    let mut request = http().post(url).header("content-type", "application/json").body(body.to_owned());
    if let Some(header) = header {
        request = request.header("X-EZThrottle-Signature", header);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.text().await.expect("text"))
}

#[tokio::test]
async fn every_rejection_gets_its_status() {
    let addr = serve(verifying_router(Verifier::new(SECRET), 2048)).await;
    let url = format!("http://{addr}/hook");
    let body = payload_json("job_a", None);
    let t = now();

    let ok = post_signed(&url, &body, Some(sign(SECRET, t, body.as_bytes()))).await;
    assert_eq!(ok, (StatusCode::OK, "job_a:Primary".to_owned()));

    let tampered = body.replace("job_a", "job_b");
    let cases: Vec<(&str, String, Option<String>, StatusCode, &str)> = vec![
        (
            "tampered",
            tampered,
            Some(sign(SECRET, t, body.as_bytes())),
            StatusCode::UNAUTHORIZED,
            "invalid webhook signature",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(sign("whsec_wrong", t, body.as_bytes())),
            StatusCode::UNAUTHORIZED,
            "invalid webhook signature",
        ),
        (
            "stale",
            body.clone(),
            Some(sign(SECRET, t - 1000, body.as_bytes())),
            StatusCode::UNAUTHORIZED,
            "invalid webhook signature",
        ),
        (
            "future",
            body.clone(),
            Some(sign(SECRET, t + 1000, body.as_bytes())),
            StatusCode::UNAUTHORIZED,
            "invalid webhook signature",
        ),
        ("missing", body.clone(), None, StatusCode::BAD_REQUEST, "missing X-EZThrottle-Signature header"),
        (
            "malformed",
            body.clone(),
            Some("garbage".into()),
            StatusCode::BAD_REQUEST,
            "malformed X-EZThrottle-Signature header",
        ),
        (
            "no v1",
            body.clone(),
            Some(format!("t={t}")),
            StatusCode::BAD_REQUEST,
            "malformed X-EZThrottle-Signature header: no v1 signature",
        ),
    ];
    for (name, body, header, status, text) in cases {
        let (got, got_text) = post_signed(&url, &body, header).await;
        assert_eq!(got, status, "{name}: {got_text}");
        assert!(got_text.starts_with(text), "{name}: {got_text}");
    }

    let oversized = super::support::big_payload_json("job_big", 4096);
    let (status, _) = post_signed(&url, &oversized, Some(sign(SECRET, t, oversized.as_bytes()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let not_a_payload = r#"{"job_id":"j","status":"maybe"}"#;
    let (status, text) = post_signed(&url, not_a_payload, Some(sign(SECRET, t, not_a_payload.as_bytes()))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.starts_with("invalid webhook payload: status"), "{text}");
}

#[tokio::test]
async fn rotation_reports_which_secret_matched() {
    let verifier = Verifier::new(SECRET).with_secondary(OLD_SECRET).tolerance(Duration::from_secs(60));
    let addr = serve(verifying_router(verifier, 2048)).await;
    let url = format!("http://{addr}/hook");
    let body = payload_json("job_r", None);
    let t = now();
    assert_eq!(post_signed(&url, &body, Some(sign(OLD_SECRET, t, body.as_bytes()))).await.1, "job_r:Secondary");
    assert_eq!(post_signed(&url, &body, Some(sign(SECRET, t, body.as_bytes()))).await.1, "job_r:Primary");
    // Outside the 60 s tolerance.
    let (status, _) = post_signed(&url, &body, Some(sign(SECRET, t - 120, body.as_bytes()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn target_api() -> Router {
    Router::new().route("/hello", get(|| async { "hello from the API" }))
}

#[tokio::test]
async fn engine_deliveries_resolve_queue_and_wait_and_execute_and_wait() {
    // The engine signs with the OLD secret: the receiver rotates (new primary, old secondary).
    let engine = Engine::builder().open().webhook_secret(OLD_SECRET).start().await.expect("engine");
    let api = serve(target_api()).await;
    let inbox = WebhookInbox::new();
    let verifier = Verifier::new(SECRET).with_secondary(OLD_SECRET);
    let receiver = serve(webhook_routes(verifier, inbox.clone())).await;
    let hook = format!("http://{receiver}/webhook");
    let client = EZThrottle::builder().direct(engine.base_url()).build().expect("client");
    let mut subscription = inbox.subscribe();

    let job =
        Step::new(format!("http://{api}/hello")).webhook(Webhook::new(&hook)).idempotent_key("order-0001").to_job();
    let payload = client.queue_and_wait(&job, &inbox, Duration::from_secs(30)).await.expect("delivered");
    assert_eq!(payload.status, DeliveryStatus::Success);
    assert_eq!(payload.idempotent_key.as_deref(), Some("order-0001"));
    assert_eq!(payload.response.as_ref().map(|r| r.body.as_str()), Some("hello from the API"));
    let seen = tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.expect("in time").expect("open");
    assert_eq!(seen.job_id, payload.job_id);

    // A duplicate submission resolves with the original delivery.
    let again = client.queue_and_wait(&job, &inbox, Duration::from_secs(30)).await.expect("duplicate");
    assert_eq!(again.job_id, payload.job_id);

    // PERFORMANCE step: waits for the webhook.
    let step = Step::new(format!("http://{api}/hello")).webhook(Webhook::new(&hook)).idempotent_key("order-0002");
    match step.execute_and_wait(&client, &inbox, Duration::from_secs(30)).await.expect("step") {
        StepDelivery::Webhook { receipt, payload } => {
            assert_eq!(receipt.job_id, payload.job_id);
            assert_eq!(payload.status, DeliveryStatus::Success);
        }
        other => panic!("expected a webhook, got {other:?}"),
    }

    // FRUGAL step that succeeds here: the local result, no webhook.
    let frugal = Step::new(format!("http://{api}/hello")).step_type(StepType::Frugal).webhook(Webhook::new(&hook));
    match frugal.execute_and_wait(&client, &inbox, Duration::from_secs(5)).await.expect("frugal") {
        StepDelivery::Local(outcome) => {
            assert_eq!(outcome.local_response().map(|r| r.status.as_u16()), Some(200));
        }
        other => panic!("expected a local outcome, got {other:?}"),
    }

    // A job whose webhook goes nowhere times out with a typed error.
    let lost = Step::new(format!("http://{api}/hello")).webhook(Webhook::new(format!("http://{api}/nowhere"))).to_job();
    match client.queue_and_wait(&lost, &inbox, Duration::from_millis(300)).await {
        Err(Error::WaitTimedOut { job_id, .. }) => assert!(!job_id.is_empty()),
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn engine_signed_deliveries_pass_the_extractor() {
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await.expect("engine");
    let api = serve(target_api()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, SecretSlot)>();
    let router = Router::new()
        .route(
            "/hook",
            post(move |delivery: VerifiedWebhook| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((delivery.payload.job_id.clone(), delivery.secret()));
                    "ok"
                }
            }),
        )
        .with_state(Verifier::new(SECRET));
    let receiver = serve(router).await;
    let client = EZThrottle::builder().direct(engine.base_url()).build().expect("client");
    let receipt = client
        .submit_job(
            &Step::new(format!("http://{api}/hello")).webhook(Webhook::new(format!("http://{receiver}/hook"))).to_job(),
        )
        .await
        .expect("submit");
    let (job_id, secret) =
        tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("in time").expect("open");
    assert_eq!(job_id, receipt.job_id);
    assert_eq!(secret, SecretSlot::Primary);
    engine.shutdown().await;
}
