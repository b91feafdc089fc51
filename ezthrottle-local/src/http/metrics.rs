//! `GET /metrics` (OpenMetrics text, which Prometheus scrapes).
//!
//! The per-host series name every tenant's target hosts, so they are shown only to the
//! operator: a request carrying the metrics key (or anyone in open mode when no key is
//! set). Everyone else gets the totals.

use std::sync::Arc;

use axum::extract::State;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use sha2::{Digest as _, Sha256};

use super::ApiResponse;
use super::auth::bearer;
use crate::config::Config;
use crate::engine::Shared;
use crate::metrics::HostSeries;

pub(super) async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> ApiResponse {
    let hosts = if hosts_visible(&shared.config, &headers) { HostSeries::Shown } else { HostSeries::Totals };
    ApiResponse {
        status: StatusCode::OK,
        retry_after: None,
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body: Bytes::from(shared.metrics.render(&shared.lanes, hosts)),
    }
}

/// Whether the request may see the per-host series.
fn hosts_visible(config: &Config, headers: &HeaderMap) -> bool {
    match &config.metrics_key {
        Some(key) => bearer(headers).is_some_and(|presented| same_key(presented, key.expose())),
        None => config.open,
    }
}

/// Compares the digests without an early exit: the time taken says nothing of the key.
fn same_key(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
