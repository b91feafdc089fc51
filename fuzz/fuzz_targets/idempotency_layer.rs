//! Fuzzes `IdempotencyLayer` (memory store) through its public service with hostile
//! `Idempotency-Key` headers and bodies, webhook payloads among them (a signature header
//! makes the layer read the payload's keys): two requests under the same key, never a
//! panic nor a 5xx. Run with `cargo +nightly fuzz run idempotency_layer`.
//!
//! Input layout: `<flags> <key bytes> 0xFF <first body> 0xFF <second body>`. Flags: bit 0
//! and 1 pick the method, bit 2 the key header name, bit 3 adds a signature header, bit 4
//! drops the key header.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use ezthrottle_tower::idempotency::IdempotencyLayer;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt, service_fn};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

async fn inner(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Ok(Response::new(Full::new(body)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut pieces = rest.splitn(3, |&b| b == 0xFF);
    let key = pieces.next().unwrap_or_default();
    let first = pieces.next().unwrap_or_default();
    let second = pieces.next().unwrap_or(first);
    let method = [Method::POST, Method::PUT, Method::GET, Method::PATCH][usize::from(flags & 3)].clone();
    let key_header = if flags & 4 == 0 { "idempotency-key" } else { "x-idempotency-key" };
    let key = match HeaderValue::from_bytes(key) {
        Ok(key) if flags & 16 == 0 => Some(key),
        _ => None,
    };
    let layer = IdempotencyLayer::memory();
    runtime().block_on(async {
        for body in [first, second] {
            let mut request = Request::builder().method(method.clone()).uri("/charge");
            if let Some(key) = &key {
                request = request.header(key_header, key.clone());
            }
            if flags & 8 != 0 {
                request = request.header("x-ezthrottle-signature", "t=1,v1=00");
            }
            let request = request.body(Full::new(Bytes::copy_from_slice(body))).expect("request");
            let service = layer.layer(service_fn(inner));
            let response = service.oneshot(request).await.expect("infallible");
            let status = response.status();
            assert!(!status.is_server_error(), "{status}");
            assert!(status == StatusCode::OK || status.is_client_error(), "{status}");
            let _ = response.into_body().collect().await;
        }
    });
});
