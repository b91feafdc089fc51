//! Property tests of every parser of peer input on the receiving side, through the public
//! services: the signature header (`VerifyWebhookLayer`), webhook payloads (as the
//! extractors parse them), `Idempotency-Key` headers and payload keys (`IdempotencyLayer`)
//! and rate-limit scopes (`RateLimitLayer`). Whatever the bytes: never a panic, never a 5xx.
//! The fuzz targets under `fuzz/` run the same properties for longer.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use ezthrottle_core::WebhookPayload;
use ezthrottle_core::webhook::{Verifier, sign};
use ezthrottle_tower::idempotency::IdempotencyLayer;
use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
use ezthrottle_tower::webhook::engine::parse;
use ezthrottle_tower::webhook::{VerifiedRequest, VerifyWebhookLayer, WebhookRejection};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{Layer, ServiceExt, service_fn};

use super::support::SECRET;

const NOW: i64 = 1_700_000_000;
const LIMIT: usize = 1024;

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime").block_on(future)
}

/// Echoes the body; a request through a `VerifyWebhookLayer` must carry the extension
/// for exactly that body.
async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let verified = request.extensions().get::<VerifiedRequest>().cloned();
    let body = request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let status = match verified {
        Some(verified) if verified.verified_for(&body).is_some() => StatusCode::OK,
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
        None => StatusCode::NO_CONTENT,
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    Ok(response)
}

/// Header-ish bytes: the alphabet the signature parser cares about, anything, or a real
/// signature with junk around it.
fn signature_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[tv0-9a-f=, \t+-]{0,80}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..80),
        (any::<i64>(), "[0-9a-f]{0,66}", "[ ,=tv0-9]{0,8}")
            .prop_map(|(t, v1, junk)| format!("t={t},v1={v1}{junk}").into_bytes()),
        (-400i64..400, "[ ,=v0-9]{0,8}").prop_map(|(skew, junk)| format!("t={},v1=00{junk}", NOW + skew).into_bytes()),
    ]
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), LIMIT - 2..LIMIT + 2),
        payload_text().prop_map(String::into_bytes),
    ]
}

/// Payload-ish JSON: the fields of a webhook, with values of any JSON shape.
fn payload_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "\"[a-z_\\\\\"\u{0}-\u{ff}]{0,12}\"",
        Just("{}".to_owned()),
        Just("[1,{\"a\":[]}]".to_owned()),
        Just("\"success\"".to_owned()),
        Just("\"failed\"".to_owned()),
    ];
    let field = prop_oneof![
        Just("job_id"),
        Just("status"),
        Just("idempotent_key"),
        Just("response"),
        Just("metadata"),
        Just("error"),
        Just("x"),
    ];
    proptest::collection::vec((field, value), 0..6).prop_map(|pairs| {
        let fields: Vec<String> = pairs.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    })
}

