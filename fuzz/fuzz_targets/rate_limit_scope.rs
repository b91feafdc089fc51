//! Fuzzes `RateLimitLayer` scope extraction through its public service: hostile header
//! values, forwarded addresses and paths; every answer is 200 or 429, never a panic nor a
//! 5xx, and a bucket of 2 admits at most 2 of 3 requests of the same client.
//! Run with `cargo +nightly fuzz run rate_limit_scope`.
//!
//! Input layout: `<api key bytes> 0xFF <x-forwarded-for bytes> 0xFF <path bytes>`.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt, service_fn};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

async fn ok(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.splitn(3, |&b| b == 0xFF);
    let api_key = HeaderValue::from_bytes(pieces.next().unwrap_or_default()).ok();
    let forwarded = HeaderValue::from_bytes(pieces.next().unwrap_or_default()).ok();
    let uri = Uri::try_from(pieces.next().unwrap_or_default()).unwrap_or_else(|_| Uri::from_static("/"));
    let window = Duration::from_secs(60);
    let layer = RateLimitLayer::new()
        .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(2, window)))
        .rule(Rule::new("per_ip", Scope::client_ip_from_header("x-forwarded-for"), Algorithm::token_bucket(1.0, 2)))
        .rule(Rule::new("per_route", Scope::route(), Algorithm::sliding_window(1000, window)));
    let mut admitted = 0;
    runtime().block_on(async {
        for _ in 0..3 {
            let mut request = Request::get(uri.clone());
            if let Some(key) = &api_key {
                request = request.header("x-api-key", key.clone());
            }
            if let Some(forwarded) = &forwarded {
                request = request.header("x-forwarded-for", forwarded.clone());
            }
            let request = request.body(Full::new(Bytes::new())).expect("request");
            let response = layer.layer(service_fn(ok)).oneshot(request).await.expect("infallible");
            match response.status() {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("{other}"),
            }
        }
    });
    assert!(admitted <= 2, "{admitted}");
});
