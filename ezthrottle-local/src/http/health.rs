//! `GET /health` (liveness: the process answers) and `GET /ready` (readiness: it takes
//! submissions).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use http::StatusCode;
use serde_json::json;

use super::ApiResponse;
use crate::engine::Shared;

pub(crate) async fn answer(shared: &Shared) -> ApiResponse {
    // A store that cannot count its jobs says so instead of a made-up number.
    let jobs = shared.store.count().await.ok();
    ApiResponse::json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "engine": "ezthrottle-local",
            "version": env!("CARGO_PKG_VERSION"),
            "jobs": jobs,
            "queued": shared.metrics.queued.load(Relaxed).max(0),
            "running": shared.metrics.running.load(Relaxed).max(0),
        }),
    )
}

pub(super) async fn handle(State(shared): State<Arc<Shared>>) -> ApiResponse {
    answer(&shared).await
}

/// How long the store may take to answer the readiness probe.
const STORE_PROBE_WITHIN: Duration = Duration::from_secs(1);

/// `GET /ready`: 200 while the engine takes submissions; 503 naming why not (draining, or
/// the store did not answer a lookup within 1 s), so a load balancer sends work elsewhere.
pub(super) async fn ready(State(shared): State<Arc<Shared>>) -> ApiResponse {
    let not_ready = |reason: &str| {
        let mut response =
            ApiResponse::json(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "not_ready", "reason": reason}));
        response.retry_after = Some(5);
        response
    };
    if shared.is_closed() {
        return not_ready("draining");
    }
    // A point lookup of an id no job has: what every submission needs, at the cost of one.
    match tokio::time::timeout(STORE_PROBE_WITHIN, shared.store.get("ezt-readiness-probe")).await {
        Ok(Ok(_)) => ApiResponse::json(StatusCode::OK, &json!({"status": "ready"})),
        Ok(Err(err)) => {
            tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "readiness: the store failed");
            not_ready("store unavailable")
        }
        Err(_) => not_ready("store unavailable"),
    }
}
