//! The whole story, offline, in one process.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo "rate-limited API" (3
//! requests in any second, bursts answered `429` with `Retry-After`, every answer carrying
//! `X-EZTHROTTLE-RPS: 3` so EZThrottle paces itself to it) and a webhook receiver (axum,
//! `VerifiedWebhook`, duplicate deliveries absorbed by an `IdempotencyLayer`, results
//! handed to a `WebhookInbox`). Then:
//!
//! 1. a hyper client wrapped in `ForwardLayer` calls the API in a burst: the first calls
//!    succeed directly, the 429s become jobs and come back `202 Accepted` with a receipt;
//! 2. a legacy function under `#[auto_forward]` hands its failed request to EZThrottle;
//! 3. a FRUGAL `Step` workflow: a failing primary, a fallback chain, an `on_success` child;
//! 4. every webhook is awaited through the inbox (verified, duplicates absorbed);
//! 5. a closing table: job, attempts, pace observed, final status, time to webhook.
//!
//! It exits non-zero if anything did not happen as described.
//!
//! It stays offline even when `EZTHROTTLE_API_KEY` is exported: only `--cloud` sends jobs
//! to EZThrottle cloud (a paid service). Against the cloud: pass `--cloud`, set
//! `EZTHROTTLE_API_KEY` and `EZTHROTTLE_WEBHOOK_SECRET` (your account's webhook secret),
//! serve this process on a fixed port reachable from the internet (a tunnel), and name its
//! public address:
//!
//! ```sh
//! EZTHROTTLE_API_KEY=... EZTHROTTLE_WEBHOOK_SECRET=... \
//!   cargo run --example quickstart -- --cloud --port 8000 --public-url https://my-tunnel.example.com
//! ```
//!
//! (`--webhook-url` overrides only the receiver's address.)

