//! The layer inside a `tower::ServiceBuilder` stack with tower-http layers.

use ezthrottle_core::StatusCode;
use ezthrottle_tower::{ForwardLayer, ForwardedJob};
use http::{HeaderName, HeaderValue, Request};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_builder_stack_around_hyper_util() {
    let (target, ezt) = target_and_ezthrottle().await;
    // Outside the forwarding layer: seen by the job. Inside: only on the direct call.
    let client = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestHeaderLayer::overriding(HeaderName::from_static("x-outer"), HeaderValue::from_static("1")))
        .layer(ForwardLayer::new(ezt.client.clone()))
        .layer(SetRequestHeaderLayer::overriding(HeaderName::from_static("x-inner"), HeaderValue::from_static("2")))
        .service(hyper_client());

    let response = client.clone().oneshot(Request::post(target.url("/echo")).body(TestBody::from("hi")).unwrap());
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(bytes_of(response.into_body()).await, "hi");
    let hit = target.direct_hits().pop().unwrap();
    assert_eq!((hit.headers["x-outer"].as_bytes(), hit.headers["x-inner"].as_bytes()), (&b"1"[..], &b"2"[..]));

    let response = client.oneshot(Request::post(target.url("/limited/60")).body(TestBody::from("hi")).unwrap());
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job_id = response.extensions().get::<ForwardedJob>().unwrap().receipt.job_id.clone();
    let body: serde_json::Value = serde_json::from_slice(&bytes_of(response.into_body()).await).unwrap();
    assert_eq!(body["job_id"], job_id.as_str());
    let record = ezt.job(&job_id);
    assert_eq!(record.job().headers["x-outer"], "1");
    assert!(!record.job().headers.contains_key("x-inner"), "{:?}", record.job().headers);
    ezt.shutdown().await;
}
