//! JSON error answers: `{"error": "<field>: <reason>"}`.

use http::StatusCode;
use serde_json::json;

use super::ApiResponse;

/// `status` with `{"error": message}`.
pub(crate) fn json_error(status: StatusCode, message: impl Into<String>) -> ApiResponse {
    ApiResponse::json(status, &json!({ "error": message.into() }))
}

/// 400 naming `field`.
pub(crate) fn bad_request(field: &str, reason: impl std::fmt::Display) -> ApiResponse {
    json_error(StatusCode::BAD_REQUEST, format!("{field}: {reason}"))
}

/// 401 as the TrackTags proxy answers it.
pub(crate) fn unauthorized() -> ApiResponse {
    ApiResponse::json(StatusCode::UNAUTHORIZED, &json!({"error": "Unauthorized", "message": "Invalid API key"}))
}

/// 503 with `Retry-After: 1` when the job store failed: `store: {what}; retry` (`what`
/// says what could not be done, e.g. `the job could not be read`); the cause is logged.
pub(crate) fn store_unavailable(what: &str, err: &crate::store::StoreError) -> ApiResponse {
    tracing::error!(error = %ezthrottle_core::ErrorChain(err), "the store failed: {what}");
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, format!("store: {what}; retry"));
    response.retry_after = Some(1);
    response
}