mod support;

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use ezthrottle::local::{Engine, RunningEngine};
use ezthrottle::protocol::time::to_unix_ms;
use ezthrottle::tower::REPLAY_HEADER;
use ezthrottle::tower::idempotency::{IdempotencyLayer, KeySource};
use ezthrottle::tower::webhook::VerifiedWebhook;
use ezthrottle::tower::webhook::VerifyWebhookLayer;
use ezthrottle::tower::{ForwardLayer, ForwardedJob};
use ezthrottle::webhook::Verifier;
use ezthrottle::{
    DeliveryStatus, EZThrottle, ForwardToEZThrottle, Outcome, Step, StepOutcome, StepType, Trigger, Webhook,
    WebhookInbox, WebhookPayload, auto_forward,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::Failure;
use tower::{ServiceBuilder, ServiceExt};

const LOCAL_SECRET: &str = "quickstart-webhook-secret";
const BURST: usize = 8;
/// The demo API's limit, and the pace it asks EZThrottle for.
const API_RPS: usize = 3;
const DEADLINE: Duration = Duration::from_secs(45);

#[tokio::main]
async fn main() {
    support::exit_with("quickstart", run().await);
}

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    let options = Options::parse(std::env::args().skip(1))?;

    println!("1. Starting everything on 127.0.0.1");
    let inbox = WebhookInbox::new();
    let mut arrivals = inbox.subscribe();
    let secret = options.webhook_secret()?;
    let receiver = Receiver { verifier: Verifier::new(&secret)?, inbox: inbox.clone(), handled: Arc::default() };
    let app = Router::new().nest("/api", demo_api()).merge(receiver.router());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    let local = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the demo server stopped: {error}");
        }
    });
    let public = options.public_url.clone().unwrap_or_else(|| local.clone());
    let api = format!("{public}/api");
    let webhook_url = options.webhook_url.clone().unwrap_or_else(|| format!("{public}/webhook"));
    let (client, engine) = connect(options.cloud, &secret).await?;
    match &engine {
        Some(engine) => println!("   engine      {} (embedded)", engine.base_url()),
        None => println!("   EZThrottle  the cloud (EZTHROTTLE_API_KEY)"),
    }
    println!("   demo API    {api}  ({API_RPS} req/s; bursts get 429 + Retry-After)");
    println!("   receiver    {webhook_url}  (verifies X-EZThrottle-Signature, absorbs repeats)");
    let mut jobs = Vec::new();

    println!("\n2. A hyper client under ForwardLayer calls the API {BURST} times at once");
    let http = ServiceBuilder::new()
        .layer(ForwardLayer::new(client.clone()).with_template(|job| job.webhook(Webhook::new(&webhook_url))))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    for order in 0..BURST {
        let request = http::Request::get(format!("{api}/orders/{order}")).body(Full::default())?;
        let response = http.clone().oneshot(request).await?;
        let status = response.status();
        match response.extensions().get::<ForwardedJob>() {
            Some(job) => {
                let was = job.original_status.map_or_else(|| "a transport error".to_owned(), |s| s.to_string());
                println!("   order {order}: {was} -> {status}, EZThrottle runs it as {}", job.receipt.job_id);
                jobs.push(Tracked::new(job.receipt.job_id.clone(), format!("order {order}")));
            }
            None if status.is_success() => {
                let body = response.into_body().collect().await?.to_bytes();
                println!("   order {order}: {status} directly ({})", String::from_utf8_lossy(&body));
            }
            None => return Err(format!("order {order}: {status} was neither served nor forwarded").into()),
        }
    }
    if jobs.is_empty() {
        return Err("the burst was never rate limited: nothing was forwarded".into());
    }

    println!("\n3. A legacy function under #[auto_forward] hits a 429 and hands the request over");
    let billing = Billing { client: client.clone(), api: api.clone(), webhook_url: webhook_url.clone() };
    match billing.send_invoice(42).await? {
        Outcome::Forwarded(receipt) => {
            println!("   send_invoice(42): forwarded as {} ({})", receipt.job_id, receipt.status);
            jobs.push(Tracked::new(receipt.job_id, "invoice".into()));
        }
        other => return Err(format!("send_invoice(42) should have been forwarded, got {other:?}").into()),
    }

    println!("\n4. A FRUGAL workflow: primary answers 500 -> fallback chain -> on_success child");
    let outcome = Step::new(format!("{api}/charge"))
        .step_type(StepType::Frugal)
        .webhook(Webhook::new(&webhook_url))
        .idempotent_key("quickstart-charge")
        .fallback(Step::new(format!("{api}/charge-backup")), Trigger::on_error([500]))
        .fallback(Step::new(format!("{api}/charge-last-resort")), Trigger::on_timeout(Duration::from_millis(2_000)))
        .on_success(
            Step::new(format!("{api}/notify")).webhook(Webhook::new(&webhook_url)).idempotent_key("quickstart-notify"),
        )
        .execute(&client)
        .await?;
    match outcome {
        StepOutcome::Forwarded(receipt) => {
            println!("   tried here first (failed), then forwarded whole as {}", receipt.job_id);
            jobs.push(Tracked::new(receipt.job_id, "workflow".into()));
        }
        other => return Err(format!("the workflow should have been forwarded, got {other:?}").into()),
    }
    // The child is a new job the engine spawns; its id arrives with its webhook.
    jobs.push(Tracked::new("quickstart-notify".into(), "on_success".into()));

    println!("\n5. Waiting for every webhook");
    let submitted = Instant::now();
    let mut delivered: HashMap<String, (WebhookPayload, Duration)> = HashMap::new();
    let mut progress = tokio::time::interval(Duration::from_millis(250));
    let terminal = std::io::stdout().is_terminal();
    let mut reported = 0;
    while let Some(waiting) = jobs.iter().find(|job| !job.matches_any(&delivered)) {
        let waited = submitted.elapsed();
        if waited > DEADLINE {
            return Err(format!("no webhook for {} ({}) after {waited:.0?}", waiting.key, waiting.what).into());
        }
        tokio::select! {
            payload = arrivals.recv() => {
                let payload = payload.ok_or("the inbox closed")?;
                delivered.entry(payload.job_id.clone()).or_insert((payload, waited));
            }
            _ = progress.tick() => {}
        }
        let done = jobs.iter().filter(|job| job.matches_any(&delivered)).count();
        // A live progress line on a terminal; one line per new delivery in a log.
        if terminal {
            print!("\r   {done}/{} delivered after {:.1}s ", jobs.len(), waited.as_secs_f64());
            std::io::Write::flush(&mut std::io::stdout())?;
        } else if done > reported {
            println!("   {done}/{} delivered after {:.1}s", jobs.len(), waited.as_secs_f64());
        }
        reported = done;
    }
    let end = if terminal { "\n" } else { "" };
    println!("{end}   all {} delivered; the handler ran {} times, once per job", jobs.len(), receiver.handled());
    prove_repeats_are_absorbed(&local, &secret, &receiver, &delivered).await?;

    println!("\n6. Summary");
    // Only the embedded engine reports each attempt; the cloud's job view leaves them out.
    let history = engine.is_some().then_some(&client);
    let failures = summarize(&jobs, &delivered, history).await?;
    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    if failures > 0 {
        return Err(format!("{failures} job(s) did not succeed").into());
    }
    println!(
        "\nDone in {:.1}s: every call answered, every forwarded job run and delivered.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The command line: all optional; only the cloud run needs them.
#[derive(Debug, Default, PartialEq)]
struct Options {
    /// Only this flag leaves the machine: an exported API key alone never does.
    cloud: bool,
    port: u16,
    public_url: Option<String>,
    webhook_url: Option<String>,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Failure> {
        let mut options = Self::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--cloud" => options.cloud = true,
                "--port" => options.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
                "--public-url" => options.public_url = Some(value()?.trim_end_matches('/').to_owned()),
                "--webhook-url" => options.webhook_url = Some(value()?),
                other => return Err(format!("unknown argument {other:?} (see the file's header)").into()),
            }
        }
        Ok(options)
    }

    /// The embedded engine signs with ours; in the cloud, the account's secret applies.
    fn webhook_secret(&self) -> Result<String, Failure> {
        if !self.cloud {
            return Ok(LOCAL_SECRET.to_owned());
        }
        if std::env::var_os("EZTHROTTLE_API_KEY").is_none() {
            return Err("--cloud needs EZTHROTTLE_API_KEY (your EZThrottle API key)".into());
        }
        if self.public_url.is_none() && self.webhook_url.is_none() {
            return Err("--cloud needs --public-url (EZThrottle must reach this process)".into());
        }
        std::env::var("EZTHROTTLE_WEBHOOK_SECRET")
            .map_err(|_| "--cloud needs EZTHROTTLE_WEBHOOK_SECRET (your account's webhook secret)".into())
    }
}

