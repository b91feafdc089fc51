//! PERFORMANCE -> FRUGAL workflows: the parent runs on the engine, and its FRUGAL child
//! comes back in the parent's signed webhook and runs at the receiver, once.

use std::time::Duration;

use ezthrottle::inbox::{Inbox, WebhookInbox, WorkflowInbox};
use ezthrottle::local::Engine;
use ezthrottle::protocol::headers::JOB_ID_HEADER;
use ezthrottle::tower::axum::webhook_routes;
use ezthrottle::tower::webhook::RedisInbox;
use ezthrottle::webhook::Verifier;
use ezthrottle::{EZThrottle, Method, Step, StepType, Webhook};
use ezthrottle_test_support::{Answer, Recorded, RedisServer, TestServer, poll, serve};

use crate::SECRET;

/// A receiver replica: `webhook_routes` over a [`WorkflowInbox`] of `inbox`. Its URL.
async fn receiver<I: Inbox + Clone + 'static>(inbox: I, client: &EZThrottle) -> String {
    let verifier = Verifier::new(SECRET).unwrap();
    format!("http://{}/webhook", serve(webhook_routes(verifier, WorkflowInbox::new(inbox, client.clone()))).await)
}

fn redis_inbox(redis: &RedisServer) -> RedisInbox {
    RedisInbox::open(&redis.url).expect("a Redis URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frugal_child_runs_once_when_its_parents_webhook_comes_four_times_to_two_replicas() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await.expect("engine");
    let payments = TestServer::always(|| Answer::text(200, "charged")).await;
    let analytics = TestServer::always(|| Answer::text(200, "tracked")).await;
    let client = EZThrottle::builder().direct(engine.base_url()).build().expect("client");
    // Two app replicas behind their own URLs, sharing one Redis.
    let (a, b) = (receiver(redis_inbox(&redis), &client).await, receiver(redis_inbox(&redis), &client).await);
    let observer = redis_inbox(&redis);
    let mut deliveries = observer.subscribe().await.expect("subscribed");

    let parent = Step::new(payments.url("/charge"))
        .method(Method::POST)
        .body(r#"{"amount":100}"#)
        .webhook(Webhook::new(&a))
        .webhook(Webhook::new(&b))
        .on_success(
            Step::new(analytics.url("/track"))
                .method(Method::POST)
                .body(r#"{"event":"charged"}"#)
                .step_type(StepType::Frugal)
                .idempotent_key("track-charge-1"),
        );
    let job = parent.to_job();
    assert!(job.on_success.is_none(), "a FRUGAL child is not sent for EZThrottle to run: {job:?}");
    let receipt = client.submit_job(&job).await.expect("submitted");

    // The engine delivers to both replicas at once; a redelivery sends both again.
    let mut seen = 0;
    while seen < 4 {
        let delivery = tokio::time::timeout(Duration::from_secs(20), deliveries.recv()).await.expect("in time");
        if delivery.expect("open").job_id == receipt.job_id {
            seen += 1;
        }
        if seen == 2 {
            // Refused (409) until the engine has settled the first two deliveries.
            poll("the redelivery", || async { client.redeliver_job(&receipt.job_id).await.ok() }).await;
        }
    }

    let run = analytics.wait_for(|request: &Recorded| request.path == "/track").await;
    assert_eq!(run.method, Method::POST);
    assert_eq!(run.body_text(), r#"{"event":"charged"}"#);
    assert!(run.header(JOB_ID_HEADER).is_none(), "the child ran at the receiver, not on the engine: {run:?}");
    // Every delivery was recorded before the wait above ended; a second run would have
    // started right after its own. None comes.
    let again = tokio::time::timeout(Duration::from_millis(500), analytics.wait_hits("/track", 2)).await;
    assert!(again.is_err(), "the child ran more than once: {:#?}", analytics.requests());
    assert_eq!(payments.requests().len(), 1, "the parent ran once, on the engine");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_frugal_on_failure_that_fails_here_is_forwarded_by_its_own_rules() {
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await.expect("engine");
    let payments = TestServer::always(|| Answer::text(400, "card declined")).await;
    // Refuses the app with a 503 (in the child's fallback_on_error), serves the engine.
    let alerts = TestServer::start(|request: &Recorded| match request.header(JOB_ID_HEADER) {
        Some(_) => Answer::text(200, "alerted"),
        None => Answer::text(503, "busy"),
    })
    .await;
    let client = EZThrottle::builder().direct(engine.base_url()).build().expect("client");
    let inbox = WebhookInbox::new();
    let hook = receiver(inbox.clone(), &client).await;

    let parent = Step::new(payments.url("/charge"))
        .webhook(Webhook::new(&hook))
        .on_success(Step::new(alerts.url("/never")).step_type(StepType::Frugal))
        .on_failure(Step::new(alerts.url("/alert")).step_type(StepType::Frugal).idempotent_key("alert-1"), None);
    let receipt = client.submit_job(&parent.to_job()).await.expect("submitted");
    let delivered = inbox.wait(&receipt.job_id, Duration::from_secs(20)).await.expect("delivered");
    assert_eq!(delivered.status, ezthrottle::DeliveryStatus::Failed);

    let here = alerts.wait_for(|request: &Recorded| request.header(JOB_ID_HEADER).is_none()).await;
    assert_eq!(here.path, "/alert", "the failure's child, not the success's");
    let forwarded = alerts.wait_for(|request: &Recorded| request.header(JOB_ID_HEADER).is_some()).await;
    assert_eq!(forwarded.path, "/alert");
    let job_id = forwarded.header(JOB_ID_HEADER).unwrap_or_default().to_owned();
    let snapshot = client.get_job(&job_id).await.expect("the forwarded child is a job");
    assert_eq!(snapshot.idempotent_key.as_deref(), Some("alert-1"), "forwarded with the key it was built with");
    assert!(alerts.hits("/never").is_empty(), "{:#?}", alerts.requests());
    engine.shutdown().await;
}

#[tokio::test]
async fn past_max_running_recording_waits_for_a_running_child_to_finish() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let api = TestServer::start_async(move |request: Recorded| {
        let held = held.clone();
        async move {
            if request.path == "/first" {
                held.notified().await;
            }
            Answer::text(200, "ok")
        }
    })
    .await;
    let client = EZThrottle::builder().direct(api.url("")).build().expect("client");
    let inbox = WorkflowInbox::new(WebhookInbox::new(), client).max_running(1);
    let delivery = |job_id: &str, path: &str| {
        let parent = Step::new(api.url("/parent"))
            .webhook(Webhook::new(api.url("/webhook")))
            .on_success(Step::new(api.url(path)).step_type(StepType::Frugal));
        ezthrottle::WebhookPayload::new(job_id, ezthrottle::DeliveryStatus::Success)
            .with_metadata(parent.to_job().metadata)
    };

    assert!(inbox.record(delivery("job_1", "/first")).await.expect("recorded"));
    api.wait_hits("/first", 1).await;
    let second = tokio::spawn({
        let inbox = inbox.clone();
        let delivery = delivery("job_2", "/second");
        async move { inbox.record(delivery).await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!second.is_finished(), "the second delivery was recorded while the only slot was taken");
    assert!(api.hits("/second").is_empty());
    release.notify_one();
    assert!(second.await.unwrap().expect("recorded"));
    api.wait_hits("/second", 1).await;
}
