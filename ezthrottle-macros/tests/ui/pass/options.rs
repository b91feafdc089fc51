//! Every option, alone and together.
extern crate ezthrottle_core as ezthrottle;

use ezthrottle::{EZThrottle, ForwardToEZThrottle, Outcome, Webhook};
use ezthrottle_macros::auto_forward;

#[auto_forward(step = frugal)]
async fn frugal() -> Result<u8, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(step = performance)]
fn performance() -> Result<u8, ForwardToEZThrottle> {
    Ok(2)
}

/// The key may use an argument the body consumes: it is computed first.
#[auto_forward(idempotent_key = format!("order-{}", order.len()))]
async fn keyed(order: Vec<u8>) -> Result<usize, ForwardToEZThrottle> {
    let consumed = order;
    Ok(consumed.len())
}

#[auto_forward(idempotent_key = "fixed-key")]
fn keyed_literal() -> Result<u8, ForwardToEZThrottle> {
    Ok(3)
}

#[auto_forward(webhooks = [Webhook::new("https://app.example.com/webhook")])]
fn with_webhooks() -> Result<u8, ForwardToEZThrottle> {
    Ok(4)
}

#[auto_forward(webhooks = hooks.iter().map(|url| Webhook::new(*url)).collect::<Vec<_>>())]
async fn with_webhooks_from_arguments(hooks: &[&str]) -> Result<usize, ForwardToEZThrottle> {
    Ok(hooks.len())
}

#[auto_forward(on_status = [429, 500, 502, 503, 504])]
async fn http(url: &str) -> Result<String, ezthrottle::FailedCall> {
    use ezthrottle::KeepRequest;
    if url.is_empty() {
        return Ok(String::new());
    }
    Ok(reqwest::Client::new().get(url).send_keeping_request().await?.text().await?)
}

#[auto_forward(on_status = [429])]
fn boxed_dyn(fail: bool) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        return Err("plain".into());
    }
    Ok(5)
}

#[auto_forward(on_status = [503])]
fn forwardable_with_on_status() -> Result<u8, ForwardToEZThrottle> {
    Ok(6)
}

#[auto_forward(crate = "ezthrottle_core")]
fn explicit_crate() -> Result<u8, ForwardToEZThrottle> {
    Ok(7)
}

#[auto_forward(
    client = client,
    step = frugal,
    idempotent_key = key.clone(),
    webhooks = vec![Webhook::new("https://app.example.com/webhook")],
    on_status = [429],
    crate = "ezthrottle_core",
)]
async fn everything(client: &EZThrottle, key: String) -> Result<String, ForwardToEZThrottle> {
    Ok(key)
}

fn main() {
    assert!(matches!(performance(), Ok(Outcome::Completed(2))));
    assert!(matches!(keyed_literal(), Ok(Outcome::Completed(3))));
    assert!(matches!(with_webhooks(), Ok(Outcome::Completed(4))));
    assert!(matches!(boxed_dyn(false), Ok(Outcome::Completed(5))));
    // A boxed error without an HTTP failure in its chain is returned as is.
    assert!(matches!(boxed_dyn(true), Err(ezthrottle::AutoForwardError::Failed(_))));
    assert!(matches!(forwardable_with_on_status(), Ok(Outcome::Completed(6))));
    assert!(matches!(explicit_crate(), Ok(Outcome::Completed(7))));
    let client = EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(frugal().await, Ok(Outcome::Completed(1))));
        assert!(matches!(keyed(vec![1, 2]).await, Ok(Outcome::Completed(2))));
        assert!(matches!(with_webhooks_from_arguments(&["https://a.example/h"]).await, Ok(Outcome::Completed(1))));
        assert!(matches!(http("").await, Ok(Outcome::Completed(s)) if s.is_empty()));
        assert!(matches!(everything(&client, "k".into()).await, Ok(Outcome::Completed(k)) if k == "k"));
    });
}
