use std::convert::Infallible;

use bytes::Bytes;
use ezthrottle_core::webhook::Verifier;
use ezthrottle_core::webhook::sign;
use ezthrottle_tower::webhook::{VerifiedRequest, VerifyWebhookLayer};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use super::support::{OLD_SECRET, SECRET, big_payload_json, now, payload_json};

async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let secret = request.extensions().get::<VerifiedRequest>().map(VerifiedRequest::secret);
    let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(format!("{secret:?} {}", body.len())))))
}

async fn call(body: String, header: Option<String>) -> (StatusCode, String) {
    let service = ServiceBuilder::new()
        .layer(VerifyWebhookLayer::new(Verifier::new(SECRET).unwrap().with_secondary(OLD_SECRET).unwrap()).limit(2048))
        .service(service_fn(echo));
    let mut request = Request::post("/hook");
    if let Some(header) = header {
        request = request.header("x-ezthrottle-signature", header);
    }
    let response = service.oneshot(request.body(Full::new(Bytes::from(body))).expect("request")).await.expect("call");
    let status = response.status();
    let text = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test]
async fn the_tower_layer_verifies_and_reattaches_the_body() {
    let body = payload_json("job_layer", None);
    let t = now();
    let (status, text) = call(body.clone(), Some(sign(OLD_SECRET, t, body.as_bytes()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, format!("Some(Secondary) {}", body.len()));
    assert_eq!(call(body.clone(), None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(body.clone(), Some("t=abc,v1=00".into())).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(body.clone(), Some(sign("nope", t, body.as_bytes()))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(body.clone(), Some(sign(SECRET, t - 600, body.as_bytes()))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(body.clone(), Some(sign(SECRET, t + 600, body.as_bytes()))).await.0, StatusCode::UNAUTHORIZED);
    let big = big_payload_json("job_big", 4096);
    assert_eq!(call(big.clone(), Some(sign(SECRET, t, big.as_bytes()))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}