/// The cloud with `--cloud`, else an embedded engine (whatever the environment holds).
async fn connect(cloud: bool, secret: &str) -> Result<(EZThrottle, Option<RunningEngine>), Failure> {
    if cloud {
        return Ok((EZThrottle::from_env()?, None));
    }
    if std::env::var_os("EZTHROTTLE_API_KEY").is_some() {
        println!("   (EZTHROTTLE_API_KEY is set but unused: pass --cloud to run against EZThrottle cloud)");
    }
    let engine = Engine::builder().open().webhook_secret(secret).start().await?;
    let client = EZThrottle::builder().direct(engine.base_url()).build()?;
    Ok((client, Some(engine)))
}

/// Legacy code that gives up on a 429 and describes the request instead of retrying.
struct Billing {
    client: EZThrottle,
    api: String,
    webhook_url: String,
}

impl Billing {
    #[auto_forward(
        client = self.client,
        idempotent_key = format!("invoice-{order}"),
        webhooks = [Webhook::new(&self.webhook_url)]
    )]
    async fn send_invoice(&self, order: u32) -> Result<String, ForwardToEZThrottle> {
        let url = format!("{}/invoices/{order}", self.api);
        let retry_later = || ForwardToEZThrottle::post(&url, format!(r#"{{"order":{order}}}"#));
        let response = reqwest::Client::new().post(&url).send().await.map_err(|_| retry_later())?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(retry_later());
        }
        response.text().await.map_err(|_| retry_later())
    }
}

/// A job to wait for, by job id or idempotency key.
struct Tracked {
    key: String,
    what: String,
}

impl Tracked {
    fn new(key: String, what: String) -> Self {
        Self { key, what }
    }

    fn find<'a>(
        &self,
        delivered: &'a HashMap<String, (WebhookPayload, Duration)>,
    ) -> Option<&'a (WebhookPayload, Duration)> {
        delivered.get(&self.key).or_else(|| {
            delivered.values().find(|(payload, _)| payload.idempotent_key.as_deref() == Some(self.key.as_str()))
        })
    }

    fn matches_any(&self, delivered: &HashMap<String, (WebhookPayload, Duration)>) -> bool {
        self.find(delivered).is_some()
    }
}

