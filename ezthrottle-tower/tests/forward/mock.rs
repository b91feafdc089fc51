//! The `tower::Service` contract, with tower-test's mock: readiness is the inner
//! service's, and the instance `poll_ready` made ready is the one called
//! (clone-and-swap). A cloned mock starts not ready and panics if called: a layer that
//! cloned its inner service inside `call` would fail here.

use std::time::Duration;

use bytes::Bytes;
use ezthrottle_core::StatusCode;
use ezthrottle_tower::forward::ResponseBody;
use ezthrottle_tower::{
    CircuitBreaker, CircuitState, Forward, ForwardFailed, ForwardLayer, ForwardReason, ForwardedJob,
};
use http::{Request, Response};
use http_body_util::Full;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::Service;
use tower_test::mock;

use crate::support::*;

type Req = Request<Full<Bytes>>;
type Sent = Request<TestBody>;
type Res = Response<Full<Bytes>>;

fn post(body: &'static str) -> Req {
    Request::post("http://127.0.0.1:9/orders").body(Full::from(body)).unwrap()
}

fn put(body: &'static str) -> Req {
    Request::put("http://127.0.0.1:9/orders").body(Full::from(body)).unwrap()
}

fn sent(body: &'static str) -> Sent {
    Request::post("http://127.0.0.1:9/orders").body(TestBody::from(body)).unwrap()
}

/// A response of the mock with `status` and no body.
fn status(status: u16) -> Res {
    Response::builder().status(status).body(Full::default()).unwrap()
}

