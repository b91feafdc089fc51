//! `#[auto_forward]`: hand a legacy function's rate-limited failures to EZThrottle without
//! rewriting its error handling.
//!
//! ```sh
//! cargo run --example legacy_auto_forward
//! ```
//!
//! It starts, on 127.0.0.1, the embedded EZThrottle engine, a demo market API (2 requests
//! per 2 seconds; beyond that `429` with `Retry-After`) and a webhook receiver feeding a
//! `WebhookInbox`. Two legacy functions call the API:
//!
//! - `quote` returns `Result<String, ForwardToEZThrottle>`;
//! - `place_order` returns `Result<String, OrderError>`, a custom error that implements
//!   `Forwardable`: only its `RateLimited` variant is handed to EZThrottle.
//!
//! With `#[auto_forward]` they return `Result<Outcome<T>, AutoForwardError<E>>`:
//!
//! 1. `Ok` passes through as `Outcome::Completed`;
//! 2. an error that carries no request comes back as `AutoForwardError::Failed`;
//! 3. a 429 is forwarded: `Outcome::Forwarded(receipt)`;
//! 4. with EZThrottle unreachable, the original error comes back, with the reason, in
//!    `AutoForwardError::ForwardFailed { original, error }`;
//! 5. the forwarded jobs run at EZThrottle (after the API's `Retry-After`) and their
//!    results are awaited in the inbox.
//!
//! It exits non-zero if anything did not happen as expected.

mod support;

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ezthrottle::tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
use ezthrottle::{
    AutoForwardError, DeliveryStatus, EZThrottle, ForwardToEZThrottle, Forwardable, Outcome, Webhook, auto_forward,
};
use support::{Failure, WEBHOOK_WAIT};

const SECRET: &str = "legacy-webhook-secret";

/// The legacy client of the market API. Only the attributes are new.
#[derive(Clone)]
struct Market {
    http: reqwest::Client,
    api: String,
    ezthrottle: EZThrottle,
    webhook: String,
}

impl Market {
    /// Fetches a quote. On a 429 it describes the request for EZThrottle to retry; the
    /// attribute submits it (evaluating `client` and `webhooks` only then).
    #[auto_forward(
        client = self.ezthrottle,
        idempotent_key = format!("quote-{symbol}"),
        webhooks = [Webhook::new(&self.webhook)]
    )]
    async fn quote(&self, symbol: &str) -> Result<String, ForwardToEZThrottle> {
        let url = format!("{}/quotes/{symbol}", self.api);
        // Inside the body nothing changes: `?` still converts into the declared error.
        let response = self.http.get(&url).send().await.map_err(|_| ForwardToEZThrottle::get(&url))?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(ForwardToEZThrottle::get(url));
        }
        response.text().await.map_err(|_| ForwardToEZThrottle::get(url))
    }

    /// Places an order, with the legacy code's own error type.
    #[auto_forward(
        client = self.ezthrottle,
        idempotent_key = format!("order-{id}"),
        webhooks = [Webhook::new(&self.webhook)]
    )]
    async fn place_order(&self, id: u32, symbol: &str, quantity: u32) -> Result<String, OrderError> {
        let url = format!("{}/orders", self.api);
        let body = format!(r#"{{"id":{id},"symbol":"{symbol}","quantity":{quantity}}}"#);
        // `?` as before: a `reqwest::Error` becomes `OrderError::Transport` (not forwarded).
        let request = self.http.post(&url).header("content-type", "application/json").body(body.clone());
        let response = request.send().await?;
        match response.status() {
            StatusCode::TOO_MANY_REQUESTS => {
                let retry = ForwardToEZThrottle::post(url, body)
                    .map_step(|step| step.header("content-type", "application/json"));
                Err(OrderError::RateLimited(retry))
            }
            status if status.is_success() => Ok(response.text().await?),
            status => Err(OrderError::Rejected { status: status.as_u16(), reason: response.text().await? }),
        }
    }
}

/// The legacy error type: some failures are worth a retry by EZThrottle, some are not.
#[derive(Debug)]
enum OrderError {
    /// The API is busy: worth retrying later.
    RateLimited(ForwardToEZThrottle),
    /// The API refused the order: retrying would not help.
    Rejected { status: u16, reason: String },
    /// The call failed in transport.
    Transport(reqwest::Error),
}

impl Forwardable for OrderError {
    fn forward_request(&self) -> Option<ForwardToEZThrottle> {
        match self {
            Self::RateLimited(retry) => Some(retry.clone()),
            Self::Rejected { .. } | Self::Transport(_) => None,
        }
    }
}

