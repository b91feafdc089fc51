//! The whole story, offline, in one process.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo "rate-limited API"
//! (3 requests per second; bursts get `429` with `Retry-After`; every answer carries
//! `X-EZTHROTTLE-RPS` so EZThrottle paces itself to it) and a webhook receiver that verifies
//! signatures and drops duplicate deliveries. Then:
//!
//! 1. a burst of FRUGAL calls: each runs here first, the 429s are forwarded as jobs;
//! 2. a workflow: a failing primary, a fallback on 500, an `on_success` child;
//! 3. every webhook is awaited, verified and de-duplicated;
//! 4. a closing table: job, attempts, final status, time to webhook.
//!
//! It exits non-zero if anything went wrong.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ezthrottle::webhook::Verifier;
use ezthrottle::{EZThrottle, Step, StepOutcome, StepType, Trigger, Webhook, WebhookPayload};
use ezthrottle_local::Engine;
use tokio::sync::mpsc;

const SECRET: &str = "quickstart-webhook-secret";
const BURST: usize = 8;
const DEADLINE: Duration = Duration::from_secs(45);

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("\nquickstart failed: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("1. Starting everything on 127.0.0.1");
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await?;
    let api = serve(demo_api()).await?;
    let (deliveries, mut arrived) = mpsc::unbounded_channel();
    let receiver = serve(webhook_receiver(deliveries)).await?;
    let webhook_url = format!("http://{receiver}/webhook");
    println!("   engine      {}", engine.base_url());
    println!("   demo API    http://{api}  (3 req/s, bursts answered 429 + Retry-After)");
    println!("   receiver    {webhook_url}  (verifies X-EZThrottle-Signature)");
    let client = EZThrottle::builder().direct(engine.base_url()).build()?;

    println!("\n2. A burst of {BURST} FRUGAL calls: each runs here first; 429s are forwarded");
    let mut expected: Vec<Expected> = Vec::new();
    for order in 0..BURST {
        let url = format!("http://{api}/orders/{order}");
        let outcome = Step::new(&url)
            .step_type(StepType::Frugal)
            .webhook(Webhook::new(&webhook_url))
            .idempotent_key(format!("order-{order}"))
            .execute(&client)
            .await?;
        match outcome {
            StepOutcome::ExecutedLocally { response, .. } => {
                println!("   order {order}: executed here, {}", response.status);
            }
            StepOutcome::Forwarded(receipt) => {
                println!("   order {order}: 429 here, forwarded as {} ({})", receipt.job_id, receipt.status);
                expected.push(Expected { job_id: receipt.job_id, what: format!("order {order}") });
            }
            StepOutcome::FailedLocally { response, .. } => {
                return Err(format!("order {order} failed here with {}", response.status).into());
            }
            other => return Err(format!("order {order}: unexpected outcome {other:?}").into()),
        }
    }
    if expected.is_empty() {
        return Err("the burst was never rate limited; nothing was forwarded".into());
    }

    println!("\n3. A workflow: the primary answers 500, a fallback on 500 takes over, then an on_success child");
    let workflow = Step::new(format!("http://{api}/flaky"))
        .webhook(Webhook::new(&webhook_url))
        .idempotent_key("workflow")
        .fallback(Step::new(format!("http://{api}/orders/backup")), Trigger::on_error([500]))
        .on_success(
            Step::new(format!("http://{api}/notify")).webhook(Webhook::new(&webhook_url)).idempotent_key("notify"),
        )
        .execute(&client)
        .await?;
    let receipt = workflow.receipt().ok_or("the workflow was not forwarded")?;
    println!("   workflow submitted as {}", receipt.job_id);
    expected.push(Expected { job_id: receipt.job_id.clone(), what: "workflow".into() });
    // The child is a new job spawned by the engine: its id is learned from its webhook.
    let children_expected = 1;

    println!("\n4. Waiting for every webhook (verified, duplicates dropped)");
    let submitted = Instant::now();
    let mut received: HashMap<String, (WebhookPayload, Duration)> = HashMap::new();
    let total = expected.len() + children_expected;
    while received.len() < total {
        print!("\r   received {}/{total} ", received.len());
        let remaining = DEADLINE.checked_sub(submitted.elapsed()).ok_or("timed out waiting for webhooks")?;
        match tokio::time::timeout(remaining, arrived.recv()).await {
            Ok(Some(payload)) => {
                received.insert(payload.job_id.clone(), (payload, submitted.elapsed()));
            }
            Ok(None) => return Err("the receiver stopped".into()),
            Err(_) => return Err(format!("timed out with {}/{total} webhooks", received.len()).into()),
        }
    }
    println!("\r   received {total}/{total}: all delivered");

    println!("\n5. Summary");
    println!("   {:<38} {:<10} {:>8} {:<8} {:>10}", "job", "what", "attempts", "status", "to webhook");
    let mut failures = 0;
    let known: HashSet<&str> = expected.iter().map(|e| e.job_id.as_str()).collect();
    let children = received
        .keys()
        .filter(|id| !known.contains(id.as_str()))
        .map(|id| Expected { job_id: id.clone(), what: "on_success".into() });
    let rows: Vec<Expected> = expected.iter().cloned().chain(children).collect();
    for row in rows {
        let (payload, latency) = received.get(&row.job_id).ok_or_else(|| format!("no webhook for {}", row.job_id))?;
        let attempts = job_attempts(&engine.base_url(), &row.job_id).await.unwrap_or(0);
        let status = format!("{:?}", payload.status).to_lowercase();
        if status != "success" {
            failures += 1;
        }
        println!(
            "   {:<38} {:<10} {:>8} {:<8} {:>9.1}s",
            row.job_id,
            row.what,
            attempts,
            status,
            latency.as_secs_f64()
        );
    }
    engine.shutdown().await;
    if failures > 0 {
        return Err(format!("{failures} job(s) did not succeed").into());
    }
    println!(
        "\nDone in {:.1}s: every call answered, every forwarded job executed and delivered.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Clone)]
struct Expected {
    job_id: String,
    what: String,
}

/// How many attempts the engine made for a job (from `GET /api/v1/jobs/{id}`).
async fn job_attempts(base_url: &str, job_id: &str) -> Result<usize, Failure> {
    let body = reqwest::get(format!("{base_url}/api/v1/jobs/{job_id}")).await?.error_for_status()?.bytes().await?;
    let view: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(view["attempts"].as_array().map_or(0, Vec::len))
}

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

/// A demo API allowing 3 requests in any second; it tells EZThrottle to send 3 per second.
fn demo_api() -> Router {
    let window: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let answer = |window: &Mutex<VecDeque<Instant>>, status: StatusCode, body: String| -> Response {
        let now = Instant::now();
        let mut recent = window.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while recent.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1)) {
            recent.pop_front();
        }
        let pace = [("x-ezthrottle-rps", "3")];
        if recent.len() >= 3 {
            return (StatusCode::TOO_MANY_REQUESTS, pace, [("retry-after", "1")], "slow down").into_response();
        }
        recent.push_back(now);
        (status, pace, body).into_response()
    };
    let orders = {
        let window = window.clone();
        move |Path(order): Path<String>| async move { answer(&window, StatusCode::OK, format!("order {order} placed")) }
    };
    let notify = {
        let window = window.clone();
        move || async move { answer(&window, StatusCode::OK, "customer notified".into()) }
    };
    let flaky = move || async move { answer(&window, StatusCode::INTERNAL_SERVER_ERROR, "primary is down".into()) };
    Router::new().route("/orders/{order}", get(orders)).route("/notify", get(notify)).route("/flaky", get(flaky))
}

/// Verifies each delivery over its raw bytes, drops repeats, hands new ones to `deliveries`.
fn webhook_receiver(deliveries: mpsc::UnboundedSender<WebhookPayload>) -> Router {
    struct Receiver {
        verifier: Verifier,
        seen: Mutex<HashSet<String>>,
        deliveries: mpsc::UnboundedSender<WebhookPayload>,
    }
    async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let header = headers.get("x-ezthrottle-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if let Err(error) = receiver.verifier.verify(&body, header) {
            eprintln!("   rejected a delivery: {}", error.reason());
            return StatusCode::UNAUTHORIZED;
        }
        let Ok(payload) = serde_json::from_slice::<WebhookPayload>(&body) else {
            return StatusCode::UNPROCESSABLE_ENTITY;
        };
        let first_time = receiver.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(payload.job_id.clone());
        if first_time {
            let _ = receiver.deliveries.send(payload);
        }
        StatusCode::OK
    }
    let state = Arc::new(Receiver { verifier: Verifier::new(SECRET), seen: Mutex::default(), deliveries });
    Router::new().route("/webhook", post(receive)).with_state(state)
}
