//! `POST /api/v1/proxy`: the TrackTags envelope, answered as the proxy does.
//!
//! The envelope's `target_url` is routed by its *path* whatever its host, so an SDK left
//! with the default `ezthrottle_url` still reaches this engine. The inner answer,
//! including its errors, is wrapped in a 200 `{"status":"allowed","forwarded_response":..}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use ezthrottle_core::protocol::{ProxyAllowed, ProxyEnvelope, TargetResponse, paths};
use http::{Method, StatusCode};
use serde_json::json;

use super::error::{json_error, unauthorized};
use super::{ApiResponse, jobs, read_body, secrets};
use crate::engine::Shared;

pub(super) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> ApiResponse {
    let Some(tenant) = shared.tenants.authenticate(request.headers()) else {
        return unauthorized();
    };
    // The inner body travels as an escaped JSON string: allow for the escaping.
    let limit = shared.config.max_body_bytes.saturating_mul(2).saturating_add(64 * 1024);
    let body = match read_body(request, limit).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let envelope: ProxyEnvelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(err) => {
            let text = err.to_string();
            return ApiResponse::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("envelope: invalid proxy request ({text})"), "message": "Invalid proxy request"}),
            );
        }
    };
    let inner = route(&shared, &tenant, &envelope).await;
    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_owned(), inner.content_type.to_owned());
    if let Some(seconds) = inner.retry_after {
        headers.insert(http::header::RETRY_AFTER.as_str().to_owned(), seconds.to_string());
    }
    let forwarded =
        TargetResponse::new(inner.status.as_u16(), headers, String::from_utf8_lossy(&inner.body).into_owned());
    ApiResponse::json(StatusCode::OK, &ProxyAllowed::new(forwarded))
}

async fn route(shared: &Arc<Shared>, tenant: &Arc<str>, envelope: &ProxyEnvelope) -> ApiResponse {
    let base = url::Url::parse("http://engine.invalid/").ok();
    let Some(target) = url::Url::options().base_url(base.as_ref()).parse(&envelope.target_url).ok() else {
        return json_error(StatusCode::BAD_REQUEST, "target_url: Invalid URL");
    };
    let Ok(method) = Method::from_bytes(envelope.method.trim().to_ascii_uppercase().as_bytes()) else {
        return json_error(StatusCode::BAD_REQUEST, format!("method: invalid method {:?}", envelope.method));
    };
    let body = envelope.body.as_bytes();
    if body.len() > shared.config.max_body_bytes {
        let mut response = json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: the request body exceeds the limit of {} bytes", shared.config.max_body_bytes),
        );
        response.retry_after = None;
        return response;
    }
    let path = target.path().trim_end_matches('/');
    match (&method, path) {
        (&Method::POST, paths::JOBS) => jobs::submit(shared, tenant, body).await,
        (&Method::GET, path) if path.starts_with("/api/v1/jobs/") => {
            let id = path.trim_start_matches("/api/v1/jobs/");
            jobs::get(shared, tenant, id).await
        }
        (_, paths::JOBS) => {
            json_error(StatusCode::METHOD_NOT_ALLOWED, format!("method: {method} is not allowed on {path}"))
        }
        (_, paths::WEBHOOK_SECRETS) => secrets::handle(shared, tenant, &method, body).await,
        (_, paths::PROXY) => json_error(StatusCode::BAD_REQUEST, "target_url: Loop Detected"),
        (&Method::GET, "/health") => super::health::answer(shared).await,
        _ => json_error(StatusCode::NOT_FOUND, format!("target_url: no route for {method} {path}")),
    }
}
