//! client -> engine -> signed webhook -> verified receiver -> `WebhookInbox` resolves
//! `queue_and_wait` and `execute_and_wait`.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ezthrottle::inbox::{StepDelivery, WebhookInbox};
use ezthrottle::local::Engine;
use ezthrottle::tower::axum::webhook_routes;
use ezthrottle::webhook::SecretSlot;
use ezthrottle::webhook::Verifier;
use ezthrottle::{DeliveryStatus, EZThrottle, Error, Step, StepType, Webhook};
use ezthrottle_test_support::serve;

use crate::{OLD_SECRET, SECRET, verified_receiver};

fn target_api() -> Router {
    Router::new().route("/hello", get(|| async { "hello from the API" }))
}

#[tokio::test]
async fn engine_deliveries_resolve_queue_and_wait_and_execute_and_wait() {
    // The engine signs with the OLD secret: the receiver rotates (new primary, old secondary).
    let engine = Engine::builder().open().webhook_secret(OLD_SECRET).start().await.expect("engine");
    let api = serve(target_api()).await;
    let inbox = WebhookInbox::new();
    let verifier = Verifier::new(SECRET).unwrap().with_secondary(OLD_SECRET).unwrap();
    let receiver = serve(webhook_routes(verifier, inbox.clone())).await;
    let hook = format!("http://{receiver}/webhook");
    let client = EZThrottle::builder().direct(engine.base_url()).build().expect("client");
    let mut subscription = inbox.subscribe();

    let job =
        Step::new(format!("http://{api}/hello")).webhook(Webhook::new(&hook)).idempotent_key("order-0001").to_job();
    let payload = client.queue_and_wait(&job, &inbox, Duration::from_secs(30)).await.expect("delivered");
    assert_eq!(payload.status, DeliveryStatus::Success);
    assert_eq!(payload.idempotent_key.as_deref(), Some("order-0001"));
    assert_eq!(payload.response.as_ref().map(|r| r.body.as_str()), Some("hello from the API"));
    let seen = tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.expect("in time").expect("open");
    assert_eq!(seen.job_id, payload.job_id);

    // A duplicate submission resolves with the original delivery.
    let again = client.queue_and_wait(&job, &inbox, Duration::from_secs(30)).await.expect("duplicate");
    assert_eq!(again.job_id, payload.job_id);

    // PERFORMANCE step: waits for the webhook.
    let step = Step::new(format!("http://{api}/hello")).webhook(Webhook::new(&hook)).idempotent_key("order-0002");
    match step.execute_and_wait(&client, &inbox, Duration::from_secs(30)).await.expect("step") {
        StepDelivery::Webhook { receipt, payload } => {
            assert_eq!(receipt.job_id, payload.job_id);
            assert_eq!(payload.status, DeliveryStatus::Success);
        }
        other => panic!("expected a webhook, got {other:?}"),
    }

    // FRUGAL step that succeeds here: the local result, no webhook.
    let frugal = Step::new(format!("http://{api}/hello")).step_type(StepType::Frugal).webhook(Webhook::new(&hook));
    match frugal.execute_and_wait(&client, &inbox, Duration::from_secs(5)).await.expect("frugal") {
        StepDelivery::Local(outcome) => {
            assert_eq!(outcome.local_response().map(|r| r.status.as_u16()), Some(200));
        }
        other => panic!("expected a local outcome, got {other:?}"),
    }

    // A job whose webhook goes nowhere times out with a typed error.
    let lost = Step::new(format!("http://{api}/hello")).webhook(Webhook::new(format!("http://{api}/nowhere"))).to_job();
    match client.queue_and_wait(&lost, &inbox, Duration::from_millis(300)).await {
        Err(Error::WaitTimedOut { job_id, .. }) => assert!(!job_id.is_empty()),
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn engine_signed_deliveries_pass_the_extractor() {
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await.expect("engine");
    let api = serve(target_api()).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, SecretSlot)>();
    let receiver = verified_receiver(move |delivery| {
        let _ = tx.send((delivery.payload.job_id.clone(), delivery.secret()));
    });
    let receiver = receiver.await;
    let client = EZThrottle::builder().direct(engine.base_url()).build().expect("client");
    let receipt = client
        .submit_job(&Step::new(format!("http://{api}/hello")).webhook(Webhook::new(&receiver)).to_job())
        .await
        .expect("submit");
    let (job_id, secret) =
        tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("in time").expect("open");
    assert_eq!(job_id, receipt.job_id);
    assert_eq!(secret, SecretSlot::Primary);
    engine.shutdown().await;
}
