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

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use ezthrottle::actix::{ActixIdempotency, ActixVerifyWebhook, VerifiedDelivery};
use ezthrottle::inbox::WebhookInbox;
use ezthrottle::webhook::Verifier;
use support::Failure;

/// The secret EZThrottle signs with now.
const SECRET: &str = "actix-example-secret-2";
/// The previous secret, still accepted while senders switch over (rotation).
const PREVIOUS_SECRET: &str = "actix-example-secret-1";

/// What the handler shares with the rest of the program.
struct Receiver {
    inbox: WebhookInbox,
    runs: AtomicUsize,
}

/// Runs once per verified delivery of a job: repeats are answered by `ActixIdempotency`.
/// `VerifiedDelivery` reads the body, so it is the last extractor.
async fn webhook(receiver: web::Data<Receiver>, delivery: VerifiedDelivery) -> HttpResponse {
    let run = receiver.runs.fetch_add(1, Ordering::SeqCst) + 1;
    support::print_run(run, &delivery, delivery.secret());
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
    let (engine, client) = support::start_engine(SECRET).await?;
    let inbox = WebhookInbox::new();
    let receiver = web::Data::new(Receiver { inbox: inbox.clone(), runs: AtomicUsize::new(0) });
    let verifier = Verifier::new(SECRET)?.with_secondary(PREVIOUS_SECRET)?;
    let (addr, server) = start_receiver(receiver.clone(), verifier)?;
    let url = format!("http://{addr}/webhook");
    println!("   engine    {}", engine.base_url());
    println!("   receiver  {url}");

    let runs_now = || receiver.runs.load(Ordering::SeqCst);
    support::exercise_receiver(&client, &url, &inbox, (SECRET, PREVIOUS_SECRET), runs_now).await?;

    server.stop(true).await;
    engine.shutdown().await;
    println!(
        "\nDone in {:.1} s: the handler ran {} times, once per job; every bad delivery was refused.",
        started.elapsed().as_secs_f64(),
        receiver.runs.load(Ordering::SeqCst)
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    support::exit_with("actix_webhook", run().await);
}
