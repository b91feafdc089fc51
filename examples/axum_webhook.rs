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

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use ezthrottle::inbox::WebhookInbox;
use ezthrottle::local::Engine;
use ezthrottle::tower::REPLAY_HEADER;
use ezthrottle::tower::idempotency::IdempotencyLayer;
use ezthrottle::tower::webhook::VerifiedWebhook;
use ezthrottle::tower::webhook::{SIGNATURE_HEADER, VerifyWebhookLayer};
use ezthrottle::webhook::Verifier;
use ezthrottle::webhook::sign;
use ezthrottle::{DeliveryStatus, EZThrottle, Step, Webhook, WebhookPayload};

/// The secret EZThrottle signs with now.
const SECRET: &str = "axum-example-secret-2";
/// The previous secret, still accepted while senders switch over (rotation).
const PREVIOUS_SECRET: &str = "axum-example-secret-1";
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("\naxum_webhook failed: {error}");
        std::process::exit(1);
    }
}

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
    println!(
        "   handler run #{run}: {} {:?}, signed with the {:?} secret",
        delivery.job_id,
        delivery.status,
        delivery.secret()
    );
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
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await?;
    let api = serve(Router::new().route("/hello", get(|| async { "hello from the API" }))).await?;
    let inbox = WebhookInbox::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let verifier = Verifier::new(SECRET).with_secondary(PREVIOUS_SECRET);
    let receiver = serve(receiver_app(Receiver { verifier, inbox: inbox.clone(), runs: runs.clone() })).await?;
    let url = format!("http://{receiver}/webhook");
    println!("   engine    {}", engine.base_url());
    println!("   receiver  {url}");

    println!("\n2. A job submitted to the engine; waiting for its webhook");
    let client = EZThrottle::builder().direct(engine.base_url()).build()?;
    let job =
        Step::new(format!("http://{api}/hello")).webhook(Webhook::new(&url)).idempotent_key("greeting-1").to_job();
    // Submits, then waits for the delivery the handler records in the inbox.
    let payload = client.queue_and_wait(&job, &inbox, WEBHOOK_TIMEOUT).await?;
    let answer = payload.response.as_ref().map(|r| r.body.as_str()).unwrap_or_default();
    println!("   delivered: {} {:?}, the API answered {answer:?}", payload.job_id, payload.status);
    if payload.status != DeliveryStatus::Success {
        return Err(format!("the job did not succeed: {payload:?}").into());
    }
    let runs_before = runs.load(Ordering::SeqCst);

    println!("\n3. Deliveries by hand (EZThrottle delivers at least once)");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let body = serde_json::to_string(&WebhookPayload::new("job_by_hand_1", DeliveryStatus::Success))?;
    let forged = sign("not-the-secret", unix_now()?, body.as_bytes());
    // Forged first: it must not spoil the genuine delivery that follows.
    expect("bad signature", deliver(&http, &url, &body, Some(&forged)).await?, StatusCode::UNAUTHORIZED, false)?;
    let signed = sign(SECRET, unix_now()?, body.as_bytes());
    expect("signed", deliver(&http, &url, &body, Some(&signed)).await?, StatusCode::OK, false)?;
    expect("same delivery again", deliver(&http, &url, &body, Some(&signed)).await?, StatusCode::OK, true)?;
    expect("no signature", deliver(&http, &url, &body, None).await?, StatusCode::BAD_REQUEST, false)?;
    let ran = runs.load(Ordering::SeqCst) - runs_before;
    if ran != 1 {
        return Err(format!("the handler ran {ran} times for one delivery posted twice").into());
    }

    println!("\n4. A delivery signed with the previous secret, during a rotation");
    let body = serde_json::to_string(&WebhookPayload::new("job_by_hand_2", DeliveryStatus::Success))?;
    let signed = sign(PREVIOUS_SECRET, unix_now()?, body.as_bytes());
    expect("previous secret", deliver(&http, &url, &body, Some(&signed)).await?, StatusCode::OK, false)?;

    engine.shutdown().await;
    println!(
        "\nDone in {:.1} s: the handler ran {} times, once per job; every bad delivery was refused.",
        started.elapsed().as_secs_f64(),
        runs.load(Ordering::SeqCst)
    );
    Ok(())
}

/// Posts a delivery; answers its status, whether it was a replayed answer, and its body.
async fn deliver(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    signature: Option<&str>,
) -> Result<(StatusCode, bool, String), Failure> {
    let mut request = http.post(url).header("content-type", "application/json").body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = request.send().await?;
    let replayed = response.headers().get(REPLAY_HEADER).is_some_and(|value| value == "true");
    Ok((response.status(), replayed, response.text().await?))
}

/// Prints an answer and checks it is the expected one.
fn expect(
    what: &str,
    (status, replayed, body): (StatusCode, bool, String),
    want: StatusCode,
    replay: bool,
) -> Result<(), Failure> {
    let note = if replayed { " (replayed, the handler did not run)" } else { "" };
    println!("   {what:<20} -> {status} {body:?}{note}");
    if status != want || replayed != replay {
        return Err(format!("{what}: expected {want}{}", if replay { " replayed" } else { "" }).into());
    }
    Ok(())
}

fn unix_now() -> Result<i64, Failure> {
    Ok(i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?)
}

/// Serves `app` on a free loopback port.
async fn serve(app: Router) -> Result<SocketAddr, Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("server on {addr} stopped: {error}");
        }
    });
    Ok(addr)
}
