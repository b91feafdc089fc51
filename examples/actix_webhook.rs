//! Receive EZThrottle webhooks in actix-web: verified signatures, secret rotation,
//! duplicates suppressed.
//!
//! ```sh
//! cargo run --example actix_webhook
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo API and an actix-web
//! webhook receiver built from the `VerifiedDelivery` extractor (its `Verifier`, with
//! a primary and a secondary secret, registered with `App::app_data`) and the `ActixIdempotency`
//! middleware. Then:
//!
//! 1. a job is submitted to the engine; its signed webhook arrives and is verified;
//! 2. a correctly signed delivery is posted twice: the handler runs once, the repeat gets
//!    the stored answer;
//! 3. a delivery with a bad signature gets `401`, one without a signature `400`;
//! 4. a delivery signed with the secondary (previous) secret is accepted.
//!
//! It exits non-zero if anything did not happen as described.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use axum::Router;
use axum::routing::get;
use ezthrottle::actix::{ActixIdempotency, ActixVerifyWebhook, VerifiedDelivery};
use ezthrottle::inbox::WebhookInbox;
use ezthrottle::local::Engine;
use ezthrottle::tower::REPLAY_HEADER;
use ezthrottle::tower::webhook::SIGNATURE_HEADER;
use ezthrottle::webhook::{Verifier, sign};
use ezthrottle::{DeliveryStatus, EZThrottle, Step, Webhook, WebhookPayload};
use reqwest::StatusCode;

/// The secret EZThrottle signs with now.
const SECRET: &str = "actix-example-secret-2";
/// The previous secret, still accepted while senders switch over (rotation).
const PREVIOUS_SECRET: &str = "actix-example-secret-1";
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("\nactix_webhook failed: {error}");
        std::process::exit(1);
    }
}

/// What the handler shares with the rest of the program.
struct Receiver {
    inbox: WebhookInbox,
    runs: AtomicUsize,
}

/// Runs once per verified delivery of a job: repeats are answered by `ActixIdempotency`.
/// `VerifiedDelivery` reads the body, so it is the last extractor.
async fn webhook(receiver: web::Data<Receiver>, delivery: VerifiedDelivery) -> HttpResponse {
    let run = receiver.runs.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "   handler run #{run}: {} {:?}, signed with the {:?} secret",
        delivery.job_id,
        delivery.status,
        delivery.secret()
    );
    receiver.inbox.record(delivery.into_inner());
    HttpResponse::Ok().body("ok")
}

/// Starts the actix-web receiver on a free loopback port (in its own worker thread, as
/// actix does); stop it with the returned handle.
fn start_receiver(receiver: web::Data<Receiver>, verifier: Verifier) -> Result<(SocketAddr, ServerHandle), Failure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // Made once, outside the factory: every worker must share one store.
    let idempotency = ActixIdempotency::memory();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .app_data(receiver.clone())
            .route("/webhook", web::post().to(webhook))
            // The last `wrap` runs first: verify, then de-duplicate, then the handler.
            .wrap(idempotency.clone())
            .wrap(ActixVerifyWebhook::new())
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        if let Err(error) = server.await {
            eprintln!("receiver on {addr} stopped: {error}");
        }
    });
    Ok((addr, handle))
}

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("1. Starting the engine, a demo API and the actix-web receiver on 127.0.0.1");
    let engine = Engine::builder().open().webhook_secret(SECRET).start().await?;
    let api = serve(Router::new().route("/hello", get(|| async { "hello from the API" }))).await?;
    let inbox = WebhookInbox::new();
    let receiver = web::Data::new(Receiver { inbox: inbox.clone(), runs: AtomicUsize::new(0) });
    let verifier = Verifier::new(SECRET).with_secondary(PREVIOUS_SECRET);
    let (addr, server) = start_receiver(receiver.clone(), verifier)?;
    let url = format!("http://{addr}/webhook");
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
    let runs_before = receiver.runs.load(Ordering::SeqCst);

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
    let ran = receiver.runs.load(Ordering::SeqCst) - runs_before;
    if ran != 1 {
        return Err(format!("the handler ran {ran} times for one delivery posted twice").into());
    }

    println!("\n4. A delivery signed with the previous secret, during a rotation");
    let body = serde_json::to_string(&WebhookPayload::new("job_by_hand_2", DeliveryStatus::Success))?;
    let signed = sign(PREVIOUS_SECRET, unix_now()?, body.as_bytes());
    expect("previous secret", deliver(&http, &url, &body, Some(&signed)).await?, StatusCode::OK, false)?;

    server.stop(true).await;
    engine.shutdown().await;
    println!(
        "\nDone in {:.1} s: the handler ran {} times, once per job; every bad delivery was refused.",
        started.elapsed().as_secs_f64(),
        receiver.runs.load(Ordering::SeqCst)
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

/// Serves the demo API (axum) on a free loopback port.
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
