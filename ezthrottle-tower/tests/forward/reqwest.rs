//! `ForwardMiddleware` with reqwest + reqwest-middleware.

use std::time::Duration;

use bytes::Bytes;
use ezthrottle_core::{StatusCode, Webhook};
use ezthrottle_tower::{
    CircuitBreaker, CircuitState, ForwardFailed, ForwardLayer, ForwardMiddleware, ForwardReason, ForwardedJob,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

use crate::support::*;

fn client(middleware: ForwardMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new()).with(middleware).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_calls_pass_through_byte_exact() {
    let (target, ezt) = target_and_ezthrottle().await;
    let http = client(ForwardMiddleware::new(ezt.client.clone()));
    let response = http
        .post(target.url("/echo"))
        .header("authorization", "Bearer r")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(binary_kib())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-target"], "echo");
    assert!(response.extensions().get::<ForwardedJob>().is_none());
    assert_eq!(response.url().as_str(), target.url("/echo"));
    assert_eq!(response.bytes().await.unwrap(), binary_kib());
    let hit = target.direct_hits().pop().unwrap();
    assert_eq!(hit.body, binary_kib());
    assert_eq!(hit.headers["authorization"], "Bearer r");
    assert_eq!(hit.headers.get_all("x-multi").iter().collect::<Vec<_>>(), ["a", "b"]);
    assert!(ezt.store.is_empty());
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_answers_a_synthesized_202_and_the_job_runs() {
    let (target, ezt) = target_and_ezthrottle().await;
    let mut receiver = Receiver::start().await;
    let http = client(
        ForwardMiddleware::new(ezt.client.clone()).with_template(|job| job.webhook(Webhook::new(&receiver.url))),
    );
    let url = target.url("/limited/1");
    let response = http
        .patch(&url)
        .header("authorization", "Bearer r2")
        .header("idempotency-key", "patch-1")
        .body("{\"name\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.url().as_str(), url, "url() is the original request's");
    assert_eq!(response.headers()["x-ezthrottle-forwarded"], "true");
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    assert_eq!(job.original_status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(response.headers()["x-ezthrottle-job-id"], job.receipt.job_id.as_str());
    let answer: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["idempotent_key"], "patch-1");
    assert_eq!(answer["original_status"], 429);

    let record = ezt.job(&job.receipt.job_id);
    assert_eq!(record.job().method, http::Method::PATCH);
    assert_eq!(record.job().url, url);
    assert_eq!(record.job().body.as_deref(), Some("{\"name\":\"x\"}"));
    assert_eq!(record.job().headers["authorization"], "Bearer r2");
    assert!(record.job().retry_at.is_some());
    let attempt = target.wait_engine_hit(&job.receipt.job_id).await;
    assert_eq!(attempt.method, http::Method::PATCH);
    assert_eq!(receiver.next().await.job_id, job.receipt.job_id);

    // The same key again: the same job.
    let again = http.patch(&url).header("idempotency-key", "patch-1").body("{\"name\":\"x\"}").send().await.unwrap();
    let again = again.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!(again.receipt.job_id, job.receipt.job_id);
    assert!(again.receipt.duplicate);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_bodies_pass_through_and_keep_the_original_answer() {
    let (target, ezt) = target_and_ezthrottle().await;
    let http = client(ForwardMiddleware::new(ezt.client.clone()));
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::from_static(b"part1-")), Ok(Bytes::from_static(b"part2"))];
    let body = reqwest::Body::wrap_stream(futures_stream(chunks));
    let response = http.post(target.url("/limited/1")).body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let failed = response.extensions().get::<ForwardFailed>().cloned().expect("ForwardFailed");
    assert!(failed.reason.contains("stream"), "{failed:?}");
    assert_eq!(response.text().await.unwrap(), "slow down");
    assert_eq!(target.direct_hits().pop().unwrap().body, "part1-part2");

    // Over the cap.
    let http = client(ForwardMiddleware::new(ezt.client.clone()).max_replay_bytes(8));
    let response = http.post(target.url("/limited/1")).body("more than eight bytes").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.extensions().get::<ForwardFailed>().unwrap().reason.contains("max_replay_bytes"));
    assert!(ezt.store.is_empty());
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_ezthrottle_is_down_the_original_answer_or_error_comes_back() {
    let target = Target::start().await;
    let http = client(ForwardMiddleware::new(unreachable_ezthrottle().await));
    let response = http.get(target.url("/unavailable")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let failed = response.extensions().get::<ForwardFailed>().cloned().unwrap();
    assert!(failed.reason.contains("unreachable"), "{failed:?}");
    assert_eq!(response.text().await.unwrap(), "down");

    let refused = format!("http://{}/x", refused_addr().await);
    let error = http.get(refused).send().await.unwrap_err();
    assert!(error.is_connect(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_and_an_open_circuit_shared_with_a_layer() {
    let reset = Resetter::start().await;
    let (target, ezt) = target_and_ezthrottle().await;
    let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
    let layer = ForwardLayer::new(ezt.client.clone()).circuit_breaker(breaker.clone());
    let http = client(ForwardMiddleware::from(layer.clone()));

    let response = http.get(reset.url("/r")).send().await.unwrap();
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!((job.reason, job.original_status), (ForwardReason::TransportError, None));

    let response = http.get(target.url("/unavailable")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(breaker.state(&target.host()), CircuitState::Open);
    let response = http.get(target.url("/unavailable?2")).send().await.unwrap();
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!(job.reason, ForwardReason::CircuitOpen);
    assert_eq!(target.direct_hits().len(), 1, "nothing reached the target while open");

    // The tower layer shares the circuit.
    use tower::{Layer, ServiceExt};
    let tower_client = layer.layer(hyper_client());
    let request = http::Request::get(target.url("/unavailable?3")).body(TestBody::from("")).unwrap();
    let response = tower_client.oneshot(request).await.unwrap();
    assert_eq!(response.extensions().get::<ForwardedJob>().map(|job| job.reason), Some(ForwardReason::CircuitOpen));
    assert_eq!(target.direct_hits().len(), 1);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_policy_sees_the_response_headers() {
    let (target, ezt) = target_and_ezthrottle().await;
    // Forward only 429s whose Retry-After is at least 10 seconds.
    let policy = |outcome: &Result<http::Response<()>, reqwest_middleware::Error>| {
        outcome.as_ref().is_ok_and(|response| {
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|secs| secs >= 10)
        })
    };
    let http = client_with(ForwardMiddleware::new(ezt.client.clone()).policy(policy));
    let short = http.get(target.url("/limited/1")).send().await.unwrap();
    assert_eq!(short.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(short.headers()["retry-after"], "1", "headers are back in place after the policy looked");
    let long = http.get(target.url("/limited/10")).send().await.unwrap();
    assert_eq!(long.status(), StatusCode::ACCEPTED);
    ezt.shutdown().await;
}

fn client_with<P>(middleware: ForwardMiddleware<P>) -> ClientWithMiddleware
where
    P: ezthrottle_tower::ForwardPolicy<(), reqwest_middleware::Error> + Send + Sync + 'static,
{
    ClientBuilder::new(reqwest::Client::new()).with(middleware).build()
}

/// A stream of chunks without futures-util: an iterator polled as a stream.
fn futures_stream(
    chunks: Vec<Result<Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static {
    struct Iter(std::vec::IntoIter<Result<Bytes, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(chunks.into_iter())
}

/// reqwest-retry's own middleware: two retries of a transient answer (429, 5xx), a
/// millisecond or so apart.
fn retry() -> reqwest_retry::RetryTransientMiddleware<reqwest_retry::policies::ExponentialBackoff> {
    let policy = reqwest_retry::policies::ExponentialBackoff::builder()
        .retry_bounds(std::time::Duration::from_millis(1), std::time::Duration::from_millis(5))
        .build_with_max_retries(2);
    reqwest_retry::RetryTransientMiddleware::new_with_policy(policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_inside_forward_middleware_run_first_and_outside_never_see_a_failure() {
    let (target, ezt) = target_and_ezthrottle().await;
    // Retry added after ForwardMiddleware (inside it): the retries run, then the last
    // failure is forwarded.
    let forward_last = ClientBuilder::new(reqwest::Client::new())
        .with(ForwardMiddleware::new(ezt.client.clone()))
        .with(retry())
        .build();
    let response = forward_last.get(target.url("/unavailable?inner")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(target.direct_hits().len(), 3, "three attempts, then forwarded");
    assert_eq!(ezt.store.len(), 1);

    // Retry added before (outside): the first failure is forwarded, the retry sees a 202.
    let forward_first = ClientBuilder::new(reqwest::Client::new())
        .with(retry())
        .with(ForwardMiddleware::new(ezt.client.clone()))
        .build();
    let response = forward_first.get(target.url("/unavailable?outer")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(target.direct_hits().len(), 4, "one attempt, forwarded at once");
    assert_eq!(ezt.store.len(), 2);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_and_a_large_body_are_forwarded_exactly() {
    // The middleware copies a body of up to 4 KiB and shares a larger one: both are the job.
    let (target, ezt) = target_and_ezthrottle().await;
    let http = client(ForwardMiddleware::new(ezt.client.clone()));
    for (size, key) in [(10, "small"), (64 * 1024, "large")] {
        let body: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let response = http
            .put(target.url("/limited/1"))
            .header("x-api-key", "k-1")
            .header("idempotency-key", key)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let job = response.extensions().get::<ForwardedJob>().cloned().expect("forwarded");
        let record = ezt.job(&job.receipt.job_id);
        assert_eq!(record.job().method, http::Method::PUT);
        assert_eq!(record.job().url, target.url("/limited/1"));
        assert_eq!(record.job().body.as_deref(), Some(body.as_str()), "{key}");
        assert_eq!(record.job().headers["x-api-key"], "k-1");
    }
    ezt.shutdown().await;
}

/// Calls `ForwardMiddleware::handle` itself to weigh the future it returns.
struct WeighFuture(ForwardMiddleware, std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for WeighFuture {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let call = self.0.handle(request, extensions, next);
        self.1.store(std::mem::size_of_val(&*call), std::sync::atomic::Ordering::SeqCst);
        call.await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_future_boxed_for_each_call_stays_small() {
    // Every call boxes this future; past about 1 KiB the box leaves glibc's and most
    // allocators' fast path for small sizes, which cost the pass-through path more than
    // all of its own work (1,040 bytes with the request held in it, twice).
    let (target, ezt) = target_and_ezthrottle().await;
    let size = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(WeighFuture(ForwardMiddleware::new(ezt.client.clone()), size.clone()))
        .build();
    let response = http.post(target.url("/echo")).body(binary_kib()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let size = size.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=768).contains(&size), "the pass-through future is {size} bytes");
    ezt.shutdown().await;
}
