//! Workflows: fallbacks, children, racing regions and webhook fan-out with a quorum.
//!
//! ```sh
//! cargo run --example workflows
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine with three regions up (`iad`,
//! `lax`, `fra`) and one down (`syd`), a demo API with a few well-behaved and a few broken
//! routes, and three webhook receivers (two verify deliveries into inboxes, one is down).
//! Then it runs, each as one job:
//!
//! 1. a primary answering 500, with a fallback on `Trigger::on_error` and an `on_success` child;
//! 2. a primary too slow to wait for, with a fallback on `Trigger::on_timeout`;
//! 3. a request the API refuses (400), with an `on_failure` child;
//! 4. a race across regions (the fastest wins, the others are cancelled; the down region is
//!    skipped under `RegionPolicy::Fallback`), and the same down region under `Strict`;
//! 5. a result fanned out to three webhooks with a quorum of two, one receiver being down.
//!
//! After each delivery it reads the job back (`EZThrottle::get_job`), prints what
//! happened (every attempt with its region and status) and checks it. It exits non-zero if
//! anything did not happen as expected.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use ezthrottle::Pace;
use ezthrottle::inbox::WebhookInbox;
use ezthrottle::local::Engine;
use ezthrottle::protocol::{Attempt, ChildRelation, DeliveryOutcome, JobSnapshot};
use ezthrottle::tower::axum::webhook_routes;
use ezthrottle::webhook::Verifier;
use ezthrottle::{
    DeliveryStatus, EZThrottle, ExecutionMode, RegionPolicy, Step, StepDelivery, SubmitReceipt, Trigger, Webhook,
    WebhookPayload,
};
use support::{Failure, serve};

const SECRET: &str = "workflows-webhook-secret";
const WAIT: Duration = Duration::from_secs(15);

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("Starting the engine, the demo API and three webhook receivers on 127.0.0.1");
    let engine = Engine::builder()
        .open()
        .webhook_secret(SECRET)
        .region("iad")
        .region("lax")
        .region("fra")
        .down_region("syd")
        // The demo API takes anything: lift the default 2 requests per second per host.
        .default_pace(Pace::new(50.0, 10)?)
        // Give up on a dead receiver after 3 tries, 100 ms apart then 200 ms (default 5, from 1 s).
        .webhook_retry(Duration::from_millis(100), 3)
        .start()
        .await?;
    let base = engine.base_url();
    let api = serve(demo_api()).await?;
    let (inbox_a, inbox_b) = (WebhookInbox::new(), WebhookInbox::new());
    let a = serve(webhook_routes(Verifier::new(SECRET)?, inbox_a.clone())).await?;
    let b = serve(webhook_routes(Verifier::new(SECRET)?, inbox_b.clone())).await?;
    let down = serve(Router::new().route("/webhook", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))).await?;
    let [a, b, down] = [a, b, down].map(|addr| format!("http://{addr}/webhook"));
    println!("   engine    {base}  (regions iad, lax, fra up; syd down)");
    println!("   API       http://{api}");
    println!("   webhooks  A {a}\n             B {b}\n             C {down}  (always 503)");
    let client = EZThrottle::builder().direct(&base).build()?;
    let at = |path: &str| format!("http://{api}{path}");
    let hook_a = Webhook::new(&a);

    println!("\n1. Fallback on error, then an on_success child");
    let step = Step::new(at("/primary"))
        .webhook(hook_a.clone())
        .idempotent_key("wf-on-error")
        .fallback(Step::new(at("/backup")), Trigger::on_error([500, 502, 503]))
        .on_success(Step::new(at("/notify")).webhook(hook_a.clone()).idempotent_key("wf-notify"));
    let (_, job, payload) = run_step("primary 500 -> backup", &step, &client, &inbox_a).await?;
    check(payload.status == DeliveryStatus::Success, "the fallback succeeded")?;
    check(outcomes(&job) == ["primary 500 failed", "fallback_job 200 success"], "primary failed, fallback ran")?;
    check_child(&job, ChildRelation::OnSuccess, &inbox_a).await?;

    println!("\n2. Fallback on timeout: the primary is cancelled after 300 ms");
    let step = Step::new(at("/slow"))
        .webhook(hook_a.clone())
        .idempotent_key("wf-on-timeout")
        .fallback(Step::new(at("/fast")), Trigger::on_timeout(Duration::from_millis(300)));
    let (_, job, payload) = run_step("slow -> fast", &step, &client, &inbox_a).await?;
    check(payload.status == DeliveryStatus::Success, "the fallback succeeded")?;
    check(outcomes(&job) == ["primary - cancelled", "fallback_job 200 success"], "the slow primary was cancelled")?;

    println!("\n3. A request the API refuses, then an on_failure child");
    let step = Step::new(at("/broken"))
        .webhook(hook_a.clone())
        .idempotent_key("wf-on-failure")
        .on_failure(Step::new(at("/alert")).webhook(hook_a.clone()).idempotent_key("wf-alert"), None);
    let (_, job, payload) = run_step("broken (400)", &step, &client, &inbox_a).await?;
    // A 400 is not retried (the default policy retries 429, 502, 503 and 504).
    check(payload.status == DeliveryStatus::Failed, "the job failed")?;
    check(outcomes(&job) == ["primary 400 failed"], "one attempt, no retry")?;
    check_child(&job, ChildRelation::OnFailure, &inbox_a).await?;

    println!("\n4. Racing regions: every region up runs it, the first 2xx wins");
    let step = Step::new(at("/race"))
        .webhook(hook_a.clone())
        .idempotent_key("wf-race")
        .regions(["iad", "lax", "fra", "syd"])
        .execution_mode(ExecutionMode::Race)
        .region_policy(RegionPolicy::Fallback); // skip syd, which is down
    let (receipt, job, payload) = run_step("race iad/lax/fra/syd", &step, &client, &inbox_a).await?;
    println!("   submitted as {} ({})", receipt.job_id, receipt.status);
    check(body(&payload) == "answered from lax", "lax, the fastest region, won")?;
    let mut lanes = outcomes_by_region(&job);
    lanes.sort();
    check(lanes == ["fra cancelled", "iad cancelled", "lax success"], "the losers were cancelled, syd skipped")?;

    let step = Step::new(at("/race"))
        .webhook(hook_a.clone())
        .idempotent_key("wf-strict")
        .regions(["syd"])
        .region_policy(RegionPolicy::Strict); // fail rather than run elsewhere
    let (_, job, payload) = run_step("syd only, strict", &step, &client, &inbox_a).await?;
    check(payload.status == DeliveryStatus::Failed && outcomes(&job).is_empty(), "strict failed without running")?;

    println!("\n5. Fan-out to webhooks A, B and C with a quorum of 2 (C is down)");
    let step = Step::new(at("/fast"))
        .webhooks([Webhook::new(&a), Webhook::new(&b), Webhook::new(&down)])
        .webhook_quorum(2)
        .idempotent_key("wf-fan-out");
    let receipt = step.execute(&client).await?.receipt().cloned().ok_or("not submitted")?;
    let (to_a, to_b) = tokio::try_join!(inbox_a.wait(&receipt.job_id, WAIT), inbox_b.wait(&receipt.job_id, WAIT))?;
    println!("   A and B received {} ({:?}, {:?})", receipt.job_id, to_a.status, to_b.status);
    // The engine records the quorum and C's last try after A and B answered: read the job
    // until every delivery has ended.
    let job = job_view(&client, &receipt.job_id, |job| {
        !job.webhooks.is_empty() && job.webhooks.iter().all(|hook| hook.outcome != DeliveryOutcome::Pending)
    })
    .await?;
    for hook in &job.webhooks {
        let tries = hook.attempts.len();
        println!("   {:<40} {:<10} after {tries} tries", hook.url, hook.outcome.as_str());
    }
    let quorum = job.webhook_quorum;
    let met = quorum.met.map_or_else(|| "-".to_owned(), |met| met.to_string());
    println!("   quorum: {} of {} voters required, met: {met}", quorum.required, quorum.voters);
    let delivered: Vec<DeliveryOutcome> = job.webhooks.iter().map(|hook| hook.outcome).collect();
    let expected = [DeliveryOutcome::Delivered, DeliveryOutcome::Delivered, DeliveryOutcome::Failed];
    check(delivered == expected, "A and B delivered, C failed")?;
    check(quorum.met == Some(true), "the quorum was met")?;

    engine.shutdown().await;
    println!("\nDone in {:.1}s: every workflow ran as expected.", started.elapsed().as_secs_f64());
    Ok(())
}