/// Makes the mock ready, calls `service` with `request`, lets the mock answer the call
/// with `answer` (a response, or an error of the wrapped service) and returns what the
/// layer answers.
async fn call_answered(
    service: &mut mock::Spawn<Forward<mock::Mock<Req, Res>>>,
    handle: &mut mock::Handle<Req, Res>,
    request: Req,
    answer: Result<Res, &'static str>,
) -> Response<ResponseBody<Full<Bytes>>> {
    handle.allow(1);
    assert_ready_ok!(service.poll_ready::<Req>());
    let call = tokio::spawn(service.call(request));
    let (_, respond) = handle.next_request().await.unwrap();
    match answer {
        Ok(response) => respond.send_response(response),
        Err(error) => respond.send_error(error),
    }
    call.await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_the_inner_services_and_the_ready_instance_is_called() {
    let layer = ForwardLayer::new(unreachable_ezthrottle().await);
    let (mut service, mut handle) = mock::spawn_layer::<Sent, Res, _>(layer);

    handle.allow(0);
    assert_pending!(service.poll_ready::<Sent>());
    handle.allow(1);
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready::<Sent>());

    // A body already in memory is read in `call`, and the ready service is called there.
    let mut call = task::spawn(service.call(sent("hello")));
    let (request, respond) = handle.next_request().await.expect("the request reached the mock");
    assert_eq!(request.uri(), "http://127.0.0.1:9/orders");
    assert_eq!(bytes_of(request.into_body()).await, "hello");
    assert_pending!(call.poll());
    respond.send_response(Response::builder().status(201).body(Full::from("made")).unwrap());
    let response = assert_ready_ok!(call.poll());
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(bytes_of(response.into_body()).await, "made");
    assert_pending!(service.poll_ready::<Sent>(), "readiness was used up by the call");

    // A body still arriving: the ready service moves into the future (clone-and-swap) and
    // is called once the body is read. Had the layer called a clone, the mock would panic.
    handle.allow(1);
    assert_ready_ok!(service.poll_ready::<Sent>());
    let (tx, body) = TestBody::sized_channel(5);
    let mut call = task::spawn(service.call(Request::post("http://127.0.0.1:9/late").body(body).unwrap()));
    assert_pending!(call.poll());
    assert!(handle.poll_request().is_pending(), "not called before the body is read");
    handle.allow(0);
    assert_pending!(service.poll_ready::<Sent>(), "what is left in place is a clone, not ready");
    tx.send(Bytes::from_static(b"la")).await.unwrap();
    tx.send(Bytes::from_static(b"ter")).await.unwrap();
    drop(tx);
    assert!(call.is_woken());
    assert_pending!(call.poll(), "the body is read; the mock is answering");
    let (request, respond) = handle.next_request().await.expect("called with the ready instance");
    assert_eq!(bytes_of(request.into_body()).await, "later");
    respond.send_response(Response::new(Full::default()));
    assert_ready_ok!(call.poll());

    // An empty body is passed as it is: the call happens at once.
    handle.allow(1);
    assert_ready_ok!(service.poll_ready::<Sent>());
    let mut call =
        task::spawn(service.call(Request::get("http://127.0.0.1:9/empty").body(TestBody::from("")).unwrap()));
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request.uri().path(), "/empty");
    respond.send_response(Response::new(Full::default()));
    assert_ready_ok!(call.poll());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_service_starts_not_ready_and_errors_of_poll_ready_pass_through() {
    let (mock, mut handle) = mock::pair::<Req, Res>();
    let mut service = task::spawn(Forward::new(mock, unreachable_ezthrottle().await));
    handle.allow(1);
    assert_ready_ok!(service.enter(|cx, mut service| service.poll_ready(cx)));
    // A clone of a ready service is not ready itself (the mock's rule, and tower's).
    let mut clone = task::spawn(service.get_ref().clone());
    handle.allow(0);
    assert_pending!(clone.enter(|cx, mut clone| clone.poll_ready(cx)));
    let call = service.enter(|_, mut service| service.call(post("x")));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(Response::new(Full::default()));
    assert_eq!(call.await.unwrap().status(), StatusCode::OK);

    handle.send_error("broken");
    let error = assert_ready!(clone.enter(|cx, mut clone| clone.poll_ready(cx))).unwrap_err();
    assert_eq!(error.to_string(), "broken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_errors_from_the_mock_are_forwarded() {
    let ezt = Ezt::start().await;
    let (mut service, mut handle) = mock::spawn_layer::<Req, Res, _>(ForwardLayer::new(ezt.client.clone()));

    let response = call_answered(&mut service, &mut handle, post("{\"id\":1}"), Ok(status(429))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!(job.original_status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(ezt.job(&job.receipt.job_id).job().body.as_deref(), Some("{\"id\":1}"));

    // A PUT may run twice: forwarded after a reset.
    let response = call_answered(&mut service, &mut handle, put("{\"id\":2}"), Err("connection reset")).await;
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!(job.reason, ForwardReason::TransportError);
    assert_eq!(ezt.store.len(), 2);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_never_calls_the_mock_and_a_failed_forward_calls_the_ready_instance() {
    let ezt = Ezt::start().await;
    let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
    let layer = ForwardLayer::new(ezt.client.clone()).circuit_breaker(breaker.clone());
    let (mut service, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);

    let response = call_answered(&mut service, &mut handle, put("a"), Ok(status(503))).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(breaker.state("127.0.0.1:9"), CircuitState::Open);

    handle.allow(1);
    assert_ready_ok!(service.poll_ready::<Req>());
    let response = service.call(post("b")).await.unwrap();
    assert_eq!(response.extensions().get::<ForwardedJob>().map(|job| job.reason), Some(ForwardReason::CircuitOpen));
    assert!(handle.poll_request().is_pending(), "the mock was never called");
    ezt.shutdown().await;

    // EZThrottle down while the circuit is open: the ready instance is called afterwards.
    let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
    let layer = ForwardLayer::new(unreachable_ezthrottle().await).circuit_breaker(breaker.clone());
    let (mut service, mut handle) = mock::spawn_layer::<Req, Res, _>(layer);
    let response = call_answered(&mut service, &mut handle, post("c"), Ok(status(503))).await;
    assert!(response.extensions().get::<ForwardFailed>().is_some());
    assert_eq!(breaker.state("127.0.0.1:9"), CircuitState::Open);

    handle.allow(1);
    assert_ready_ok!(service.poll_ready::<Req>());
    let call = tokio::spawn(service.call(post("d")));
    let (request, respond) = handle.next_request().await.expect("called after the failed forward");
    assert_eq!(bytes_of(request.into_body()).await, "d");
    respond.send_response(Response::new(Full::from("recovered")));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(breaker.state("127.0.0.1:9"), CircuitState::Closed);
}
