//! Receive EZThrottle webhooks in axum: verified signatures, secret rotation, duplicates
//! suppressed.
//!
//! ```sh
//! cargo run --example axum_webhook
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo API and a webhook
//! receiver built from `VerifyWebhookLayer`, the `VerifiedWebhook` extractor (its
//! `Verifier` from the router state, with a primary and a secondary secret) and
//! `IdempotencyLayer::memory()`. Then:
//!
//! 1. a job is submitted to the engine; its signed webhook arrives and is verified;
//! 2. a correctly signed delivery is posted twice: the handler runs once, the repeat gets
//!    the stored answer;
//! 3. a delivery with a bad signature gets `401`, one without a signature `400`;
//! 4. a delivery signed with the secondary (previous) secret is accepted.
//!
//! It exits non-zero if anything did not happen as described.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::post;
use ezthrottle::inbox::WebhookInbox;
use ezthrottle::tower::idempotency::IdempotencyLayer;
use ezthrottle::tower::webhook::VerifiedWebhook;
use ezthrottle::tower::webhook::VerifyWebhookLayer;
use ezthrottle::webhook::Verifier;
use support::Failure;

/// The secret EZThrottle signs with now.
const SECRET: &str = "axum-example-secret-2";
/// The previous secret, still accepted while senders switch over (rotation).
const PREVIOUS_SECRET: &str = "axum-example-secret-1";

/// The receiver's state. The `VerifiedWebhook` extractor finds the verifier through `FromRef`.
#[derive(Clone)]
struct Receiver {
    verifier: Verifier,
    inbox: WebhookInbox,
    runs: Arc<AtomicUsize>,
}

impl FromRef<Receiver> for Verifier {
    fn from_ref(receiver: &Receiver) -> Self {
        receiver.verifier.clone()
    }
}

/// Runs once per verified delivery of a job: repeats are answered by the idempotency layer.
async fn webhook(State(receiver): State<Receiver>, delivery: VerifiedWebhook) -> &'static str {
    let run = receiver.runs.fetch_add(1, Ordering::SeqCst) + 1;
    support::print_run(run, &delivery, delivery.secret());
    receiver.inbox.record(delivery.into_inner());
    "ok"
}

fn receiver_app(receiver: Receiver) -> Router {
    let verify = VerifyWebhookLayer::new(receiver.verifier.clone());
    Router::new()
        .route("/webhook", post(webhook))
        // The last `route_layer` is the outermost: the signature is checked *before* the
        // idempotency check, so an unsigned or forged request can neither replay a stored
        // answer nor claim a job's key. The extractor then reuses that verification.
        .route_layer(IdempotencyLayer::memory())
        .route_layer(verify)
        .with_state(receiver)
}

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("1. Starting the engine, a demo API and the webhook receiver on 127.0.0.1");
    let (engine, client) = support::start_engine(SECRET).await?;
    let inbox = WebhookInbox::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let verifier = Verifier::new(SECRET)?.with_secondary(PREVIOUS_SECRET)?;
    let receiver =
        support::serve(receiver_app(Receiver { verifier, inbox: inbox.clone(), runs: runs.clone() })).await?;
    let url = format!("http://{receiver}/webhook");
    println!("   engine    {}", engine.base_url());
    println!("   receiver  {url}");

    let runs_now = || runs.load(Ordering::SeqCst);
    support::exercise_receiver(&client, &url, &inbox, (SECRET, PREVIOUS_SECRET), runs_now).await?;

    engine.shutdown().await;
    println!(
        "\nDone in {:.1} s: the handler ran {} times, once per job; every bad delivery was refused.",
        started.elapsed().as_secs_f64(),
        runs.load(Ordering::SeqCst)
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    support::exit_with("axum_webhook", run().await);
}
