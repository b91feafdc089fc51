//! `GET /health`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

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
