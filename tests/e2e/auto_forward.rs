//! `#[auto_forward]` -> engine -> signed webhook -> `VerifiedWebhook` -> inbox.

use ezthrottle::{DeliveryStatus, EZThrottle, ForwardToEZThrottle, Outcome, Webhook, auto_forward};
use ezthrottle_test_support::{DEADLINE, engine};

use crate::{SECRET, engine_attempts, limited_api, verified_inbox};

/// Legacy code: gives up on a 429 and describes the request instead.
#[auto_forward(client = client, idempotent_key = format!("invoice-{order}"), webhooks = [Webhook::new(webhook)])]
async fn send_invoice(
    client: &EZThrottle,
    url: &str,
    webhook: &str,
    order: u32,
) -> Result<String, ForwardToEZThrottle> {
    let body = format!(r#"{{"order":{order}}}"#);
    let retry_later = || {
        ForwardToEZThrottle::post(url, body.clone()).map_step(|step| step.header("content-type", "application/json"))
    };
    let response = reqwest::Client::new().post(url).body(body.clone()).send().await.map_err(|_| retry_later())?;
    if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(retry_later());
    }
    response.text().await.map_err(|_| retry_later())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_forwarded_failure_comes_back_as_a_verified_webhook_in_the_inbox() {
    let api = limited_api().await;
    let (engine, client) = engine::start_open(SECRET).await;
    let (webhook_url, inbox) = verified_inbox().await;

    let outcome = send_invoice(&client, &api.url("/invoices/42"), &webhook_url, 42).await.expect("forwarded");
    let Outcome::Forwarded(receipt) = outcome else { panic!("expected a forward, got {outcome:?}") };
    assert_eq!(receipt.idempotent_key.as_deref(), Some("invoice-42"));

    // Awaited by the idempotency key the attribute set.
    let payload = inbox.wait("invoice-42", DEADLINE).await.expect("the webhook resolves the inbox");
    assert_eq!(payload.job_id, receipt.job_id);
    assert_eq!(payload.status, DeliveryStatus::Success);
    assert_eq!(payload.response.map(|r| r.status_code), Some(200));

    let attempts = engine_attempts(&api);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].body, r#"{"order":42}"#.as_bytes());
    assert_eq!(attempts[0].header("content-type"), Some("application/json"));
    engine.shutdown().await;
}
