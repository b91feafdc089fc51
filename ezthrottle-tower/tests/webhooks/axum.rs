use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use ezthrottle_core::webhook::{Verifier, sign};
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
    let addr = serve(verifying_router(Verifier::new(SECRET).unwrap(), 2048)).await;
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
    let verifier =
        Verifier::new(SECRET).unwrap().with_secondary(OLD_SECRET).unwrap().tolerance(Duration::from_secs(60));
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
