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

/// Signature headers a receiver refuses before reading the body, with the status and the
/// start of the text each gets (what a full verification answers): none, malformed, no
/// `v1`, no or a bad `t`, not UTF-8, and a timestamp outside the default tolerance (the
/// generic 401: the `v1` is never looked at).
pub fn refused_signatures(now: i64) -> Vec<(&'static str, Option<Vec<u8>>, u16, &'static str)> {
    let malformed = "malformed X-EZThrottle-Signature header";
    vec![
        ("missing", None, 400, "missing X-EZThrottle-Signature header"),
        ("garbage", Some(b"garbage".to_vec()), 400, malformed),
        ("no v1", Some(format!("t={now}").into_bytes()), 400, malformed),
        ("no t", Some(b"v1=00".to_vec()), 400, malformed),
        ("bad t", Some(b"t=soon,v1=00".to_vec()), 400, malformed),
        ("not utf-8", Some(b"t=1,v1=\xff\xfe".to_vec()), 400, malformed),
        ("stale", Some(format!("t={},v1=00", now - 1000).into_bytes()), 401, "invalid webhook signature"),
    ]
}

/// POSTs `body` to `url` with the signature header `signature` (none if `None`); answers
/// the status and the text of the response.
///
/// # Panics
/// If the request fails or takes over 20 s.
pub async fn post_signed(url: &str, body: &str, signature: Option<String>) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().expect("client");
    let mut request = client.post(url).header("content-type", "application/json").body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("x-ezthrottle-signature", signature);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("text"))
}
