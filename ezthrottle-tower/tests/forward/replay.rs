//! The replay rule (ezthrottle-core's `replay` table), one cell at a time, for
//! `ForwardLayer` around hyper-util and for `ForwardMiddleware` around reqwest; and what a
//! failed submission does while the circuit is open.

use std::time::Duration;

use ezthrottle_core::{ReplayPolicy, StatusCode};
use ezthrottle_tower::{CircuitBreaker, CircuitState, ForwardFailed, ForwardLayer, ForwardResponse, ForwardedJob};
use http::{Method, Request};
use tower::{Layer, ServiceExt};

use crate::support::*;
use ezthrottle_test_support::HangUp;

/// The rows of the table: a method, and whether the request carries an `Idempotency-Key`.
const ROWS: [(&str, bool); 8] = [
    ("GET", false),
    ("HEAD", false),
    ("OPTIONS", false),
    ("PUT", false),
    ("DELETE", false),
    ("POST", false),
    ("PATCH", false),
    ("POST", true),
];

/// The columns: how the call fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    RateLimited,
    Unavailable,
    NotSent,
    NoAnswer,
}

const COLUMNS: [Failure; 4] = [Failure::RateLimited, Failure::Unavailable, Failure::NotSent, Failure::NoAnswer];

/// What the default rule (`WhenSafe`) says for a cell.
fn expected_forwarded(method: &str, key: bool, failure: Failure) -> bool {
    let idempotent = matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE");
    idempotent || key || matches!(failure, Failure::RateLimited | Failure::NotSent)
}

/// The servers every cell fails against.
struct Targets {
    target: Target,
    closer: HangUp,
    refused: String,
}

impl Targets {
    async fn start() -> Self {
        let (target, closer) = tokio::join!(Target::start(), HangUp::start());
        Self { target, closer, refused: format!("http://{}", refused_addr().await) }
    }

    fn url(&self, failure: Failure, cell: usize) -> String {
        match failure {
            Failure::RateLimited => self.target.url(&format!("/limited/60?cell={cell}")),
            Failure::Unavailable => self.target.url(&format!("/unavailable?cell={cell}")),
            Failure::NotSent => format!("{}/x?cell={cell}", self.refused),
            Failure::NoAnswer => self.closer.url(&format!("/x?cell={cell}")),
        }
    }
}

/// What the caller got for one cell.
#[derive(Debug)]
enum Got {
    Forwarded(String),
    Answered(StatusCode, Option<ForwardFailed>),
    Error(String),
}

fn body_for(method: &str) -> &'static str {
    if matches!(method, "GET" | "HEAD" | "OPTIONS" | "DELETE") { "" } else { "{\"n\":1}" }
}