/// Submits a PERFORMANCE step, waits for its webhook in `inbox`, reads the job back and
/// prints it as `what`.
async fn run_step(
    what: &str,
    step: &Step,
    client: &EZThrottle,
    inbox: &WebhookInbox,
) -> Result<(SubmitReceipt, JobSnapshot, WebhookPayload), Failure> {
    let (receipt, payload) = match step.execute_and_wait(client, inbox, WAIT).await? {
        StepDelivery::Webhook { receipt, payload } => (receipt, payload),
        other => return Err(format!("expected a webhook delivery, got {other:?}").into()),
    };
    let job = job_view(client, &receipt.job_id, |_| true).await?;
    print_job(what, &job, &payload);
    Ok((receipt, job, payload))
}

/// The job as the engine reports it, read again (bounded) until `ready` holds.
///
/// There is no event for "the engine updated its record", so this polls its job API.
async fn job_view(
    client: &EZThrottle,
    job_id: &str,
    ready: impl Fn(&JobSnapshot) -> bool,
) -> Result<JobSnapshot, Failure> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let job = client.get_job(job_id).await?;
        if ready(&job) {
            return Ok(job);
        }
        if Instant::now() >= deadline {
            return Err(format!("job {job_id} did not reach the expected state: {job:#?}").into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Prints a job: its final status, what was delivered, each attempt and each event.
fn print_job(what: &str, job: &JobSnapshot, payload: &WebhookPayload) {
    let detail = payload.error.clone().unwrap_or_else(|| body(payload));
    println!("   {what}: job {} {}; webhook {:?}: {detail}", job.job_id, job.status, payload.status);
    for attempt in &job.attempts {
        println!(
            "     attempt {}  {:<13} region {:<4} status {:<4} {}",
            attempt.attempt,
            attempt.job,
            attempt.region,
            status_code(attempt),
            attempt.outcome.as_str(),
        );
    }
    for event in &job.events {
        println!("     event: {event}");
    }
}

/// Each attempt as "<job path> <status> <outcome>".
fn outcomes(job: &JobSnapshot) -> Vec<String> {
    job.attempts.iter().map(|a| format!("{} {} {}", a.job, status_code(a), a.outcome.as_str())).collect()
}

/// Each attempt as "<region> <outcome>".
fn outcomes_by_region(job: &JobSnapshot) -> Vec<String> {
    job.attempts.iter().map(|a| format!("{} {}", a.region, a.outcome.as_str())).collect()
}

/// The target's status code, `-` when it never answered (cancelled, unreachable).
fn status_code(attempt: &Attempt) -> String {
    attempt.status_code.map_or_else(|| "-".to_owned(), |code| code.to_string())
}

/// Waits for the child the engine spawned as `relation` and checks it ran.
async fn check_child(job: &JobSnapshot, relation: ChildRelation, inbox: &WebhookInbox) -> Result<(), Failure> {
    let child = child_of(job, relation)?;
    let delivered = inbox.wait(&child, WAIT).await?;
    let name = relation.as_str();
    println!("   {name} child {child}: {:?}, {}", delivered.status, body(&delivered));
    check(delivered.status == DeliveryStatus::Success, &format!("the {name} child ran"))
}

/// The id of the child job the engine spawned as `relation`.
fn child_of(job: &JobSnapshot, relation: ChildRelation) -> Result<String, Failure> {
    let child = job.child(relation).ok_or_else(|| format!("no {} child in {job:#?}", relation.as_str()))?;
    Ok(child.job_id.clone())
}

/// The target's answer body carried by a delivery.
fn body(payload: &WebhookPayload) -> String {
    payload.response.as_ref().map(|response| response.body.clone()).unwrap_or_default()
}

fn check(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        println!("   ok: {what}");
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

/// The demo API: a few routes that behave, a few that do not.
fn demo_api() -> Router {
    async fn race(headers: HeaderMap) -> String {
        // Each region answers at its own speed; EZThrottle says which region is calling.
        let region = headers.get("x-ezthrottle-region").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
        let delay = match region.as_str() {
            "lax" => 50,
            "fra" => 600,
            _ => 1200,
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        format!("answered from {region}")
    }
    Router::new()
        .route("/primary", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "primary is down") }))
        .route("/backup", get(|| async { "served by the backup" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "too late"
            }),
        )
        .route("/fast", get(|| async { "fast answer" }))
        .route("/broken", get(|| async { (StatusCode::BAD_REQUEST, "malformed request") }))
        .route("/notify", get(|| async { "customer notified" }))
        .route("/alert", get(|| async { "on-call paged" }))
        .route("/race", get(race))
}

#[tokio::main]
async fn main() {
    support::exit_with("workflows", run().await);
}
