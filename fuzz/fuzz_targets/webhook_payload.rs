//! Fuzzes webhook payload parsing as the extractors do it (`engine::parse`): any body
//! is a payload or a 422, never a panic; a parsed payload survives a round trip.
//! Run with `cargo +nightly fuzz run webhook_payload`.
#![no_main]

use ezthrottle_core::WebhookPayload;
use ezthrottle_tower::webhook::engine::parse;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match parse::<WebhookPayload>(body) {
        Ok(payload) => {
            let again = serde_json::to_vec(&payload).expect("a payload serializes");
            assert_eq!(parse::<WebhookPayload>(&again).ok().as_ref(), Some(&payload));
        }
        Err(rejection) => assert_eq!(rejection.status(), StatusCode::UNPROCESSABLE_ENTITY),
    }
});
