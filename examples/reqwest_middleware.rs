//! Forward rate-limited `reqwest` calls: `ForwardMiddleware` in a `reqwest-middleware` client.
//!
//! ```sh
//! cargo run --example reqwest_middleware
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo API that allows 3
//! requests per second (then answers `429` with `Retry-After: 1`) and a webhook receiver.
//! Then, through a `reqwest_middleware` client with `ForwardMiddleware`:
//!
//! 1. a burst of calls, each with an `Idempotency-Key`: the first ones pass through
//!    untouched; each `429` comes back as `202 Accepted` with EZThrottle's receipt;
//! 2. the same call again: EZThrottle recognises the key and answers the same job;
//! 3. the result of each forwarded call is awaited in the webhook inbox, by its key.
//!
//! It exits non-zero if anything did not happen as described.

mod support;

use std::time::Instant;

use axum::http::StatusCode;
use ezthrottle::tower::{ForwardMiddleware, ForwardedJob};
use ezthrottle::{DeliveryStatus, Webhook};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use support::{BURST, Failure, WEBHOOK_WAIT};

const SECRET: &str = "reqwest-middleware-example-secret";

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    // The receiver verifies each delivery's signature and records it in the inbox, where
    // it can be awaited by job id or by idempotency key.
    let support::OrdersDemo { engine, ezthrottle, api, inbox, webhook_url } =
        support::start_orders_demo(SECRET).await?;

    // Calls still go straight to the API; only the failures the policy selects (429, 5xx,
    // transport errors) are handed to EZThrottle as jobs.
    let client: ClientWithMiddleware = ClientBuilder::new(reqwest::Client::new())
        .with(ForwardMiddleware::new(ezthrottle).with_template(|job| job.webhook(Webhook::new(&webhook_url))))
        .build();

    println!("\n2. A burst of {BURST} calls through reqwest + ForwardMiddleware");
    let mut passed = 0;
    let mut forwarded = Vec::new();
    for order in 1..=BURST {
        let (status, job, body) = place_order(&client, &format!("http://{api}/orders/{order}"), order).await?;
        match job {
            None if status == StatusCode::OK => {
                println!("   GET /orders/{order} -> {status}, {body:?} (passed through)");
                passed += 1;
            }
            Some(job) if status == StatusCode::ACCEPTED => {
                let receipt = &job.receipt;
                println!("   GET /orders/{order} -> {status}: {}; queued as {}", job.reason, receipt.job_id);
                forwarded.push((order, receipt.job_id.clone()));
            }
            _ => return Err(format!("/orders/{order}: unexpected answer {status} {body:?}").into()),
        }
    }
    let Some((order, job_id)) = forwarded.first().cloned() else {
        return Err("the burst was never rate limited: nothing was forwarded".into());
    };
    if passed == 0 {
        return Err("no call passed through".into());
    }

    println!("\n3. Order {order} again, while the API is still limiting");
    // The `Idempotency-Key` header is the job's key: a retried call is the same job, not a
    // second order.
    let (status, job, _) = place_order(&client, &format!("http://{api}/orders/{order}"), order).await?;
    let again = job.ok_or_else(|| format!("the repeat was not forwarded ({status})"))?;
    println!("   {status}: job {}, duplicate: {}", again.receipt.job_id, again.receipt.duplicate);
    if again.receipt.job_id != job_id || !again.receipt.duplicate {
        return Err(format!("expected a duplicate of {job_id}, got {:?}", again.receipt).into());
    }

    println!("\n4. Waiting for each forwarded call's result (EZThrottle honours Retry-After)");
    for (order, job_id) in &forwarded {
        let key = idempotency_key(*order);
        let payload = inbox.wait(&key, WEBHOOK_WAIT).await?;
        let answer = payload.response.as_ref().map(|r| format!("{} {:?}", r.status_code, r.body)).unwrap_or_default();
        println!("   {key} ({job_id}): {:?}, the API answered {answer}", payload.status);
        if payload.job_id != *job_id || payload.status != DeliveryStatus::Success {
            return Err(format!("unexpected delivery for {key}: {payload:?}").into());
        }
    }

    support::finish(engine, started, "calls passed through, failures became jobs, results arrived signed.").await
}

fn idempotency_key(order: u32) -> String {
    format!("order-{order}")
}

/// One call: its status, its forwarding receipt (when it was forwarded) and its body.
async fn place_order(
    client: &ClientWithMiddleware,
    url: &str,
    order: u32,
) -> Result<(StatusCode, Option<ForwardedJob>, String), Failure> {
    let response = client.get(url).header("idempotency-key", idempotency_key(order)).send().await?;
    let status = response.status();
    // The synthesized `202` carries the typed receipt; it is also in the JSON body and
    // the `x-ezthrottle-job-id` header.
    let job = response.extensions().get::<ForwardedJob>().cloned();
    Ok((status, job, response.text().await?))
}

#[tokio::main]
async fn main() {
    support::exit_with("reqwest_middleware", run().await);
}
