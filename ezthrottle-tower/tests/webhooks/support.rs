#![allow(dead_code)]

use std::time::Duration;

pub(crate) use ezthrottle_test_support::webhook::{OLD_SECRET, SECRET, big_payload_json, now, payload_json};

#[cfg(feature = "axum")]
pub(crate) use ezthrottle_test_support::serve;

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client")
}

#[cfg(feature = "redis")]
pub(crate) use ezthrottle_test_support::RedisServer;