/// The receiver: `VerifyWebhookLayer` checks the signature first, so an unverified request
/// can never replay a stored answer; the `IdempotencyLayer` answers repeats of a job from
/// its store; the handler runs once per job and hands the result to the inbox.
#[derive(Clone)]
struct Receiver {
    verifier: Verifier,
    inbox: WebhookInbox,
    handled: Arc<AtomicUsize>,
}

impl FromRef<Receiver> for Verifier {
    fn from_ref(receiver: &Receiver) -> Self {
        receiver.verifier.clone()
    }
}

impl Receiver {
    fn router(&self) -> Router {
        async fn on_webhook(State(receiver): State<Receiver>, delivery: VerifiedWebhook) -> &'static str {
            receiver.handled.fetch_add(1, Ordering::Relaxed);
            receiver.inbox.record(delivery.payload);
            "ok"
        }
        Router::new()
            .route("/webhook", post(on_webhook))
            .route_layer(IdempotencyLayer::memory().key_source(KeySource::Webhook))
            .route_layer(VerifyWebhookLayer::new(self.verifier.clone()))
            .with_state(self.clone())
    }

    fn handled(&self) -> usize {
        self.handled.load(Ordering::Relaxed)
    }
}

/// Delivery is at-least-once: post one delivery again, as EZThrottle would after a lost
/// answer, and show the handler does not run twice.
async fn prove_repeats_are_absorbed(
    local: &str,
    secret: &str,
    receiver: &Receiver,
    delivered: &HashMap<String, (WebhookPayload, Duration)>,
) -> Result<(), Failure> {
    let (payload, _) = delivered.values().next().ok_or("nothing was delivered")?;
    let body = serde_json::to_vec(payload)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs().try_into()?;
    let handled = receiver.handled();
    let answer = reqwest::Client::new()
        .post(format!("{local}/webhook"))
        .header("x-ezthrottle-signature", ezthrottle::webhook::sign(secret, now, &body))
        .body(body)
        .send()
        .await?;
    let replayed = answer.headers().get(REPLAY_HEADER).is_some();
    if !answer.status().is_success() || !replayed || receiver.handled() != handled {
        return Err(format!("a repeated delivery was not absorbed ({})", answer.status()).into());
    }
    println!(
        "   a repeated delivery of {} got {} from the store; the handler did not run again",
        payload.job_id,
        answer.status()
    );
    Ok(())
}

/// Prints the closing table; returns how many jobs did not succeed.
async fn summarize(
    jobs: &[Tracked],
    delivered: &HashMap<String, (WebhookPayload, Duration)>,
    history: Option<&EZThrottle>,
) -> Result<usize, Failure> {
    let mut rows = Vec::new();
    for job in jobs {
        let (payload, latency) = job.find(delivered).ok_or_else(|| format!("no webhook for {}", job.key))?;
        // Each attempt's start, in Unix ms: the pace gaps below are differences of these.
        let attempts: Vec<u64> = match history {
            Some(client) => {
                client.get_job(&payload.job_id).await?.attempts.iter().map(|a| to_unix_ms(a.started_at)).collect()
            }
            None => Vec::new(),
        };
        rows.push((job, payload, *latency, attempts));
    }
    // The pace EZThrottle kept with the demo API: the gap before each of its calls.
    let mut calls: Vec<u64> = rows.iter().flat_map(|(.., attempts)| attempts.iter().copied()).collect();
    calls.sort_unstable();
    let gap_before = |at: u64| calls.iter().rev().find(|&&earlier| earlier < at).map(|earlier| at - earlier);

    println!(
        "   {:<38} {:<10} {:>8} {:>10} {:<8} {:>10}",
        "job", "what", "attempts", "pace gap", "status", "to webhook"
    );
    let mut failures = 0;
    for (job, payload, latency, attempts) in &rows {
        let pace = match attempts.first().and_then(|&first| gap_before(first)) {
            Some(gap_ms) => format!("+{:.2}s", gap_ms as f64 / 1000.0),
            None if attempts.is_empty() => "-".to_owned(),
            None => "first".to_owned(),
        };
        let attempts = if attempts.is_empty() { "-".to_owned() } else { attempts.len().to_string() };
        let status = match payload.status {
            DeliveryStatus::Success => "success",
            _ => {
                failures += 1;
                "failed"
            }
        };
        println!(
            "   {:<38} {:<10} {:>8} {:>10} {:<8} {:>9.1}s",
            payload.job_id,
            job.what,
            attempts,
            pace,
            status,
            latency.as_secs_f64()
        );
    }
    if let (Some(first), Some(last)) = (calls.first(), calls.last())
        && calls.len() > 1
        && last > first
    {
        let observed = (calls.len() - 1) as f64 * 1000.0 / (last - first) as f64;
        println!("   pace gap: time since EZThrottle's previous call to the API. Forwarded 429s wait out");
        println!("   their Retry-After first; the invoice, forwarded without one, went straight away.");
        println!("   EZThrottle called the API {} times at {observed:.2} req/s (it asked for {API_RPS})", calls.len());
    }
    Ok(failures)
}

