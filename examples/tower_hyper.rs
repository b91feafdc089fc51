//! Forward rate-limited calls made with hyper's client: `ForwardLayer` in a tower stack.
//!
//! ```sh
//! cargo run --example tower_hyper
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo API that allows 3
//! requests per second (then answers `429` with `Retry-After: 1`) and a webhook receiver.
//! Then, through a hyper-util client wrapped in `ForwardLayer`:
//!
//! 1. a burst of calls: the first ones pass through untouched; each `429` comes back as
//!    `202 Accepted` with the id of the job EZThrottle queued instead;
//! 2. a call to a port where nothing listens: the transport error is forwarded too;
//! 3. the signed webhook with each rate-limited call's result is awaited at the receiver.
//!
//! It exits non-zero if anything did not happen as described.

mod support;

use std::time::Instant;

use axum::http::StatusCode;
use bytes::Bytes;
use ezthrottle::protocol::headers::JOB_ID_HEADER;
use ezthrottle::tower::{ForwardLayer, ForwardReason, ForwardedJob};
use ezthrottle::{DeliveryStatus, Webhook};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{BURST, Failure, WEBHOOK_WAIT};
use tower::{ServiceBuilder, ServiceExt};

const SECRET: &str = "tower-hyper-example-secret";

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    // The receiver verifies each delivery's signature and records it in the inbox, where
    // the code that made the call can await it by job id.
    let support::OrdersDemo { engine, ezthrottle, api, inbox, webhook_url } =
        support::start_orders_demo(SECRET).await?;

    // The HTTP client you already have, wrapped: calls still go straight to the API; only
    // the failures the policy selects (429, 5xx, transport errors) become jobs.
    let client = ServiceBuilder::new()
        .layer(ForwardLayer::new(ezthrottle).with_template(|job| job.webhook(Webhook::new(&webhook_url))))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    println!("\n2. A burst of {BURST} calls through hyper + ForwardLayer");
    let mut passed = 0;
    let mut forwarded = Vec::new();
    for order in 1..=BURST {
        let request = Request::get(format!("http://{api}/orders/{order}")).body(Full::default())?;
        let response = client.clone().oneshot(request).await?;
        let status = response.status();
        // A forwarded call carries its receipt twice: the `x-ezthrottle-job-id` header
        // (for any code that only sees HTTP) and the typed `ForwardedJob` extension.
        let job = response.extensions().get::<ForwardedJob>().cloned();
        let header = response.headers().get(JOB_ID_HEADER).and_then(|id| id.to_str().ok()).map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        match (job, header) {
            (None, _) if status == StatusCode::OK => {
                println!("   GET /orders/{order} -> {status}, {:?} (passed through)", String::from_utf8_lossy(&body));
                passed += 1;
            }
            (Some(job), Some(job_id)) if status == StatusCode::ACCEPTED && job.receipt.job_id == job_id => {
                println!("   GET /orders/{order} -> {status}: {}; queued as {job_id}", job.reason);
                forwarded.push(job_id);
            }
            _ => return Err(format!("/orders/{order}: unexpected answer {status}").into()),
        }
    }
    if passed == 0 || forwarded.is_empty() {
        return Err(format!("expected both kinds: {passed} passed through, {} forwarded", forwarded.len()).into());
    }

    println!("\n3. A call to a port where nothing listens");
    let refused = support::free_port()?;
    let request = Request::get(format!("http://{refused}/orders/99")).body(Full::default())?;
    let response = client.clone().oneshot(request).await?;
    let job = response.extensions().get::<ForwardedJob>().ok_or("the transport error was not forwarded")?;
    if job.reason != ForwardReason::TransportError {
        return Err(format!("expected a transport error, got: {}", job.reason).into());
    }
    println!(
        "   GET http://{refused}/orders/99 -> {}: {}; queued as {}",
        response.status(),
        job.reason,
        job.receipt.job_id
    );
    // That job keeps failing (nothing will ever listen there); its "failed" webhook would
    // come after the engine's retries, so this example does not wait for it.

    println!("\n4. Waiting for the webhooks of the rate-limited calls (EZThrottle honours Retry-After)");
    for job_id in &forwarded {
        let payload = inbox.wait(job_id, WEBHOOK_WAIT).await?;
        let answer = payload.response.as_ref().map(|r| format!("{} {:?}", r.status_code, r.body)).unwrap_or_default();
        println!("   {job_id}: {:?}, the API answered {answer}", payload.status);
        if payload.status != DeliveryStatus::Success {
            return Err(format!("{job_id} did not succeed: {payload:?}").into());
        }
    }

    support::finish(engine, started, "calls passed through, failures became jobs, results arrived signed.").await
}

#[tokio::main]
async fn main() {
    support::exit_with("tower_hyper", run().await);
}
