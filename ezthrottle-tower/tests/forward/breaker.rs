//! The circuit breaker: open after K failures, nothing reaches the target while open,
//! one probe when half-open, closed again on success.

use std::time::Duration;

use ezthrottle_core::IdempotentStrategy;
use ezthrottle_core::StatusCode;
use ezthrottle_tower::{CircuitBreaker, CircuitState, ForwardFailed, ForwardLayer, ForwardReason, ForwardedJob};
use http::Request;
use tower::{Layer, ServiceExt};

use crate::support::*;

fn reason_of<B>(response: &http::Response<B>) -> Option<ForwardReason> {
    response.extensions().get::<ForwardedJob>().map(|job| job.reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_sends_nothing_while_open_probes_once_and_closes() {
    let (target, ezt) = target_and_ezthrottle().await;
    let breaker = CircuitBreaker::new(3, Duration::from_millis(300));
    let client = ForwardLayer::new(ezt.client.clone())
        .circuit_breaker(breaker.clone())
        .with_template(|job| job.idempotent_strategy(IdempotentStrategy::Unique))
        .layer(hyper_client());
    let call = |client: &ezthrottle_tower::Forward<HyperClient>| {
        let client = client.clone();
        let url = target.url("/switch");
        async move { client.oneshot(Request::put(url).body(TestBody::from("{\"n\":1}")).unwrap()).await.unwrap() }
    };
    target.set_switch(503);

    // K = 3 consecutive 503s reach the target and are forwarded; then the circuit opens.
    for n in 1..=3 {
        assert_eq!(breaker.state(&target.host()), CircuitState::Closed, "before call {n}");
        let response = call(&client).await;
        assert_eq!(reason_of(&response), Some(ForwardReason::Status(StatusCode::SERVICE_UNAVAILABLE)));
    }
    assert_eq!(breaker.state(&target.host()), CircuitState::Open);
    assert_eq!(target.direct_hits().len(), 3);

    // While open, nothing reaches the target: every call goes straight to EZThrottle.
    for _ in 0..5 {
        let response = call(&client).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(reason_of(&response), Some(ForwardReason::CircuitOpen));
    }
    assert_eq!(target.direct_hits().len(), 3, "the target received nothing while the circuit was open");
    assert_eq!(ezt.store.len(), 8);

    // After the cool-down: half-open, and exactly one probe goes through.
    eventually("half-open", || breaker.state(&target.host()) == CircuitState::HalfOpen).await;
    target.set_switch(200);
    target.set_gate(false);
    let probe = tokio::spawn(call(&client));
    target.wait("the probe", |hits| hits.iter().filter(|hit| !hit.is_from_engine()).count() == 4).await;
    for _ in 0..3 {
        let response = call(&client).await;
        assert_eq!(reason_of(&response), Some(ForwardReason::CircuitOpen), "only one probe at a time");
    }
    assert_eq!(target.direct_hits().len(), 4);
    target.set_gate(true);
    let probed = probe.await.unwrap();
    assert_eq!(probed.status(), StatusCode::OK, "the probe's own answer");
    assert_eq!(breaker.state(&target.host()), CircuitState::Closed);

    // Closed again: calls reach the target.
    let response = call(&client).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(target.direct_hits().len(), 5);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_keeps_the_circuit_open_and_dates_the_forwarded_jobs() {
    let (target, ezt) = target_and_ezthrottle().await;
    let breaker = CircuitBreaker::new(1, Duration::from_millis(1));
    let client = ForwardLayer::new(ezt.client.clone()).circuit_breaker(breaker.clone()).layer(hyper_client());
    let first = client.clone().oneshot(Request::get(target.url("/limited/30")).body(TestBody::from("")).unwrap());
    let first = first.await.unwrap();
    let first_job = first.extensions().get::<ForwardedJob>().cloned().unwrap();
    let retry_at = ezt.job(&first_job.receipt.job_id).job().retry_at.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(breaker.state(&target.host()), CircuitState::Open, "Retry-After wins over the 1 ms cool-down");

    let second = client.oneshot(Request::get(target.url("/limited/30?again")).body(TestBody::from("")).unwrap());
    let second = second.await.unwrap();
    let second_job = second.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!(second_job.reason, ForwardReason::CircuitOpen);
    assert_eq!(ezt.job(&second_job.receipt.job_id).job().retry_at, Some(retry_at), "dated by the Retry-After");
    assert_ne!(second_job.receipt.job_id, first_job.receipt.job_id);
    assert_eq!(target.direct_hits().len(), 1);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_with_ezthrottle_down_still_calls_the_target() {
    let target = Target::start().await;
    let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
    let client =
        ForwardLayer::new(unreachable_ezthrottle().await).circuit_breaker(breaker.clone()).layer(hyper_client());
    for n in 1..=3 {
        let response =
            client.clone().oneshot(Request::get(target.url("/unavailable")).body(TestBody::from("")).unwrap()).await;
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "call {n}: the target's own answer");
        assert!(response.extensions().get::<ForwardFailed>().is_some());
        assert_eq!(breaker.state(&target.host()), CircuitState::Open);
    }
    assert_eq!(target.direct_hits().len(), 3, "no call was lost");
}