/// What a full verification answers for `header` and `body` (the pre-check and the
/// body limit aside).
fn expected_status(verifier: &Verifier, header: &[u8], body: &[u8]) -> StatusCode {
    match std::str::from_utf8(header) {
        Ok(text) => match verifier.verify(body, text) {
            Ok(_) => StatusCode::OK,
            Err(err) => WebhookRejection::from(err).status(),
        },
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `VerifyWebhookLayer` answers any signature header and body as a full verification
    /// would (413 only past a header the pre-check accepts), never a 5xx; a signature of
    /// the body with junk pairs after it always passes.
    #[test]
    fn the_layer_answers_any_signature_header(header in signature_bytes(), body in body_bytes(), signed in any::<bool>()) {
        let header = if signed {
            let mut valid = sign(SECRET, NOW, &body).into_bytes();
            // Junk pairs after a valid signature do not matter (a second `t` would).
            if std::str::from_utf8(&header).is_ok() && !header.windows(2).any(|w| w == b"t=") {
                valid.push(b',');
                valid.extend_from_slice(&header);
            }
            valid
        } else {
            header
        };
        let Ok(value) = HeaderValue::from_bytes(&header) else { return Ok(()) };
        let verifier = Verifier::new(SECRET).unwrap().with_clock(|| NOW);
        let service = VerifyWebhookLayer::new(verifier.clone()).limit(LIMIT).layer(service_fn(echo));
        let request = Request::post("/hook")
            .header("x-ezthrottle-signature", value)
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request");
        let status = block_on(service.oneshot(request)).expect("infallible").status();
        prop_assert!(!status.is_server_error(), "{}", status);
        let expected = expected_status(&verifier, &header, &body);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            prop_assert!(body.len() > LIMIT);
            let header_ok = std::str::from_utf8(&header).ok().is_some_and(|h| verifier.check_header(h).is_ok());
            prop_assert!(header_ok);
        } else {
            prop_assert_eq!(status, expected);
        }
        if signed {
            prop_assert_eq!(status, if body.len() > LIMIT { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::OK });
        }
    }

    /// A verified body is a payload or a 422, never a panic; a parsed payload survives
    /// a round trip.
    #[test]
    fn payload_parsing_is_a_payload_or_422(
        body in prop_oneof![payload_text().prop_map(String::into_bytes), proptest::collection::vec(any::<u8>(), 0..64)],
    ) {
        match parse::<WebhookPayload>(&body) {
            Ok(payload) => {
                let again = serde_json::to_vec(&payload).expect("serializes");
                prop_assert_eq!(parse::<WebhookPayload>(&again).ok(), Some(payload));
            }
            Err(rejection) => prop_assert_eq!(rejection.status(), StatusCode::UNPROCESSABLE_ENTITY),
        }
    }

    /// `IdempotencyLayer` answers any key header and bodies (webhook payloads among them,
    /// signed-looking so the layer reads their keys) without a 5xx, twice under one key.
    #[test]
    fn idempotency_answers_any_key_and_body(
        key in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "[ -~]{0,300}".prop_map(String::into_bytes),
            "[a-zA-Z0-9_-]{14,18}".prop_map(String::into_bytes),
        ],
        first in body_bytes(),
        second in prop_oneof![Just(None), body_bytes().prop_map(Some)],
        method in prop::sample::select(vec![Method::POST, Method::PUT, Method::PATCH, Method::GET, Method::DELETE]),
        header in prop::sample::select(vec![None, Some("idempotency-key"), Some("x-idempotency-key")]),
        delivery in any::<bool>(),
    ) {
        let layer = IdempotencyLayer::memory();
        let key = HeaderValue::from_bytes(&key).ok();
        let second = second.unwrap_or_else(|| first.clone());
        let statuses = block_on(async {
            let mut statuses = Vec::new();
            for body in [first, second] {
                let mut request = Request::builder().method(method.clone()).uri("/charge?amount=1");
                if let (Some(name), Some(key)) = (header, &key) {
                    request = request.header(name, key.clone());
                }
                if delivery {
                    request = request.header("x-ezthrottle-signature", "t=1,v1=00");
                }
                let request = request.body(Full::new(Bytes::from(body))).expect("request");
                let response = layer.layer(service_fn(echo)).oneshot(request).await.expect("infallible");
                statuses.push(response.status());
                let _ = response.into_body().collect().await;
            }
            statuses
        });
        for status in statuses {
            prop_assert!(!status.is_server_error(), "{}", status);
        }
    }

    /// `RateLimitLayer` answers any scope header value and path with 200 or 429, and one
    /// client's bucket of 2 admits at most 2 of 3.
    #[test]
    fn rate_limits_answer_any_scope(
        api_key in prop_oneof![Just(None), proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some)],
        forwarded in prop_oneof![Just(None), "[0-9a-f.:, \t\\[\\]%]{0,40}".prop_map(|s| Some(s.into_bytes()))],
        path in "/[ -~]{0,40}",
    ) {
        let window = Duration::from_secs(60);
        let layer = RateLimitLayer::new()
            .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(2, window)))
            .rule(Rule::new("per_ip", Scope::client_ip_from_header("x-forwarded-for"), Algorithm::token_bucket(1.0, 2)))
            .rule(Rule::new("per_route", Scope::route(), Algorithm::sliding_window(1000, window)));
        let api_key = api_key.and_then(|k| HeaderValue::from_bytes(&k).ok());
        let forwarded = forwarded.and_then(|f| HeaderValue::from_bytes(&f).ok());
        let uri = http::Uri::try_from(path).unwrap_or_else(|_| http::Uri::from_static("/"));
        let statuses = block_on(async {
            let mut statuses = Vec::new();
            for _ in 0..3 {
                let mut request = Request::get(uri.clone());
                if let Some(key) = &api_key {
                    request = request.header("x-api-key", key.clone());
                }
                if let Some(forwarded) = &forwarded {
                    request = request.header("x-forwarded-for", forwarded.clone());
                }
                let request = request.body(Full::new(Bytes::new())).expect("request");
                statuses.push(layer.layer(service_fn(echo)).oneshot(request).await.expect("infallible").status());
            }
            statuses
        });
        let admitted = statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count();
        prop_assert!(statuses.iter().all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::TOO_MANY_REQUESTS), "{:?}", statuses);
        prop_assert!(admitted <= 2, "{:?}", statuses);
    }
}