impl From<reqwest::Error> for OrderError {
    fn from(error: reqwest::Error) -> Self {
        Self::Transport(error)
    }
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RateLimited(retry) => write!(f, "rate limited ({retry})"),
            Self::Rejected { status, reason } => write!(f, "order rejected with {status}: {reason}"),
            Self::Transport(error) => write!(f, "order failed in transport: {error}"),
        }
    }
}

impl std::error::Error for OrderError {}

async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    println!("Starting the engine, the market API and a webhook receiver on 127.0.0.1");
    let (engine, ezthrottle) = support::start_engine(SECRET).await?;
    let api = support::serve(market_api()).await?;
    let (inbox, webhook) = support::start_receiver(SECRET).await?;
    println!("   engine    {}", engine.base_url());
    println!("   API       http://{api}  (2 requests per 2 s, then 429 + Retry-After)");
    println!("   receiver  {webhook}");
    let market = Market { http: reqwest::Client::new(), api: format!("http://{api}"), ezthrottle, webhook };

    println!("\n1. Ok passes through untouched");
    // `?` works on the annotated function too: `AutoForwardError<E>` is an error type.
    match market.quote("ACME").await? {
        Outcome::Completed(quote) => println!("   quote(ACME): Completed({quote})"),
        other => return Err(format!("expected Completed, got {other:?}").into()),
    }

    println!("\n2. An error that carries no request is returned as it was");
    match market.place_order(1, "NOPE", 5).await {
        Err(AutoForwardError::Failed(error @ OrderError::Rejected { .. })) => {
            println!("   place_order: Failed({error})")
        }
        other => return Err(format!("expected Failed(Rejected), got {other:?}").into()),
    }

    println!("\n3. The API is now rate limiting: 429s are forwarded to EZThrottle");
    let mut forwarded = Vec::new();
    match market.quote("GLOBEX").await? {
        Outcome::Forwarded(receipt) => {
            println!("   quote(GLOBEX): Forwarded as {} ({})", receipt.job_id, receipt.status);
            forwarded.push(("quote(GLOBEX)", receipt));
        }
        other => return Err(format!("expected Forwarded, got {other:?}").into()),
    }
    match market.place_order(2, "ACME", 10).await? {
        Outcome::Forwarded(receipt) => {
            println!("   place_order(2): Forwarded as {} ({})", receipt.job_id, receipt.status);
            forwarded.push(("place_order(2)", receipt));
        }
        other => return Err(format!("expected Forwarded, got {other:?}").into()),
    }

    println!("\n4. EZThrottle unreachable: the original error comes back, with the reason");
    let offline = Market { ezthrottle: support::unreachable_client()?, ..market.clone() };
    match offline.quote("INITECH").await {
        Err(AutoForwardError::ForwardFailed { original, error }) => {
            println!("   original: {original}");
            println!("   reason:   {error}");
            if !error.is_not_sent() {
                return Err("expected an engine that was not reached (not sent)".into());
            }
        }
        other => return Err(format!("expected ForwardFailed, got {other:?}").into()),
    }

    println!("\n5. The forwarded jobs run at EZThrottle; their results arrive as webhooks");
    for (call, receipt) in &forwarded {
        let payload = inbox.wait(&receipt.job_id, WEBHOOK_WAIT).await?;
        let response = payload.response.as_ref().ok_or("the delivery carries no response")?;
        println!("   {call}: {:?}, the API answered {}: {}", payload.status, response.status_code, response.body);
        if payload.status != DeliveryStatus::Success {
            return Err(format!("{call} did not succeed: {payload:?}").into());
        }
    }

    engine.shutdown().await;
    println!("\nDone in {:.1}s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// The market API: 2 requests per 2 seconds in all, so a burst runs into 429s.
fn market_api() -> Router {
    async fn quote(Path(symbol): Path<String>) -> String {
        format!("{symbol} 42.00")
    }
    async fn order(Json(order): Json<serde_json::Value>) -> (StatusCode, String) {
        match order["symbol"].as_str() {
            Some("ACME" | "GLOBEX" | "INITECH") => (StatusCode::CREATED, format!("order {} placed", order["id"])),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "unknown symbol".to_owned()),
        }
    }
    let limit = Algorithm::sliding_window(2, Duration::from_secs(2));
    Router::new()
        .route("/quotes/{symbol}", get(quote))
        .route("/orders", post(order))
        .layer(RateLimitLayer::new().rule(Rule::new("market", Scope::global(), limit)))
}

#[tokio::main]
async fn main() {
    support::exit_with("legacy_auto_forward", run().await);
}
