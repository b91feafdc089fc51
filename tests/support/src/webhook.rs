//! Webhook deliveries for the receivers' tests (the tower layer and extractors, the
//! actix-web middleware): the secrets they are signed with, the signing clock and
//! payload bodies.

use std::time::{SystemTime, UNIX_EPOCH};

/// The receivers' primary signing secret.
pub const SECRET: &str = "whsec_primary_for_tests";
/// The secret being rotated out (a receiver's secondary).
pub const OLD_SECRET: &str = "whsec_previous_for_tests";

/// Now, in Unix seconds (the signature's timestamp).
pub fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("i64")
}

/// A successful job's webhook payload, with the idempotency key `key` if given.
pub fn payload_json(job_id: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!(r#"{{"job_id":"{job_id}","idempotent_key":"{key}","status":"success","metadata":{{}}}}"#),
        None => format!(r#"{{"job_id":"{job_id}","status":"success","metadata":{{}}}}"#),
    }
}

/// A payload of about `size` bytes (padded in its metadata).
pub fn big_payload_json(job_id: &str, size: usize) -> String {
    let pad = "x".repeat(size.saturating_sub(80));
    format!(r#"{{"job_id":"{job_id}","status":"success","metadata":{{"pad":"{pad}"}}}}"#)
}
