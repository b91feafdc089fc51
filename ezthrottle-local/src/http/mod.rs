//! The HTTP surface: the proxy envelope, the direct API, health and metrics.

mod admin;
pub(crate) mod auth;
mod error;
pub(crate) mod events;
mod health;
mod jobs;
mod metrics;
mod proxy;
mod secrets;
pub(crate) mod serve;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Serialize;

use crate::engine::Shared;
pub(crate) use error::{bad_request, json_error};

/// An answer of the API, before it is sent directly or wrapped in a proxy envelope.
#[derive(Debug, Clone)]
pub(crate) struct ApiResponse {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<u64>,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
}

impl ApiResponse {
    pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self { status, retry_after: None, content_type: "application/json", body: Bytes::from(body) },
            Err(_) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                retry_after: None,
                content_type: "application/json",
                body: Bytes::from_static(br#"{"error":"the answer could not be encoded"}"#),
            },
        }
    }
}

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The router of an engine.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(ezthrottle_core::protocol::paths::PROXY, post(proxy::handle))
        .route(ezthrottle_core::protocol::paths::JOBS, post(jobs::submit_direct).get(admin::list))
        .route("/api/v1/jobs/{id}", get(jobs::get_direct))
        .route("/api/v1/jobs/{id}/cancel", post(admin::cancel))
        .route("/api/v1/jobs/{id}/redeliver", post(admin::redeliver))
        .route("/api/v1/jobs/{id}/events", get(events::handle))
        .route(
            ezthrottle_core::protocol::paths::WEBHOOK_SECRETS,
            post(secrets::direct).get(secrets::direct).delete(secrets::direct),
        )
        .route("/health", get(health::handle))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::handle))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(access_log))
        .with_state(shared)
}

/// One `info` event per request, after its answer: method, path (never the query, which
/// may carry credentials), status and latency.
async fn access_log(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        target: ezthrottle_core::telemetry::TARGET_ACCESS,
        %method,
        path,
        status = response.status().as_u16(),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

async fn not_found(request: Request) -> ApiResponse {
    json_error(StatusCode::NOT_FOUND, format!("path: no route for {} {}", request.method(), request.uri().path()))
}

/// Reads a body of at most `limit` bytes; 413 beyond it (declared or streamed).
pub(crate) async fn read_body(request: Request, limit: usize) -> Result<Bytes, ApiResponse> {
    let too_large = || {
        let mut response = json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: the request body exceeds the limit of {limit} bytes"),
        );
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&response.body)
            && let Some(object) = value.as_object_mut()
        {
            object.insert("limit_bytes".into(), limit.into());
            response = ApiResponse::json(StatusCode::PAYLOAD_TOO_LARGE, &value);
        }
        response
    };
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(err) => match serve::body_timed_out(&*err) {
            Some(timeout) => Err(json_error(StatusCode::REQUEST_TIMEOUT, format!("body: {timeout}"))),
            None => Err(bad_request("body", format!("could not be read: {err}"))),
        },
    }
}
