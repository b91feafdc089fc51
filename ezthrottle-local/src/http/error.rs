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
