//! [`rate_limit_status_route`]: a caller's limits and remaining budget as JSON.

use ::axum::Json;
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{MethodRouter, get};
use http::request::Parts;
use serde_json::json;

use crate::rate_limit::{RateLimitLayer, RateLimitStore, RequestHead};

/// `GET` answering the asking caller's limits under `layer`'s rules (see
/// [`RateLimitLayer::status`]), read without counting: mount it where you like, e.g.
/// `/api/v1/rate-limits` as the rate-limiting design does.
///
/// `200` with `{"limits":[{"rule":"per_user","limit":100,"remaining":97,"reset":42}]}`
/// (`reset` in seconds, rounded up); when the store fails, the limiter's `503`
/// (`{"error":"rate limiter unavailable","retry_after":1}` with `Retry-After: 1`).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use ezthrottle_tower::axum::rate_limit_status_route;
/// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
///
/// let limits = RateLimitLayer::new()
///     .rule(Rule::new("per_user", Scope::header("x-api-key"), Algorithm::sliding_window(100, Duration::from_secs(60))));
/// let app: Router = Router::new()
///     .route("/api/v1/payments", post(|| async { "paid" }).layer(limits.clone()))
///     .route("/api/v1/rate-limits", rate_limit_status_route(&limits));
/// # let _ = app;
/// ```
pub fn rate_limit_status_route<S, St>(layer: &RateLimitLayer<St>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    St: RateLimitStore,
{
    let layer = layer.clone();
    get(move |parts: Parts| async move { status(&layer, parts).await })
}

async fn status<St: RateLimitStore>(layer: &RateLimitLayer<St>, parts: Parts) -> Response {
    let head = http::Request::from_parts(parts, ());
    match layer.status(&RequestHead::of(&head)).await {
        Ok(limits) => Json(json!({ "limits": limits })).into_response(),
        Err(error) => {
            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_RATE_LIMIT, %error, "cannot read the rate limits");
            let (status, headers, body) = crate::rate_limit::headers::unavailable();
            (status, headers, body).into_response()
        }
    }
}
