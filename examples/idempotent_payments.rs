//! Idempotent payments: every order is charged exactly once, however often it is retried.
//!
//! ```sh
//! cargo run --example idempotent_payments
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a webhook receiver feeding a
//! `WebhookInbox`, and a payments API (`POST /payments`) built from the tower layers:
//!
//! - `IdempotencyLayer`: the first request with an `Idempotency-Key` charges; a repeat of it
//!   gets the stored answer (`X-Idempotent-Replay: true`) without charging again;
//! - `RateLimitLayer`: 4 requests per second, beyond that `429` with `Retry-After`;
//! - `PaceLayer`: every answer says `X-EZTHROTTLE-RPS: 3`, so EZThrottle paces itself to it.
//!
//! Then a flash sale: 10 payments at once, each a FRUGAL step carrying its `Idempotency-Key`
//! header and the same `idempotent_key`. The first few are charged here; the API answers the
//! rest 429 and they are forwarded to EZThrottle, which retries them paced to the API
//! instead of in a client-side retry storm. Two resubmissions follow: a forwarded payment
//! submitted again (EZThrottle answers a duplicate receipt, no new job) and a payment
//! charged here sent again through EZThrottle (the API replays its stored answer). Finally
//! it counts the charges: exactly one per order.
//!
//! It exits non-zero if anything did not happen as expected.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ezthrottle::tower::PaceLayer;
use ezthrottle::tower::REPLAY_HEADER;
use ezthrottle::tower::idempotency::{IdempotencyLayer, KeySource};
use ezthrottle::tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
use ezthrottle::{DeliveryStatus, EZThrottle, Method, Step, StepOutcome, StepType, Webhook};
use serde::Deserialize;
use serde_json::{Value, json};
use support::{Failure, WEBHOOK_WAIT, serve};

const SECRET: &str = "payments-webhook-secret";
const ORDERS: u32 = 10;

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("Starting the engine, the payments API and a webhook receiver on 127.0.0.1");
    let (engine, client) = support::start_engine(SECRET).await?;
    let ledger = Ledger::default();
    let limits = RateLimitLayer::new().rule(Rule::new(
        "payments",
        Scope::global(),
        Algorithm::sliding_window(4, Duration::from_secs(1)),
    ));
    let api = serve(payments_api(ledger.clone(), limits.clone())).await?;
    let (inbox, webhook) = support::start_receiver(SECRET).await?;
    println!("   engine    {}", engine.base_url());
    println!("   API       http://{api}/payments  (4 req/s, announces X-EZTHROTTLE-RPS: 3)");
    println!("   receiver  {webhook}");

    println!("\n1. The API refuses a payment without an Idempotency-Key");
    let bare = client
        .http_client()
        .post(format!("http://{api}/payments"))
        .header("content-type", "application/json")
        .body(payment_body(0).to_string())
        .send()
        .await?;
    let status = bare.status();
    println!("   {status}: {}", bare.text().await?);
    if status != StatusCode::BAD_REQUEST {
        return Err(format!("expected 400, got {status}").into());
    }

    println!("\n2. A flash sale: {ORDERS} payments at once, tried here first (FRUGAL)");
    let mut burst = tokio::task::JoinSet::new();
    for order in 1..=ORDERS {
        let (step, client) = (payment(api, order, &webhook).step_type(StepType::Frugal), client.clone());
        burst.spawn(async move { (order, step.execute(&client).await) });
    }
    let mut outcomes = burst.join_all().await;
    outcomes.sort_by_key(|(order, _)| *order);
    let (mut charged_here, mut forwarded) = (BTreeMap::new(), BTreeMap::new());
    for (order, outcome) in outcomes {
        match outcome? {
            StepOutcome::ExecutedLocally { response, .. } => {
                let transaction = transaction_id(&response.body)?;
                println!("   order {order}: charged here ({}, {transaction})", response.status);
                charged_here.insert(order, transaction);
            }
            StepOutcome::Forwarded(receipt) => {
                println!("   order {order}: 429 here, forwarded to EZThrottle as {}", receipt.job_id);
                forwarded.insert(order, receipt.job_id);
            }
            other => return Err(format!("order {order}: unexpected outcome {other:?}").into()),
        }
    }
    let (Some((&local_order, local_transaction)), Some((&forwarded_order, forwarded_job))) =
        (charged_here.first_key_value(), forwarded.first_key_value())
    else {
        return Err("expected some payments charged here and some forwarded".into());
    };

    println!("\n3. Resubmissions");
    // The client retries a submission (say its connection dropped before the receipt came):
    // EZThrottle answers with the original job instead of running it twice.
    let again = payment(api, forwarded_order, &webhook).execute(&client).await?;
    let receipt = again.receipt().ok_or("the resubmission was not forwarded")?;
    println!("   order {forwarded_order} again: job {}, duplicate: {}", receipt.job_id, receipt.duplicate);
    if !receipt.duplicate || &receipt.job_id != forwarded_job {
        return Err(format!("expected a duplicate receipt for {forwarded_job}, got {receipt:?}").into());
    }
    // The app lost the answer of a payment charged here and hands it to EZThrottle: new to
    // EZThrottle, but the API recognises the Idempotency-Key and replays its answer.
    let resent = payment(api, local_order, &webhook).execute(&client).await?;
    let resent = resent.receipt().ok_or("the resent payment was not forwarded")?.job_id.clone();
    println!("   order {local_order} through EZThrottle: new job {resent}");

    println!("\n4. Waiting for EZThrottle's webhooks");
    let mut jobs: Vec<(u32, &String)> = forwarded.iter().map(|(order, job)| (*order, job)).collect();
    jobs.push((local_order, &resent));
    for (order, job_id) in jobs {
        let payload = inbox.wait(job_id, WEBHOOK_WAIT).await?;
        let response = payload.response.as_ref().ok_or("a delivery carries no response")?;
        let transaction = transaction_id(response.body.as_bytes())?;
        let replayed = response.headers.get(REPLAY_HEADER).is_some_and(|v| v == "true");
        let attempts = attempt_statuses(&client, job_id).await?;
        let replay = if replayed { " (replayed)" } else { "" };
        println!("   order {order}: {:?}, {transaction}{replay}; EZThrottle's attempts: {attempts}", payload.status);
        if payload.status != DeliveryStatus::Success {
            return Err(format!("order {order} was not paid: {payload:?}").into());
        }
        if job_id == &resent && (!replayed || &transaction != local_transaction) {
            return Err(format!("order {order} was not replayed as {local_transaction}").into());
        }
    }

    println!("\n5. Counting the charges");
    let charges = ledger.charges();
    let mut per_key: BTreeMap<&str, u32> = BTreeMap::new();
    for charge in &charges {
        *per_key.entry(&charge.key).or_default() += 1;
    }
    let metrics = limits.metrics();
    println!("   the API admitted {} requests and refused {} with 429", metrics.allowed, metrics.refused);
    let counts: Vec<u32> = per_key.values().copied().collect();
    println!("   {} charges for {ORDERS} orders; charges per order: {counts:?}", charges.len());
    let once_each = (1..=ORDERS).all(|order| per_key.get(idempotency_key(order).as_str()) == Some(&1));
    if charges.len() != ORDERS as usize || !once_each {
        return Err("every order must be charged exactly once".into());
    }

    engine.shutdown().await;
    println!("\nDone in {:.1}s: {ORDERS} orders, {ORDERS} charges.", started.elapsed().as_secs_f64());
    Ok(())
}

