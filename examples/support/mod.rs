//! The setup the examples share: the embedded engine, demo APIs and webhook receivers on
//! 127.0.0.1, and the exit code. Each example says what it starts in its header; this is
//! only the plumbing.
#![allow(dead_code)] // Each example uses a part of it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ezthrottle::EZThrottle;
use ezthrottle::inbox::WebhookInbox;
use ezthrottle::local::{Engine, RunningEngine};
use ezthrottle::tower::REPLAY_HEADER;
use ezthrottle::tower::axum::webhook_routes;
use ezthrottle::tower::webhook::SIGNATURE_HEADER;
use ezthrottle::webhook::Verifier;

/// What went wrong, for the exit message.
pub(crate) type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Ends the example: exit code 0 when it showed what it says, else 1 with the reason.
pub(crate) fn exit_with(example: &str, result: Result<(), Failure>) {
    if let Err(error) = result {
        eprintln!("\n{example} failed: {error}");
        std::process::exit(1);
    }
}

/// Starts the embedded engine, open (no API key), signing webhooks with `secret`, and a
/// client in direct mode aimed at it.
pub(crate) async fn start_engine(secret: &str) -> Result<(RunningEngine, EZThrottle), Failure> {
    let engine = Engine::builder().open().webhook_secret(secret).start().await?;
    let client = EZThrottle::builder().direct(engine.base_url()).build()?;
    Ok((engine, client))
}

/// Stops the engine and says how long the example took and what it showed.
pub(crate) async fn finish(engine: RunningEngine, started: Instant, what: &str) -> Result<(), Failure> {
    engine.shutdown().await;
    println!("\nDone in {:.1} s: {what}", started.elapsed().as_secs_f64());
    Ok(())
}

/// Starts a webhook receiver verifying deliveries signed with `secret` into a new inbox;
/// answers the inbox and the receiver's URL.
pub(crate) async fn start_receiver(secret: &str) -> Result<(WebhookInbox, String), Failure> {
    let inbox = WebhookInbox::new();
    let receiver = serve(webhook_routes(Verifier::new(secret)?, inbox.clone())).await?;
    Ok((inbox, format!("http://{receiver}/webhook")))
}

/// Serves `app` on a free loopback port.
pub(crate) async fn serve(app: Router) -> Result<SocketAddr, Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("server on {addr} stopped: {error}");
        }
    });
    Ok(addr)
}

/// A loopback address nothing listens on: bound to get a free port, then released.
pub(crate) fn free_port() -> Result<SocketAddr, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A client aimed at a loopback port nothing listens on.
pub(crate) fn unreachable_client() -> Result<EZThrottle, Failure> {
    let url = format!("http://{}", free_port()?);
    Ok(EZThrottle::builder().direct(url).timeout(Duration::from_secs(2)).build()?)
}

/// What [`start_orders_demo`] started.
pub(crate) struct OrdersDemo {
    /// The embedded engine.
    pub(crate) engine: RunningEngine,
    /// A client aimed at the engine.
    pub(crate) ezthrottle: EZThrottle,
    /// The [`orders_api`].
    pub(crate) api: SocketAddr,
    /// Where the receiver records verified deliveries.
    pub(crate) inbox: WebhookInbox,
    /// The receiver's URL, for EZThrottle.
    pub(crate) webhook_url: String,
}

/// Starts, and prints, the embedded engine, the rate-limited [`orders_api`] and a receiver
/// verifying deliveries signed with `secret` into an inbox.
pub(crate) async fn start_orders_demo(secret: &str) -> Result<OrdersDemo, Failure> {
    println!("1. Starting the engine, a demo API and a webhook receiver on 127.0.0.1");
    let (engine, ezthrottle) = start_engine(secret).await?;
    let api = serve(orders_api()).await?;
    let (inbox, webhook_url) = start_receiver(secret).await?;
    println!("   engine    {}", engine.base_url());
    println!("   demo API  http://{api}  (3 requests per second, then 429 + Retry-After: 1)");
    println!("   receiver  {webhook_url}");
    Ok(OrdersDemo { engine, ezthrottle, api, inbox, webhook_url })
}

/// How long an example waits for one webhook delivery before it fails.
pub(crate) const WEBHOOK_WAIT: Duration = Duration::from_secs(20);

/// More calls than the [`orders_api`] allows in a second: the last ones are rate limited.
pub(crate) const BURST: u32 = 6;

/// When the demo API's recent requests were answered.
type Window = Arc<Mutex<VecDeque<Instant>>>;

