//! Managing the webhook secret: create, read (masked), rotate without dropping a delivery,
//! delete.
//!
//! ```sh
//! cargo run --example secrets
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine (with an API key, as the cloud
//! service has) and a webhook receiver that captures each delivery's raw body and
//! `X-EZThrottle-Signature` header. Then, with the client:
//!
//! 1. a secret shorter than 16 characters is refused before anything is sent;
//! 2. `create_webhook_secret`, then `get_webhook_secret` (the server only answers it masked);
//! 3. a job runs; its delivery is signed with that first secret;
//! 4. `rotate_webhook_secret(new, previous)`: new deliveries are signed with the new
//!    secret, and a receiver verifying with `Verifier::new(new).with_secondary(previous)`
//!    still accepts the deliveries signed before the switch;
//! 5. `delete_webhook_secret`, then `get_webhook_secret` reports that none is configured.
//!
//! It exits non-zero if anything did not happen as expected.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use ezthrottle::local::Engine;
use ezthrottle::webhook::{SecretSlot, Verifier};
use ezthrottle::{EZThrottle, Error, Step, Webhook};
use support::{Failure, serve};
use tokio::sync::mpsc;

const API_KEY: &str = "ck_example_secrets";
const FIRST_SECRET: &str = "whsec_first_0123456789";
const SECOND_SECRET: &str = "whsec_second_9876543210";
const WAIT: Duration = Duration::from_secs(10);

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("Starting the engine (API key required) and a webhook receiver on 127.0.0.1");
    let engine = Engine::builder().api_key(API_KEY).start().await?;
    let (captured, mut deliveries) = mpsc::unbounded_channel();
    let receiver = serve(receiver(captured)).await?;
    let client = EZThrottle::builder().api_key(API_KEY).direct(engine.base_url()).build()?;
    println!("   engine    {}", engine.base_url());
    println!("   receiver  http://{receiver}/webhook");

    println!("\n1. A secret under 16 characters is refused before any network call");
    // This client points at a port nothing listens on: an `Unreachable` error would mean
    // the request was sent; `InvalidInput` means it never left the process.
    let nowhere = EZThrottle::builder().api_key(API_KEY).direct(format!("http://{}", support::free_port()?)).build()?;
    match nowhere.create_webhook_secret("too-short", None).await {
        Err(Error::InvalidInput { field, reason }) => println!("   refused: {field} {reason}"),
        other => return Err(format!("expected InvalidInput, got {other:?}").into()),
    }

    println!("\n2. Create the secret, then read it back");
    match client.get_webhook_secret().await {
        Err(Error::NoWebhookSecrets) => println!("   before: none configured"),
        other => return Err(format!("expected no secret yet, got {other:?}").into()),
    }
    client.create_webhook_secret(FIRST_SECRET, None).await?;
    let view = client.get_webhook_secret().await?;
    println!("   primary {}  secondary {}", view.primary_secret, view.secondary_secret.as_deref().unwrap_or("none"));
    // The server never answers a secret in clear.
    if view.primary_secret.contains(FIRST_SECRET) || view.has_secondary {
        return Err(format!("unexpected view {view:?}").into());
    }

    println!("\n3. A job runs; its webhook is signed with the first secret");
    let target = format!("{}/health", engine.base_url());
    let webhook = Webhook::new(format!("http://{receiver}/webhook"));
    let before = deliver_one(&client, &target, &webhook, "before-rotation", &mut deliveries).await?;
    println!("   captured: {}", before.signature);

    println!("\n4. Rotate: the new secret signs, the previous one stays valid for receivers");
    client.rotate_webhook_secret(SECOND_SECRET, FIRST_SECRET).await?;
    let view = client.get_webhook_secret().await?;
    println!("   primary {}  secondary {}", view.primary_secret, view.secondary_secret.as_deref().unwrap_or("none"));
    if !view.has_secondary {
        return Err("the rotation kept no secondary secret".into());
    }
    let after = deliver_one(&client, &target, &webhook, "after-rotation", &mut deliveries).await?;
    // A receiver updated for the rotation: the new secret first, the previous one second.
    let rotating = Verifier::new(SECOND_SECRET)?.with_secondary(FIRST_SECRET)?;
    let old = rotating.verify(&before.body, &before.signature)?;
    let new = rotating.verify(&after.body, &after.signature)?;
    println!("   delivery before the rotation: {} ({:?} secret)", old.reason(), old.secret());
    println!("   delivery after the rotation:  {} ({:?} secret)", new.reason(), new.secret());
    if old.secret() != SecretSlot::Secondary || new.secret() != SecretSlot::Primary {
        return Err("the deliveries did not verify with the expected secrets".into());
    }
    // Without the secondary, the delivery signed before the switch would be rejected.
    match Verifier::new(SECOND_SECRET)?.verify(&before.body, &before.signature) {
        Err(error) => println!("   with the new secret alone it fails: {}", error.reason()),
        Ok(_) => return Err("the old delivery verified without the previous secret".into()),
    }

    println!("\n5. Delete the secrets, then read again");
    client.delete_webhook_secret().await?;
    match client.get_webhook_secret().await {
        Err(error @ Error::NoWebhookSecrets) => println!("   after: {error}"),
        other => return Err(format!("expected no secret after delete, got {other:?}").into()),
    }

    engine.shutdown().await;
    println!("\nDone in {:.1}s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// One webhook delivery as it arrived: the raw body and its signature header.
struct Delivery {
    body: Bytes,
    signature: String,
}

/// Submits a job (a GET of `target`) and waits for its delivery at the receiver.
async fn deliver_one(
    client: &EZThrottle,
    target: &str,
    webhook: &Webhook,
    key: &str,
    deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
) -> Result<Delivery, Failure> {
    let outcome = Step::new(target).webhook(webhook.clone()).idempotent_key(key).execute(client).await?;
    let receipt = outcome.receipt().ok_or("the job was not submitted")?;
    println!("   job {} submitted", receipt.job_id);
    let delivery = tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .map_err(|_| format!("no delivery within {WAIT:?}"))?
        .ok_or("the receiver stopped")?;
    if delivery.signature.is_empty() {
        return Err("the delivery was not signed".into());
    }
    Ok(delivery)
}

/// Captures every delivery as received, without verifying: step 4 verifies them later.
fn receiver(captured: mpsc::UnboundedSender<Delivery>) -> Router {
    async fn capture(
        State(captured): State<mpsc::UnboundedSender<Delivery>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> &'static str {
        let signature = headers.get("x-ezthrottle-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let _ = captured.send(Delivery { body, signature: signature.to_owned() });
        "ok"
    }
    Router::new().route("/webhook", post(capture)).with_state(captured)
}

#[tokio::main]
async fn main() {
    support::exit_with("secrets", run().await);
}
