//! EZThrottle down: the caller gets the original answer back, within the submission
//! deadline when EZThrottle is black-holed, and without a connection attempt once the
//! client's breaker for EZThrottle is open.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezthrottle_core::{EZThrottle, StatusCode};
use ezthrottle_tower::{Forward, ForwardFailed, ForwardLayer, ForwardedJob};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::util::ServiceFn;
use tower::{Layer, ServiceExt, service_fn};

use crate::support::refused_addr;

/// The most a stalled call waits before the test fails as a stall.
const STALL: Duration = Duration::from_secs(10);

type Target = ServiceFn<fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>>;

/// A target that answers every call `429 Too Many Requests`.
fn limited(_: Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let response = Response::builder().status(StatusCode::TOO_MANY_REQUESTS).body(Full::from("slow down"));
    std::future::ready(Ok(response.expect("a response")))
}

fn forwarding(client: EZThrottle) -> Forward<Target> {
    ForwardLayer::new(client).layer(service_fn(limited as fn(_) -> _))
}

/// Calls `GET /orders` through `service`; answers the status, the `ForwardFailed` reason
/// and the body, failing if the call stalls.
async fn call(service: &Forward<Target>) -> (StatusCode, Option<String>, Bytes) {
    let request = Request::get("http://127.0.0.1:9/orders").body(Full::default()).expect("a request");
    let call = service.clone().oneshot(request);
    let response = tokio::time::timeout(STALL, call).await.expect("the call stalled").expect("infallible");
    assert!(response.extensions().get::<ForwardedJob>().is_none(), "nothing was forwarded");
    let failed = response.extensions().get::<ForwardFailed>().map(|failed| failed.reason.clone());
    let status = response.status();
    let body = response.into_body().collect().await.expect("the body").to_bytes();
    (status, failed, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_ezthrottle_returns_the_original_answer_within_the_deadline() {
    let hole = ezthrottle_test_support::BlackHole::start().await;
    let url = hole.url.clone();
    let deadline = Duration::from_millis(300);
    let client = EZThrottle::builder().direct(url).submit_deadline(deadline).build().expect("client");
    let service = forwarding(client);
    let started = Instant::now();
    let (status, failed, body) = call(&service).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the target's own answer");
    assert_eq!(body, "slow down");
    let reason = failed.expect("a ForwardFailed extension");
    assert!(reason.contains("timed out"), "{reason}");
    assert!(took < deadline * 10, "the caller waited {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_breaker_open_the_original_answer_comes_back_without_a_connect_attempt() {
    let addr = refused_addr().await;
    let resolver = ezthrottle_test_support::CountingResolver::new(addr);
    let http = resolver.http_client();
    let client = EZThrottle::builder()
        .direct(format!("http://ezthrottle.invalid:{}", addr.port()))
        .http_client(http)
        .breaker_threshold(1)
        .breaker_cool_down(Duration::from_secs(60))
        .build()
        .expect("client");
    let service = forwarding(client);

    let (status, failed, _) = call(&service).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let reason = failed.expect("a ForwardFailed extension");
    assert!(reason.contains("unreachable"), "{reason}");
    let attempts = resolver.lookups();
    assert!(attempts >= 1);

    let started = Instant::now();
    for _ in 0..20 {
        let (status, failed, body) = call(&service).await;
        assert_eq!((status, body), (StatusCode::TOO_MANY_REQUESTS, Bytes::from("slow down")));
        let reason = failed.expect("a ForwardFailed extension");
        assert!(reason.contains("circuit breaker is open"), "{reason}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(200), "20 calls with EZThrottle down took {took:?}");
    assert_eq!(resolver.lookups(), attempts, "no connection attempt while open");
}