/// A demo API, `GET /orders/{order}`, allowing 3 requests in any second; beyond that,
/// `429` with `Retry-After: 1`.
pub(crate) fn orders_api() -> Router {
    async fn order(State(window): State<Window>, Path(order): Path<u32>) -> Response {
        let now = Instant::now();
        let mut recent = window.lock().unwrap_or_else(PoisonError::into_inner);
        while recent.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1)) {
            recent.pop_front();
        }
        if recent.len() >= 3 {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response();
        }
        recent.push_back(now);
        format!("order {order} placed").into_response()
    }
    Router::new().route("/orders/{order}", get(order)).with_state(Window::default())
}

/// The Unix time in seconds, as webhook signatures carry it.
fn unix_now() -> Result<i64, Failure> {
    Ok(i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?)
}

/// Posts a webhook delivery by hand; answers its status, whether it was a replayed answer,
/// and its body.
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

/// Prints the answer to a [`deliver`] and checks it is the expected one.
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

/// What the receivers' handlers print on each run.
pub(crate) fn print_run(run: usize, payload: &ezthrottle::WebhookPayload, secret: ezthrottle::webhook::SecretSlot) {
    println!("   handler run #{run}: {} {:?}, signed with the {secret:?} secret", payload.job_id, payload.status);
}

/// The story both webhook-receiver examples tell once their receiver listens at
/// `receiver_url` (verifying with `secret`, then `previous_secret`; repeats absorbed;
/// verified deliveries recorded in `inbox`; `runs()` counting the handler's runs):
///
/// 2. a job submitted to the engine; its signed webhook arrives and is verified;
/// 3. deliveries by hand: forged `401`, signed `200`, the same again replayed without
///    running the handler, unsigned `400`;
/// 4. a delivery signed with the previous secret is accepted.
pub(crate) async fn exercise_receiver(
    client: &EZThrottle,
    receiver_url: &str,
    inbox: &WebhookInbox,
    (secret, previous_secret): (&str, &str),
    runs: impl Fn() -> usize,
) -> Result<(), Failure> {
    use ezthrottle::webhook::sign;
    use ezthrottle::{DeliveryStatus, Step, Webhook, WebhookPayload};

    let url = receiver_url;
    let api = serve(Router::new().route("/hello", get(|| async { "hello from the API" }))).await?;
    println!("\n2. A job submitted to the engine; waiting for its webhook");
    let job = Step::new(format!("http://{api}/hello")).webhook(Webhook::new(url)).idempotent_key("greeting-1").to_job();
    // Submits, then waits for the delivery the handler records in the inbox.
    let payload = client.queue_and_wait(&job, inbox, Duration::from_secs(20)).await?;
    let answer = payload.response.as_ref().map(|r| r.body.as_str()).unwrap_or_default();
    println!("   delivered: {} {:?}, the API answered {answer:?}", payload.job_id, payload.status);
    if payload.status != DeliveryStatus::Success {
        return Err(format!("the job did not succeed: {payload:?}").into());
    }
    let runs_before = runs();

    println!("\n3. Deliveries by hand (EZThrottle delivers at least once)");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let body = serde_json::to_string(&WebhookPayload::new("job_by_hand_1", DeliveryStatus::Success))?;
    let forged = sign("not-the-secret", unix_now()?, body.as_bytes());
    // Forged first: it must not spoil the genuine delivery that follows.
    expect("bad signature", deliver(&http, url, &body, Some(&forged)).await?, StatusCode::UNAUTHORIZED, false)?;
    let signed = sign(secret, unix_now()?, body.as_bytes());
    expect("signed", deliver(&http, url, &body, Some(&signed)).await?, StatusCode::OK, false)?;
    expect("same delivery again", deliver(&http, url, &body, Some(&signed)).await?, StatusCode::OK, true)?;
    expect("no signature", deliver(&http, url, &body, None).await?, StatusCode::BAD_REQUEST, false)?;
    let ran = runs() - runs_before;
    if ran != 1 {
        return Err(format!("the handler ran {ran} times for one delivery posted twice").into());
    }

    println!("\n4. A delivery signed with the previous secret, during a rotation");
    let body = serde_json::to_string(&WebhookPayload::new("job_by_hand_2", DeliveryStatus::Success))?;
    let signed = sign(previous_secret, unix_now()?, body.as_bytes());
    expect("previous secret", deliver(&http, url, &body, Some(&signed)).await?, StatusCode::OK, false)
}
