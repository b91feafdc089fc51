//! Property tests of what a peer controls: the `Idempotency-Key` header and a delivery's
//! payload, through the layer around a real router. Whatever they hold: no panic, no 5xx.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::any as any_method;
use ezthrottle_tower::idempotency::{IdempotencyLayer, KeySource};
use proptest::prelude::*;
use tower::ServiceExt;

fn router(layer: IdempotencyLayer) -> Router {
    Router::new().route("/{*path}", any_method(|| async { "ok" })).layer(layer)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Status of `request` through `router` (twice, so a stored answer is replayed too).
fn statuses(
    runtime: &tokio::runtime::Runtime,
    router: &Router,
    request: impl Fn() -> axum::http::Request<Body>,
) -> Vec<u16> {
    runtime.block_on(async {
        let mut statuses = Vec::new();
        for _ in 0..2 {
            let response = router.clone().oneshot(request()).await.expect("infallible");
            statuses.push(response.status().as_u16());
        }
        statuses
    })
}

/// JSON-ish bodies: arbitrary bytes, or objects whose `job_id` and `idempotent_key` are any
/// JSON value (or a truncated document).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        ".*".prop_map(|s| serde_json::Value::String(s).to_string()),
        Just("{}".to_owned()),
        Just("[1,2]".to_owned()),
        Just("\"\"".to_owned()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        (value.clone(), value, any::<u8>()).prop_map(|(job, key, cut)| {
            let json = format!(r#"{{"job_id":{job},"idempotent_key":{key},"status":"success"}}"#).into_bytes();
            // Sometimes cut short: not JSON any more.
            let keep = if cut % 4 == 0 { json.len() * usize::from(cut) / 256 } else { json.len() };
            json.into_iter().take(keep).collect()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_idempotency_key_header_is_never_a_5xx(
        value in proptest::collection::vec(any::<u8>(), 0..300),
        x_header in any::<bool>(),
        method in prop::sample::select(vec!["POST", "PUT", "PATCH", "DELETE", "GET"]),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let Ok(value) = axum::http::HeaderValue::from_bytes(&value) else { return Ok(()) };
        let name = if x_header { "x-idempotency-key" } else { "idempotency-key" };
        let runtime = runtime();
        let router = router(IdempotencyLayer::memory().key_safe_methods(true));
        let statuses = statuses(&runtime, &router, || {
            axum::http::Request::builder()
                .method(method)
                .uri("/pay?x=1")
                .header(name, value.clone())
                .body(Body::from(body.clone()))
                .expect("request")
        });
        for status in statuses {
            prop_assert!(status == 200 || status == 400, "status {status}");
        }
    }

    #[test]
    fn any_delivery_payload_is_never_a_5xx(body in payload(), signed in any::<bool>()) {
        let runtime = runtime();
        for source in [KeySource::Auto, KeySource::Webhook] {
            let router = router(IdempotencyLayer::memory().key_source(source).max_body(200));
            let body = Arc::new(body.clone());
            let statuses = statuses(&runtime, &router, || {
                let mut request = axum::http::Request::post("/webhook");
                if signed {
                    request = request.header("X-EZThrottle-Signature", "t=1,v1=00");
                }
                request.body(Body::from(body.to_vec())).expect("request")
            });
            for status in statuses {
                prop_assert!(status == 200 || status == 413, "status {status}");
            }
        }
    }
}
