//! The layer inside a `tower::ServiceBuilder` stack with tower-http layers.

use ezthrottle_core::StatusCode;
use ezthrottle_tower::{ForwardFailed, ForwardLayer, ForwardedJob};
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

/// A hyper-util client whose response body has a default (tower-http's `TimeoutLayer`
/// answers its timeout status with an empty body of the service's type).
fn boxed_client() -> impl tower::Service<
    Request<TestBody>,
    Response = http::Response<http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, hyper::Error>>,
    Error = hyper_util::client::legacy::Error,
    Future = impl Send,
> + Clone
+ Send {
    use http_body_util::BodyExt;
    ServiceBuilder::new()
        .map_response(|response: http::Response<hyper::body::Incoming>| response.map(BodyExt::boxed_unsync))
        .service(hyper_client())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_stack_trace_auth_forward_timeout() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tower_http::timeout::TimeoutLayer;

    let (target, ezt) = target_and_ezthrottle().await;
    let outer = Arc::new(Mutex::new(Vec::new()));
    let inner = Arc::new(Mutex::new(Vec::new()));
    let (seen_outside, seen_inside) = (Arc::clone(&outer), Arc::clone(&inner));
    let client = ServiceBuilder::new()
        // Outermost: traces what the caller gets (the 202 of a forwarded call).
        .layer(TraceLayer::new_for_http().on_response(move |response: &http::Response<_>, _, _: &tracing::Span| {
            seen_outside.lock().unwrap().push(response.status().as_u16());
        }))
        // Above ForwardLayer: the job carries the header, so EZThrottle's run is authenticated.
        .layer(SetRequestHeaderLayer::if_not_present(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer service-token"),
        ))
        .layer(ForwardLayer::new(ezt.client.clone()))
        // Below ForwardLayer: traces each direct call to the API.
        .layer(TraceLayer::new_for_http().on_response(move |response: &http::Response<_>, _, _: &tracing::Span| {
            seen_inside.lock().unwrap().push(response.status().as_u16());
        }))
        // Below ForwardLayer: a stalled call becomes a 504 the layer sees (and forwards when safe).
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, Duration::from_millis(300)))
        .service(boxed_client());

    let response = client.clone().oneshot(Request::get(target.url("/unavailable")).body(TestBody::from("")).unwrap());
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job_id = response.extensions().get::<ForwardedJob>().unwrap().receipt.job_id.clone();
    let run = target.wait_engine_hit(&job_id).await;
    assert_eq!(
        run.headers["authorization"], "Bearer service-token",
        "the auth layer above ForwardLayer reached the job"
    );
    assert_eq!(*outer.lock().unwrap(), [202], "the outer trace sees the caller's answer");
    assert_eq!(*inner.lock().unwrap(), [503], "the inner trace sees the API's answer");

    // The API stalls: the timeout below ForwardLayer answers 504, forwarded for a GET ...
    target.set_gate(false);
    let response = client.clone().oneshot(Request::get(target.url("/switch")).body(TestBody::from("")).unwrap());
    let response = response.await.unwrap();
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("the timed-out GET is forwarded");
    assert_eq!(job.original_status, Some(StatusCode::GATEWAY_TIMEOUT));
    // ... but not for a POST without a key: the API may have run it.
    let response = client.clone().oneshot(Request::post(target.url("/switch")).body(TestBody::from("{}")).unwrap());
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(response.extensions().get::<ForwardFailed>().is_some());
    assert_eq!(ezt.store.len(), 2);
    target.set_gate(true);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_above_forward_layer_bounds_the_whole_call_and_forwards_nothing() {
    use std::time::Duration;
    use tower_http::timeout::TimeoutLayer;

    let (target, ezt) = target_and_ezthrottle().await;
    let client = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, Duration::from_millis(300)))
        .layer(ForwardLayer::new(ezt.client.clone()))
        .service(boxed_client());
    target.set_gate(false);
    let response = client.oneshot(Request::get(target.url("/switch")).body(TestBody::from("")).unwrap()).await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT, "the outer timeout's own answer");
    assert!(response.extensions().get::<ForwardedJob>().is_none());
    assert!(ezt.store.is_empty(), "the call was dropped before ForwardLayer saw an outcome");
    target.set_gate(true);
    ezt.shutdown().await;
}
