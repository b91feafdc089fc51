//! `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use axum::extract::State;
use bytes::Bytes;
use http::StatusCode;

use super::ApiResponse;
use crate::engine::Shared;

pub(super) async fn handle(State(shared): State<Arc<Shared>>) -> ApiResponse {
    ApiResponse {
        status: StatusCode::OK,
        retry_after: None,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: Bytes::from(shared.metrics.render(&shared.lanes)),
    }
}