/// The payment of `order` as a step: the API's `Idempotency-Key` header and EZThrottle's
/// `idempotent_key` are the same value, so neither side can run it twice.
fn payment(api: SocketAddr, order: u32, webhook: &str) -> Step {
    let key = idempotency_key(order);
    Step::new(format!("http://{api}/payments"))
        .method(Method::POST)
        .header("content-type", "application/json")
        .header("idempotency-key", &key)
        .body(payment_body(order).to_string())
        .idempotent_key(key)
        .webhook(Webhook::new(webhook))
}

fn idempotency_key(order: u32) -> String {
    format!("payment-order-{order:04}") // 16 to 255 characters, as the layer requires
}

fn payment_body(order: u32) -> Value {
    json!({ "order": order, "amount_cents": 1999, "currency": "USD" })
}

fn transaction_id(body: &[u8]) -> Result<String, Failure> {
    let answer: Value = serde_json::from_slice(body)?;
    Ok(answer["transaction_id"].as_str().ok_or("no transaction_id in the answer")?.to_owned())
}

/// What the API answered each of a job's attempts, e.g. `429, 201` (`-` where it did not answer).
async fn attempt_statuses(client: &EZThrottle, job_id: &str) -> Result<String, Failure> {
    let job = client.get_job(job_id).await?;
    let statuses: Vec<String> =
        job.attempts.iter().map(|a| a.status_code.map_or_else(|| "-".to_owned(), |code| code.to_string())).collect();
    Ok(statuses.join(", "))
}

/// The payments the API has charged.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<Charge>>>);

#[derive(Clone)]
struct Charge {
    key: String,
}

impl Ledger {
    fn charges(&self) -> Vec<Charge> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[derive(Deserialize)]
struct Payment {
    order: u32,
    amount_cents: u64,
    currency: String,
}

/// `POST /payments`: charges once per `Idempotency-Key`.
fn payments_api(ledger: Ledger, limits: RateLimitLayer) -> Router {
    async fn pay(State(ledger): State<Ledger>, headers: HeaderMap, Json(payment): Json<Payment>) -> Response {
        let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
            return (StatusCode::BAD_REQUEST, "an Idempotency-Key header is required").into_response();
        };
        // The charge. The layers in front make sure this runs once per key.
        let transaction_id = {
            let mut charges = ledger.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            charges.push(Charge { key: key.to_owned() });
            format!("txn_{:04}", charges.len())
        };
        let receipt = json!({
            "transaction_id": transaction_id,
            "order": payment.order,
            "amount_cents": payment.amount_cents,
            "currency": payment.currency,
        });
        (StatusCode::CREATED, Json(receipt)).into_response()
    }
    Router::new()
        .route("/payments", post(pay))
        .with_state(ledger)
        // Layers wrap outward: the last added runs first. Idempotency sits next to the
        // handler; the rate limit protects both; every answer, 429s included, carries the pace.
        .layer(IdempotencyLayer::memory().key_source(KeySource::Header))
        .layer(limits)
        .layer(PaceLayer::fixed(ezthrottle::Pace::new(3.0, 2).expect("a valid pace")))
}

#[tokio::main]
async fn main() {
    support::exit_with("idempotent_payments", run().await);
}
