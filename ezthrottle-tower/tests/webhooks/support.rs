#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const SECRET: &str = "whsec_primary_for_tests";
pub(crate) const OLD_SECRET: &str = "whsec_previous_for_tests";

pub(crate) fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("i64")
}

pub(crate) fn payload_json(job_id: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!(r#"{{"job_id":"{job_id}","idempotent_key":"{key}","status":"success","metadata":{{}}}}"#),
        None => format!(r#"{{"job_id":"{job_id}","status":"success","metadata":{{}}}}"#),
    }
}

/// A 1 KiB-ish payload.
pub(crate) fn big_payload_json(job_id: &str, size: usize) -> String {
    let pad = "x".repeat(size.saturating_sub(80));
    format!(r#"{{"job_id":"{job_id}","status":"success","metadata":{{"pad":"{pad}"}}}}"#)
}

#[cfg(feature = "axum")]
pub(crate) use ezthrottle_test_support::serve;

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client")
}

#[cfg(feature = "redis")]
pub(crate) use ezthrottle_test_support::RedisServer;