/// The demo API: at most `API_RPS` requests in any second, `429` + `Retry-After` beyond;
/// every answer asks EZThrottle for that pace. Billing and the backup charge also refuse
/// the first call to each path (they are "warming up"), so the story is the same every run.
fn demo_api() -> Router {
    #[derive(Default)]
    struct Limits {
        recent: std::collections::VecDeque<Instant>,
        seen: std::collections::HashSet<String>,
    }
    type Shared = Arc<Mutex<Limits>>;

    fn answer(limits: &Shared, path: &str, status: StatusCode, warm_up: bool) -> Response {
        let now = Instant::now();
        let mut limits = limits.lock().unwrap_or_else(PoisonError::into_inner);
        while limits.recent.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1)) {
            limits.recent.pop_front();
        }
        let pace = [("x-ezthrottle-rps", API_RPS.to_string())];
        let first_call = limits.seen.insert(path.to_owned());
        if limits.recent.len() >= API_RPS || (warm_up && first_call) {
            return (StatusCode::TOO_MANY_REQUESTS, pace, [("retry-after", "1")], "slow down").into_response();
        }
        limits.recent.push_back(now);
        (status, pace, format!("{path}: {}", status.canonical_reason().unwrap_or("done"))).into_response()
    }

    let limits = Shared::default();
    let order = |limits: Shared| {
        move |Path(order): Path<u32>| async move { answer(&limits, &format!("order {order}"), StatusCode::OK, false) }
    };
    let invoice = |limits: Shared| {
        move |Path(order): Path<u32>| async move { answer(&limits, &format!("invoice {order}"), StatusCode::OK, true) }
    };
    let fixed = |limits: Shared, path: &'static str, status: StatusCode, warm_up: bool| {
        move || async move { answer(&limits, path, status, warm_up) }
    };
    Router::new()
        .route("/orders/{order}", get(order(limits.clone())))
        .route("/invoices/{order}", post(invoice(limits.clone())))
        .route("/charge", get(fixed(limits.clone(), "charge", StatusCode::INTERNAL_SERVER_ERROR, false)))
        .route("/charge-backup", get(fixed(limits.clone(), "charge-backup", StatusCode::OK, true)))
        .route("/charge-last-resort", get(fixed(limits.clone(), "charge-last-resort", StatusCode::OK, false)))
        .route("/notify", get(fixed(limits, "notify", StatusCode::OK, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Failure> {
        Options::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn offline_unless_cloud_is_asked_for() {
        let options = parse(&[]).expect("no arguments");
        assert!(!options.cloud);
        // Offline, the embedded engine's secret applies, whatever the environment holds.
        assert_eq!(options.webhook_secret().expect("offline secret"), LOCAL_SECRET);
        assert!(!parse(&["--port", "8000"]).expect("--port").cloud);
    }

    #[test]
    fn the_cloud_flag_is_parsed() {
        let options = parse(&["--cloud", "--port", "8000", "--public-url", "https://tunnel.example.com/"])
            .expect("cloud arguments");
        let expected = Options {
            cloud: true,
            port: 8000,
            public_url: Some("https://tunnel.example.com".to_owned()),
            webhook_url: None,
        };
        assert_eq!(options, expected);
        assert!(parse(&["--cloud=yes"]).is_err(), "no value syntax: a typo must not pass silently");
        // The cloud needs a reachable address (and a key): it refuses to start half-configured.
        assert!(parse(&["--cloud"]).expect("--cloud").webhook_secret().is_err());
    }
}
