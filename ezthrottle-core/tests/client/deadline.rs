//! A submission never stalls the caller: the submission deadline, bounded retries, and the
//! client's circuit breaker for EZThrottle.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ezthrottle_core::{EZThrottle, Error, Job, USER_AGENT};

use ezthrottle_test_support::{BlackHole, CountingResolver};

use crate::support::{Answer, TestServer, receipt};

/// The most a stalled test waits before it fails as a stall.
const STALL: Duration = Duration::from_secs(10);

fn job() -> Job {
    let mut job = Job::new("https://api.example.com/orders");
    job.idempotent_key = Some("order-7".into());
    job
}

async fn within_stall<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STALL, call).await.unwrap_or_else(|_| panic!("{what} stalled the caller"))
}

#[tokio::test]
async fn a_black_holed_ezthrottle_costs_the_deadline_not_the_timeout() {
    let hole = BlackHole::start().await;
    let deadline = Duration::from_millis(300);
    let client = EZThrottle::builder().direct(&hole.url).submit_deadline(deadline).build().expect("client");
    let started = Instant::now();
    let error = within_stall("a black-holed submission", client.submit_job(&job())).await.expect_err("no answer");
    let took = started.elapsed();
    assert!(error.is_answer_unknown() && !error.is_not_sent() && error.is_timeout(), "{error:?}");
    assert!(took < deadline * 10, "returned after {took:?}");
}

#[tokio::test]
async fn forward_or_fallback_does_not_fall_back_when_the_answer_is_unknown() {
    let hole = BlackHole::start().await;
    let client =
        EZThrottle::builder().direct(&hole.url).submit_deadline(Duration::from_millis(300)).build().expect("client");
    let ran = std::sync::atomic::AtomicBool::new(false);
    let job = job();
    let outcome = client.forward_or_fallback(&job, || async { ran.store(true, Ordering::SeqCst) });
    let error = within_stall("forward_or_fallback", outcome).await.expect_err("the answer is unknown");
    assert!(error.is_answer_unknown(), "{error:?}");
    assert!(!ran.load(Ordering::SeqCst), "the job may have been accepted: the fallback must not run");
}

#[tokio::test]
async fn a_timeout_is_never_retried() {
    let slow = TestServer::always(|| Answer::json(201, receipt("late")).after(Duration::from_secs(5))).await;
    let client = EZThrottle::builder()
        .direct(&slow.url)
        .timeout(Duration::from_millis(200))
        .submit_deadline(Duration::from_secs(5))
        .build()
        .expect("client");
    let error = within_stall("a slow EZThrottle", client.submit_job(&job())).await.expect_err("timed out");
    assert!(error.is_answer_unknown() && error.is_timeout(), "{error:?}");
    slow.wait_hits("/api/v1/jobs", 1).await;
    assert_eq!(slow.requests().len(), 1, "a request that may have been accepted is not sent again");
}

#[tokio::test]
async fn unavailable_answers_are_retried_with_the_same_job_and_key() {
    let engine = TestServer::start(|request| {
        if request.nth <= 2 { Answer::text(503, "restarting") } else { Answer::json(202, receipt("job_r")) }
    })
    .await;
    let client = EZThrottle::builder().direct(&engine.url).build().expect("client");
    let receipt = within_stall("retries", client.submit_job(&job())).await.expect("accepted on the third attempt");
    assert_eq!(receipt.job_id, "job_r");
    let sent = engine.requests();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    for request in &sent {
        assert_eq!(request.body, sent[0].body, "every attempt sends the same job");
        assert_eq!(request.json()["idempotent_key"], "order-7");
        assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    }
}

#[tokio::test]
async fn a_429_is_retried_only_when_its_retry_after_fits_the_deadline() {
    let far = TestServer::always(|| Answer::text(429, "queue full").header("retry-after", "60")).await;
    let client = EZThrottle::builder().direct(&far.url).build().expect("client");
    let started = Instant::now();
    let error = within_stall("a far Retry-After", client.submit_job(&job())).await.expect_err("rate limited");
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "returned at once, not after waiting");
    assert_eq!(far.requests().len(), 1);

    let near = TestServer::start(|request| {
        if request.nth == 1 {
            Answer::text(429, "queue full").header("retry-after", "0.2")
        } else {
            Answer::json(202, receipt("job_n"))
        }
    })
    .await;
    let client = EZThrottle::builder().direct(&near.url).build().expect("client");
    let receipt = within_stall("a near Retry-After", client.submit_job(&job())).await.expect("accepted");
    assert_eq!(receipt.job_id, "job_n");
    let sent = near.requests();
    assert_eq!(sent.len(), 2);
    let waited = sent[1].at.duration_since(sent[0].at);
    assert!(waited >= Duration::from_millis(150), "the retry waited for Retry-After: {waited:?}");
}

#[tokio::test]
async fn the_breaker_opens_sends_nothing_while_open_and_probes_once() {
    // Down now, bound again when EZThrottle comes back.
    let addr = ezthrottle_test_support::free_addr().await;
    let resolver = CountingResolver::new(addr);
    let client = EZThrottle::builder()
        .direct(format!("http://ezthrottle.invalid:{}", addr.port()))
        .http_client(resolver.http_client())
        .breaker_threshold(2)
        .breaker_cool_down(Duration::from_millis(300))
        .build()
        .expect("client");

    // Two submissions fail to connect, each after its retries; then the breaker opens.
    let error = within_stall("refused", client.submit_job(&job())).await.expect_err("refused");
    assert!(matches!(error, Error::Unreachable { .. }) && error.is_not_sent(), "{error:?}");
    let per_submission = resolver.lookups();
    assert!(per_submission > 1, "a connection failure is retried: {per_submission} attempts");
    let error = within_stall("refused", client.submit_job(&job())).await.expect_err("refused");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let attempts = resolver.lookups();
    assert_eq!(attempts, 2 * per_submission);

    // Open: every clone returns at once, and nothing tries to connect.
    let clone = client.clone();
    let started = Instant::now();
    let mut probe_in = Duration::ZERO;
    for _ in 0..100 {
        let error = clone.submit_job(&job()).await.expect_err("the breaker is open");
        let Error::EZThrottleUnavailable { failures, probe_in: next } = error else { panic!("{error:?}") };
        assert_eq!(failures, 2);
        probe_in = next;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "100 refusals took {took:?}");
    assert_eq!(resolver.lookups(), attempts, "no connection attempt while open");

    // After the cool-down, one probe (a single attempt), and it opens the breaker again.
    tokio::time::sleep(probe_in).await;
    let error = within_stall("the probe", client.submit_job(&job())).await.expect_err("still refused");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert_eq!(resolver.lookups(), attempts + 1, "exactly one probe");
    let error = client.submit_job(&job()).await.expect_err("open again");
    let Error::EZThrottleUnavailable { probe_in, .. } = error else { panic!("{error:?}") };
    assert_eq!(resolver.lookups(), attempts + 1);

    // EZThrottle is back: the next probe succeeds and closes the breaker.
    let engine = TestServer::start_on(addr, |_| Answer::json(202, receipt("job_back"))).await;
    tokio::time::sleep(probe_in).await;
    let receipt = within_stall("the probe", client.submit_job(&job())).await.expect("accepted");
    assert_eq!(receipt.job_id, "job_back");
    clone.submit_job(&job()).await.expect("closed: accepted");
    assert_eq!(engine.requests().len(), 2);
}
