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

mod before_the_body {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::extract::Request;
    use axum::routing::post;
    use ezthrottle_core::webhook::{Verifier, sign};
    use ezthrottle_tower::webhook::{VerifiedRequest, VerifyWebhookLayer};

    use ezthrottle_test_support::webhook::post_signed;

    use super::super::support::{SECRET, now, payload_json, serve};
    use super::super::unread::{assert_refused_unread, record_body_reads};

    async fn verified_job(request: Request) -> String {
        request.extensions().get::<VerifiedRequest>().map(|v| format!("{:?}", v.secret())).unwrap_or_default()
    }

    /// A request without a usable signature is refused by the layer before it reads a
    /// body byte: a body that never ends is answered at once, and never polled.
    #[tokio::test]
    async fn the_layer_refuses_a_bad_header_without_reading_the_body() {
        let polled = Arc::new(AtomicBool::new(false));
        let app = Router::new()
            .route("/hook", post(verified_job))
            .layer(VerifyWebhookLayer::new(Verifier::new(SECRET).unwrap()))
            .layer(record_body_reads(Arc::clone(&polled)));
        let addr = serve(app).await;
        assert_refused_unread(addr, "/hook", &polled, now()).await;

        // The recorder sees a read: a signed delivery is read and verified.
        let body = payload_json("job_read", None);
        let signature = Some(sign(SECRET, now(), body.as_bytes()));
        let answer = post_signed(&format!("http://{addr}/hook"), &body, signature).await;
        assert_eq!(answer, (200, "Primary".to_owned()));
        assert!(polled.load(Ordering::SeqCst));
    }
}
