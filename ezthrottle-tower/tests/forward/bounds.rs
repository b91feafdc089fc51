//! A target's `Retry-After` far in the future: the job still runs within the horizon, and
//! the circuit breaker probes again within its cap.

use std::time::Duration;

use ezthrottle_core::StatusCode;
use ezthrottle_core::protocol::MAX_RETRY_AT_HORIZON;
use ezthrottle_core::protocol::time::to_unix_ms;
use ezthrottle_tower::{CircuitBreaker, CircuitState, ForwardLayer, ForwardReason, ForwardedJob};
use http::Request;
use tower::{Layer, ServiceExt};

use crate::support::*;

/// Leeway for the clock between the layer computing `retry_at` and the test reading it.
const SLACK_MS: u64 = 5_000;

/// Calls `path` on the target through `layer`; the `retry_at` of the job the engine stored,
/// with the Unix ms before and after the call.
async fn stored_retry_at(layer: ForwardLayer, target: &Target, ezt: &Ezt, path: &str) -> (u64, u64, u64) {
    let client = layer.layer(hyper_client());
    let before = now_ms();
    let response = client.oneshot(Request::get(target.url(path)).body(TestBody::from("")).unwrap()).await.unwrap();
    let after = now_ms();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}");
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    let retry_at = ezt.job(&job.receipt.job_id).job().retry_at.map(to_unix_ms).expect("Retry-After became retry_at");
    (before, retry_at, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_centuries_dates_the_job_within_the_horizon() {
    let (target, ezt) = target_and_ezthrottle().await;
    let cap = MAX_RETRY_AT_HORIZON.as_millis() as u64;
    assert_eq!(cap, 86_400_000, "the documented default");
    for path in ["/limited/99999999999", "/limited_until/9999"] {
        let (before, retry_at, after) =
            stored_retry_at(ForwardLayer::new(ezt.client.clone()), &target, &ezt, path).await;
        assert!(
            (before + cap..=after + cap + SLACK_MS).contains(&retry_at),
            "{path}: retry_at {retry_at}, now {after}"
        );
    }
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_horizon_is_kept_and_a_higher_one_clamped() {
    let (target, ezt) = target_and_ezthrottle().await;
    let minute = ForwardLayer::new(ezt.client.clone()).retry_at_horizon(Duration::from_secs(60));
    let (before, retry_at, after) = stored_retry_at(minute, &target, &ezt, "/limited/99999999999").await;
    assert!((before + 60_000..=after + 60_000 + SLACK_MS).contains(&retry_at), "retry_at {retry_at}, now {after}");

    let year = ForwardLayer::new(ezt.client.clone()).retry_at_horizon(Duration::from_secs(86_400 * 365));
    let (before, retry_at, after) = stored_retry_at(year, &target, &ezt, "/limited_until/9999").await;
    let cap = MAX_RETRY_AT_HORIZON.as_millis() as u64;
    assert!((before + cap..=after + cap + SLACK_MS).contains(&retry_at), "retry_at {retry_at}, now {after}");
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_probes_again_after_its_cap_whatever_the_retry_after() {
    let (target, ezt) = target_and_ezthrottle().await;
    let breaker = CircuitBreaker::new(1, Duration::from_millis(1)).with_max_open(Duration::from_millis(50));
    let client = ForwardLayer::new(ezt.client.clone()).circuit_breaker(breaker.clone()).layer(hyper_client());
    let call = |path: &str| {
        let request = Request::get(target.url(path)).body(TestBody::from("")).unwrap();
        let client = client.clone();
        async move { client.oneshot(request).await.unwrap() }
    };
    let reason = |response: &http::Response<_>| response.extensions().get::<ForwardedJob>().map(|job| job.reason);

    let opened = std::time::Instant::now();
    let first = call("/limited/99999999999").await;
    assert_eq!(reason(&first), Some(ForwardReason::Status(StatusCode::TOO_MANY_REQUESTS)));
    assert_eq!(breaker.state(&target.host()), CircuitState::Open, "the Retry-After opened the circuit");

    // The half-open transition is a timer, not an event: `eventually` polls it, bounded.
    eventually("half-open within the cap", || breaker.state(&target.host()) == CircuitState::HalfOpen).await;
    assert!(opened.elapsed() < Duration::from_secs(5), "half-open after {:?}", opened.elapsed());
    let probe = call("/echo").await;
    assert_eq!(probe.status(), StatusCode::OK, "the probe reached the target");
    assert_eq!(target.direct_hits().len(), 2);
    assert_eq!(breaker.state(&target.host()), CircuitState::Closed);
    ezt.shutdown().await;
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reqwest_middleware_dates_the_job_within_its_horizon() {
    let (target, ezt) = target_and_ezthrottle().await;
    let middleware =
        ezthrottle_tower::ForwardMiddleware::new(ezt.client.clone()).retry_at_horizon(Duration::from_secs(60));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
    let before = now_ms();
    let response = http.get(target.url("/limited_until/9999")).send().await.unwrap();
    let after = now_ms();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    let retry_at = ezt.job(&job.receipt.job_id).job().retry_at.map(to_unix_ms).expect("Retry-After became retry_at");
    assert!((before + 60_000..=after + 60_000 + SLACK_MS).contains(&retry_at), "retry_at {retry_at}, now {after}");
    ezt.shutdown().await;
}
