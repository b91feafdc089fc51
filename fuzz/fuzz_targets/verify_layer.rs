//! Fuzzes `VerifyWebhookLayer` with hostile signature headers and bodies: the answer is
//! never a 5xx nor a panic; a request is let through only when the body was signed with
//! the secret; a header refused before the body is read gets the answer the full
//! verification gives. Run with `cargo +nightly fuzz run verify_layer`.
//!
//! Input layout: `<flags> <header bytes> 0xFF <body bytes>`; flag bit 0 replaces the header
//! with a valid signature of the body (the fuzzed header appended as extra pairs).
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use ezthrottle_core::webhook::{Verifier, sign};
use ezthrottle_tower::webhook::{VerifiedRequest, VerifyWebhookLayer};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt, service_fn};

const SECRET: &str = "whsec_fuzz_secret_0123";
const NOW: i64 = 1_700_000_000;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

async fn inner(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let verified = request.extensions().get::<VerifiedRequest>().cloned();
    let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    // The extension covers exactly the body handed on.
    assert!(verified.is_some_and(|v| v.verified_for(&body).is_some()));
    Ok(Response::new(Full::new(body)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (header, body) = match rest.iter().position(|&b| b == 0xFF) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let signed = flags & 1 == 1;
    let header: Vec<u8> = if signed {
        let mut valid = sign(SECRET, NOW, body).into_bytes();
        // Junk pairs after a valid signature do not matter (a second `t` would).
            if std::str::from_utf8(header).is_ok() && !header.windows(2).any(|w| w == b"t=") {
            valid.push(b',');
            valid.extend_from_slice(header);
        }
        valid
    } else {
        header.to_vec()
    };
    let Ok(value) = HeaderValue::from_bytes(&header) else { return };
    let verifier = Verifier::new(SECRET).unwrap().with_clock(|| NOW);
    let service = VerifyWebhookLayer::new(verifier.clone()).limit(4096).layer(service_fn(inner));
    let request = Request::post("/hook")
        .header("x-ezthrottle-signature", value)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let response = runtime().block_on(service.oneshot(request)).expect("infallible");
    let status = response.status();
    assert!(!status.is_server_error(), "{status}");
    let expected = match std::str::from_utf8(&header) {
        Ok(text) => match verifier.verify(body, text) {
            Ok(_) if body.len() > 4096 => StatusCode::PAYLOAD_TOO_LARGE,
            Ok(_) => StatusCode::OK,
            Err(err) => ezthrottle_tower::webhook::WebhookRejection::from(err).status(),
        },
        Err(_) => StatusCode::BAD_REQUEST,
    };
    // Over the limit answers 413 only once the header passed the pre-check.
    if status != StatusCode::PAYLOAD_TOO_LARGE {
        assert_eq!(status, expected);
    }
    if signed && body.len() <= 4096 {
        assert_eq!(status, StatusCode::OK);
    }
});