/// Checks one cell: a forwarded call is a job of the engine with the call's method; any
/// other keeps its original answer (with the rule's reason) or error, and adds no job.
fn check(cell: &str, got: Got, forwarded: bool, failure: Failure, ezt: &Ezt, jobs_before: usize) {
    match (forwarded, got) {
        (true, Got::Forwarded(job_id)) => {
            let method = cell.split_whitespace().next().unwrap_or_default();
            assert_eq!(ezt.job(&job_id).job().method.as_str(), method, "{cell}: the job is the call");
            assert_eq!(ezt.store.len(), jobs_before + 1, "{cell}: one job");
        }
        (false, Got::Answered(status, failed)) => {
            let original = if failure == Failure::RateLimited { 429 } else { 503 };
            assert_eq!(status.as_u16(), original, "{cell}: the original answer");
            let failed = failed.unwrap_or_else(|| panic!("{cell}: a ForwardFailed extension"));
            assert!(failed.reason.contains("Idempotency-Key"), "{cell}: the reason names the fix: {failed}");
            assert!(failed.reason.contains("ReplayPolicy::Always"), "{cell}: {failed}");
            assert_eq!(ezt.store.len(), jobs_before, "{cell}: no job");
        }
        (false, Got::Error(error)) if matches!(failure, Failure::NotSent | Failure::NoAnswer) => {
            assert!(!error.is_empty(), "{cell}: the original error");
            assert_eq!(ezt.store.len(), jobs_before, "{cell}: no job");
        }
        (forwarded, got) => panic!("{cell}: expected forwarded = {forwarded}, got {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_table_through_the_layer() {
    let (targets, ezt) = tokio::join!(Targets::start(), Ezt::start());
    let client = ForwardLayer::new(ezt.client.clone()).layer(hyper_client());
    let mut n = 0;
    for (method, key) in ROWS {
        for failure in COLUMNS {
            n += 1;
            let cell = format!("{method} key={key} {failure:?}");
            let mut request = Request::builder().method(method).uri(targets.url(failure, n));
            if key {
                request = request.header("idempotency-key", format!("cell-{n}"));
            }
            let request = request.body(TestBody::from(body_for(method))).unwrap();
            let jobs_before = ezt.store.len();
            let got = match client.clone().oneshot(request).await {
                Ok(response) => match response.extensions().get::<ForwardedJob>() {
                    Some(job) => Got::Forwarded(job.receipt.job_id.clone()),
                    None => Got::Answered(response.status(), response.extensions().get::<ForwardFailed>().cloned()),
                },
                Err(error) => Got::Error(error.to_string()),
            };
            check(&cell, got, expected_forwarded(method, key, failure), failure, &ezt, jobs_before);
        }
    }
    assert!(targets.closer.requests_read() >= 8, "the closer read the requests");
    ezt.shutdown().await;
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_table_through_the_middleware() {
    let (targets, ezt) = tokio::join!(Targets::start(), Ezt::start());
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ezthrottle_tower::ForwardMiddleware::new(ezt.client.clone()))
        .build();
    let mut n = 0;
    for (method, key) in ROWS {
        for failure in COLUMNS {
            n += 1;
            let cell = format!("{method} key={key} {failure:?}");
            let mut request = http.request(Method::from_bytes(method.as_bytes()).unwrap(), targets.url(failure, n));
            if key {
                request = request.header("idempotency-key", format!("cell-{n}"));
            }
            let jobs_before = ezt.store.len();
            let got = match request.body(body_for(method)).send().await {
                Ok(response) => match response.extensions().get::<ForwardedJob>() {
                    Some(job) => Got::Forwarded(job.receipt.job_id.clone()),
                    None => Got::Answered(response.status(), response.extensions().get::<ForwardFailed>().cloned()),
                },
                Err(error) => Got::Error(error.to_string()),
            };
            check(&cell, got, expected_forwarded(method, key, failure), failure, &ezt, jobs_before);
        }
    }
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_forwards_every_cell_and_an_unknown_error_type_counts_as_no_answer_unless_told() {
    let (targets, ezt) = tokio::join!(Targets::start(), Ezt::start());
    let always = ForwardLayer::new(ezt.client.clone())
        .with_template(|job| job.replay(ReplayPolicy::Always))
        .layer(hyper_client());
    for (n, failure) in COLUMNS.into_iter().enumerate() {
        let request = Request::post(targets.url(failure, n)).body(TestBody::from("{}")).unwrap();
        let response = always.clone().oneshot(request).await.expect("forwarded, so an answer");
        assert!(response.extensions().get::<ForwardedJob>().is_some(), "POST {failure:?} with Always");
    }
    assert_eq!(ezt.store.len(), 4);

    // An error type the layer cannot read: a refused POST counts as "sent, no answer" and
    // keeps its error, until `not_sent_when` says which of its values prove "not sent".
    #[derive(Debug)]
    struct Opaque {
        connect: bool,
    }
    let opaque = || tower::ServiceExt::map_err(hyper_client(), |error| Opaque { connect: error.is_connect() });
    let plain = ForwardLayer::new(ezt.client.clone()).layer(opaque());
    let request = Request::post(targets.url(Failure::NotSent, 9)).body(TestBody::from("{}")).unwrap();
    let error = plain.oneshot(request).await.expect_err("the original error");
    assert!(error.connect, "{error:?}");
    assert_eq!(ezt.store.len(), 4, "no job");
    let told = ForwardLayer::new(ezt.client.clone()).not_sent_when(|error: &Opaque| error.connect).layer(opaque());
    let request = Request::post(targets.url(Failure::NotSent, 10)).body(TestBody::from("{}")).unwrap();
    let response = told.oneshot(request).await.expect("forwarded, so an answer");
    assert!(response.extensions().get::<ForwardedJob>().is_some(), "not_sent_when proves it was not sent");
    assert_eq!(ezt.store.len(), 5);
    ezt.shutdown().await;
}

/// An EZThrottle whose answer is unknown: it reads the submission and closes.
async fn ezthrottle_answer_unknown(closer: &HangUp) -> ezthrottle_core::EZThrottle {
    ezthrottle_core::EZThrottle::builder().direct(closer.url("")).build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_calls_the_target_after_a_failed_submission_only_when_safe() {
    let (target, closer) = tokio::join!(Target::start(), HangUp::start());
    for (name, ezthrottle, called) in [
        ("EZThrottle refusing connections (not sent)", unreachable_ezthrottle().await, true),
        ("EZThrottle closing without an answer", ezthrottle_answer_unknown(&closer).await, false),
    ] {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
        let client = ForwardLayer::new(ezthrottle).circuit_breaker(breaker.clone()).layer(hyper_client());
        let path = format!("/limited/60?{}", called);
        let post = || Request::post(target.url(&path)).body(TestBody::from("{\"pay\":1}")).unwrap();
        // The first 429 opens the circuit (its submission fails: the original answer).
        let first = client.clone().oneshot(post()).await.unwrap();
        assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert_eq!(breaker.state(&target.host()), CircuitState::Open, "{name}");
        let direct = target.direct_hits().len();

        let response = client.clone().oneshot(post()).await.unwrap();
        if called {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{name}: the target's answer");
            assert_eq!(target.direct_hits().len(), direct + 1, "{name}: the target was called");
        } else {
            assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{name}");
            assert_eq!(response.headers()["x-ezthrottle-forwarded"], "unknown", "{name}");
            assert!(response.body().is_synthesized(), "{name}");
            let failed = response.extensions().get::<ForwardFailed>().cloned().expect("ForwardFailed");
            assert!(failed.reason.contains("may have accepted the job"), "{name}: {failed}");
            assert_eq!(target.direct_hits().len(), direct, "{name}: the POST was not sent to the target");

            // A PUT may run twice: the target is called.
            let put = Request::put(target.url(&path)).body(TestBody::from("{}")).unwrap();
            assert_eq!(client.clone().oneshot(put).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(target.direct_hits().len(), direct + 1, "{name}: the PUT reached the target");
        }
    }
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_in_the_middleware_calls_the_target_only_when_safe() {
    let (target, closer) = tokio::join!(Target::start(), HangUp::start());
    for (name, ezthrottle, called) in [
        ("EZThrottle refusing connections (not sent)", unreachable_ezthrottle().await, true),
        ("EZThrottle closing without an answer", ezthrottle_answer_unknown(&closer).await, false),
    ] {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(ezthrottle_tower::ForwardMiddleware::new(ezthrottle).circuit_breaker(breaker.clone()))
            .build();
        let url = target.url(&format!("/limited/60?mw={called}"));
        let first = http.post(&url).body("{}").send().await.unwrap();
        assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert_eq!(breaker.state(&target.host()), CircuitState::Open, "{name}");
        let direct = target.direct_hits().len();

        let response = http.post(&url).body("{}").send().await.unwrap();
        if called {
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
            assert_eq!(target.direct_hits().len(), direct + 1, "{name}: the target was called");
        } else {
            assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{name}");
            assert_eq!(response.headers()["x-ezthrottle-forwarded"], "unknown");
            assert_eq!(response.url().as_str(), url);
            let failed = response.extensions().get::<ForwardFailed>().cloned().expect("ForwardFailed");
            assert!(failed.reason.contains("may have accepted the job"), "{name}: {failed}");
            assert_eq!(target.direct_hits().len(), direct, "{name}: the POST was not sent to the target");
            let put = http.put(&url).header("idempotency-key", "k").body("{}").send().await.unwrap();
            assert_eq!(put.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(target.direct_hits().len(), direct + 1, "{name}: the keyed request reached the target");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_with_original_gives_the_429_with_the_job() {
    let (target, ezt) = target_and_ezthrottle().await;
    let reset = Resetter::start().await;
    let client = ForwardLayer::new(ezt.client.clone()).respond_with(ForwardResponse::Original).layer(hyper_client());
    let request = Request::post(target.url("/limited/60")).body(TestBody::from("{}")).unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "the original answer");
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(response.headers()["x-ezthrottle-forwarded"], "true");
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    assert_eq!(job.original_status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(response.headers()["x-ezthrottle-job-id"], job.receipt.job_id.as_str());
    assert!(!response.body().is_synthesized());
    assert_eq!(bytes_of(response.into_body()).await, "slow down");
    assert_eq!(ezt.job(&job.receipt.job_id).job().method, Method::POST);

    // No original answer for a transport error: the 202 receipt.
    let response = client.oneshot(Request::get(reset.url("/r")).body(TestBody::from("")).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.extensions().get::<ForwardedJob>().is_some());
    ezt.shutdown().await;
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_with_original_in_the_middleware() {
    let (target, ezt) = target_and_ezthrottle().await;
    let layer = ForwardLayer::new(ezt.client.clone()).respond_with(ForwardResponse::Original);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ezthrottle_tower::ForwardMiddleware::from(layer))
        .build();
    let response = http.post(target.url("/limited/60")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["x-ezthrottle-forwarded"], "true");
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    assert_eq!(response.headers()["x-ezthrottle-job-id"], job.receipt.job_id.as_str());
    assert_eq!(response.text().await.unwrap(), "slow down");
    assert_eq!(ezt.job(&job.receipt.job_id).job().method, Method::POST);
    ezt.shutdown().await;
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_keyed_post_after_a_503_runs_as_that_post() {
    let (target, ezt) = target_and_ezthrottle().await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ezthrottle_tower::ForwardMiddleware::new(ezt.client.clone()))
        .build();
    let response = http
        .post(target.url("/unavailable?order=9"))
        .header("authorization", "Bearer user-9")
        .header("idempotency-key", "order-9")
        .body("{\"sku\":\"tea\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    let run = target.wait_engine_hit(&job.receipt.job_id).await;
    assert_eq!(run.method, Method::POST, "the engine ran the POST");
    assert_eq!(run.path, "/unavailable?order=9");
    assert_eq!(run.body, "{\"sku\":\"tea\"}");
    assert_eq!(run.headers["authorization"], "Bearer user-9");
    assert_eq!(run.headers["idempotency-key"], "order-9");
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_records_an_outcome_the_rule_keeps() {
    let (target, ezt) = target_and_ezthrottle().await;
    let breaker = CircuitBreaker::new(1, Duration::from_secs(60));
    let client = ForwardLayer::new(ezt.client.clone()).circuit_breaker(breaker.clone()).layer(hyper_client());
    let post = || Request::post(target.url("/unavailable")).body(TestBody::from("{}")).unwrap();
    let kept = client.clone().oneshot(post()).await.unwrap();
    assert_eq!(kept.status(), StatusCode::SERVICE_UNAVAILABLE, "the POST may have run: not forwarded");
    assert!(kept.extensions().get::<ForwardFailed>().is_some());
    assert!(ezt.store.is_empty());
    assert_eq!(breaker.state(&target.host()), CircuitState::Open, "the 503 still counts for the breaker");
    // While open the POST goes to EZThrottle without touching the target: it runs once.
    let response = client.oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(target.direct_hits().len(), 1);
    assert_eq!(ezt.store.len(), 1);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_host_does_not_resolve_was_not_sent_and_is_forwarded() {
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::connect::dns::Name;
    use hyper_util::rt::TokioExecutor;

    let ezt = Ezt::start().await;
    // A resolver that knows no name: the connect fails before anything is written, with an
    // error whose chain tells nothing (no `io::ErrorKind` of a refused connection), so only
    // hyper-util's `is_connect()` proves "not sent".
    let resolver = tower::service_fn(|_: Name| async {
        Err::<std::vec::IntoIter<std::net::SocketAddr>, _>(std::io::Error::other("no such host"))
    });
    let http = Client::builder(TokioExecutor::new()).build::<_, TestBody>(HttpConnector::new_with_resolver(resolver));
    let client = ForwardLayer::new(ezt.client.clone()).layer(http);
    // `localhost` (from /etc/hosts, no DNS query) on a refused loopback port: when the
    // engine runs the job, it stays on the loopback too.
    let port = ezthrottle_test_support::refused_addr().await.port();
    let request = Request::post(format!("http://localhost:{port}/orders")).body(TestBody::from("{}")).unwrap();
    let response = client.oneshot(request).await.expect("forwarded, so an answer");
    let job = response.extensions().get::<ForwardedJob>().expect("a POST that was not sent is forwarded");
    assert_eq!(job.reason, ezthrottle_tower::ForwardReason::TransportError);
    assert_eq!(ezt.store.len(), 1);
    ezt.shutdown().await;
}
