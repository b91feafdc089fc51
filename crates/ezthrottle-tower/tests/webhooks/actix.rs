use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use ezthrottle_core::webhook::sign;
use ezthrottle_tower::actix::{VerifiedWebhook, WebhookVerifier};

use super::support::{OLD_SECRET, SECRET, big_payload_json, now, payload_json};

async fn handler(delivery: VerifiedWebhook) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}:{:?}", delivery.payload.job_id, delivery.secret()))
}

async fn send(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    body: String,
    header: Option<String>,
) -> (StatusCode, String) {
    let mut request = test::TestRequest::post().uri("/hook").set_payload(body);
    if let Some(header) = header {
        request = request.insert_header(("X-EZThrottle-Signature", header));
    }
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status();
    let body = test::read_body(response).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[actix_web::test]
async fn actix_extractor_statuses() {
    let app = test::init_service(
        App::new()
            .app_data(WebhookVerifier::new(SECRET).with_secondary(OLD_SECRET))
            .app_data(web::PayloadConfig::new(2048))
            .route("/hook", web::post().to(handler)),
    )
    .await;
    let body = payload_json("job_x", None);
    let t = now();
    assert_eq!(
        send(&app, body.clone(), Some(sign(SECRET, t, body.as_bytes()))).await,
        (StatusCode::OK, "job_x:Primary".into())
    );
    assert_eq!(send(&app, body.clone(), Some(sign(OLD_SECRET, t, body.as_bytes()))).await.1, "job_x:Secondary");
    let tampered = body.replace("job_x", "job_y");
    let (status, text) = send(&app, tampered, Some(sign(SECRET, t, body.as_bytes()))).await;
    assert_eq!((status, text.as_str()), (StatusCode::UNAUTHORIZED, "invalid webhook signature"));
    assert_eq!(send(&app, body.clone(), Some(sign("wrong", t, body.as_bytes()))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, body.clone(), Some(sign(SECRET, t - 1000, body.as_bytes()))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, body.clone(), Some(sign(SECRET, t + 1000, body.as_bytes()))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, body.clone(), None).await,
        (StatusCode::BAD_REQUEST, "missing X-EZThrottle-Signature header".into())
    );
    let (status, text) = send(&app, body.clone(), Some("garbage".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("malformed X-EZThrottle-Signature header"), "{text}");
    let big = big_payload_json("job_big", 4096);
    assert_eq!(send(&app, big.clone(), Some(sign(SECRET, t, big.as_bytes()))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let bad = r#"{"job_id":1}"#.to_owned();
    let (status, text) = send(&app, bad.clone(), Some(sign(SECRET, t, bad.as_bytes()))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
}

#[actix_web::test]
async fn actix_web_data_and_missing_configuration() {
    let app = test::init_service(
        App::new().app_data(web::Data::new(WebhookVerifier::new(SECRET))).route("/hook", web::post().to(handler)),
    )
    .await;
    let body = payload_json("job_d", None);
    assert_eq!(send(&app, body.clone(), Some(sign(SECRET, now(), body.as_bytes()))).await.0, StatusCode::OK);

    let bare = test::init_service(App::new().route("/hook", web::post().to(handler))).await;
    let (status, text) = send(&bare, body.clone(), Some(sign(SECRET, now(), body.as_bytes()))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("WebhookVerifier"), "{text}");
}
