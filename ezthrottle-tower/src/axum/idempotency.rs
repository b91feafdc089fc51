//! [`idempotency_key_route`]: `GET` and `DELETE` a caller's idempotency key.

use ::axum::Json;
use ::axum::extract::Path;
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{MethodRouter, get};
use http::request::Parts;
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::StoreError;
use crate::idempotency::{Begin, IdempotencyKeys, IdempotencyLayer, IdempotencyStore, KeyCleared};

/// `GET` and `DELETE` for a route with one path parameter, the key (mount it where you
/// like, e.g. `/webhook/idempotency/{key}`), over the keys of `layer` (see
/// [`IdempotencyKeys`]): the key is looked up in the scope of the caller asking, computed
/// by the layer's own scope function, so a caller only ever sees and clears its own keys.
///
/// - `GET` answers `200` with JSON: `{"state":"completed","status":201,"headers":[["content-type","text/plain"]],"body":"...","fingerprint":"<hex>"}`
///   for a stored answer (`body_hex` instead of `body` when it is not UTF-8),
///   `{"state":"in_flight"}` while a request runs, `{"state":"lost"}` for a lapsed lock;
///   `404` `{"error":"unknown idempotency key"}` when the caller has no such key.
/// - `DELETE` forgets a stored answer or lapsed lock (`200` `{"state":"cleared"}`; the next
///   request with the key runs the handler), leaves a running one alone (`409`), or `404`.
/// - A store failure is `503` with `Retry-After: 1` (the reason logged, not sent).
///
/// It is for debugging and tests: serve it behind your authentication (callers without
/// credentials share the anonymous scope) and outside the `IdempotencyLayer`.
///
/// ```
/// use axum::{Router, routing::post};
/// use ezthrottle_tower::axum::idempotency_key_route;
/// use ezthrottle_tower::idempotency::IdempotencyLayer;
///
/// let layer = IdempotencyLayer::memory();
/// let app: Router = Router::new()
///     .route("/webhook", post(|| async { "processed" }).route_layer(layer.clone()))
///     .route("/webhook/idempotency/{key}", idempotency_key_route(&layer));
/// # let _ = app;
/// ```
pub fn idempotency_key_route<S, St>(layer: &IdempotencyLayer<St>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    St: IdempotencyStore,
{
    let keys = layer.keys();
    let clearing = keys.clone();
    get(move |Path(key): Path<String>, parts: Parts| async move { inspect(&keys, &parts, &key).await })
        .delete(move |Path(key): Path<String>, parts: Parts| async move { clear(&clearing, &parts, &key).await })
}

async fn inspect<St: IdempotencyStore>(keys: &IdempotencyKeys<St>, parts: &Parts, key: &str) -> Response {
    match keys.inspect(parts, key).await {
        Ok(Some(state)) => (StatusCode::OK, Json(summary(&state))).into_response(),
        Ok(None) => unknown(),
        Err(err) => unavailable(&err),
    }
}

async fn clear<St: IdempotencyStore>(keys: &IdempotencyKeys<St>, parts: &Parts, key: &str) -> Response {
    match keys.clear(parts, key).await {
        Ok(KeyCleared::Cleared) => (StatusCode::OK, Json(json!({"state": "cleared"}))).into_response(),
        Ok(KeyCleared::Running) => {
            (StatusCode::CONFLICT, Json(json!({"error": "a request with this key is running"}))).into_response()
        }
        Ok(_) => unknown(),
        Err(err) => unavailable(&err),
    }
}

/// A key's state as JSON (snake_case, as every answer of the crate).
fn summary(state: &Begin) -> Value {
    match state {
        Begin::Completed(stored) => {
            let headers: Vec<[String; 2]> = stored
                .headers
                .iter()
                .map(|(name, value)| [name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()])
                .collect();
            let (field, body) = match std::str::from_utf8(&stored.body) {
                Ok(text) => ("body", Value::from(text)),
                Err(_) => ("body_hex", Value::from(hex::encode(&stored.body))),
            };
            let mut answer = serde_json::Map::new();
            answer.insert("state".into(), "completed".into());
            answer.insert("status".into(), stored.status.as_u16().into());
            answer.insert("headers".into(), json!(headers));
            answer.insert("fingerprint".into(), hex::encode(stored.fingerprint).into());
            answer.insert(field.into(), body);
            Value::Object(answer)
        }
        Begin::Lost { .. } => json!({"state": "lost"}),
        _ => json!({"state": "in_flight"}),
    }
}

fn unknown() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "unknown idempotency key"}))).into_response()
}

fn unavailable(err: &StoreError) -> Response {
    tracing::error!(target: ezthrottle_core::telemetry::TARGET_IDEMPOTENCY, error = %err, "idempotency store failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        Json(json!({"error": "idempotency store unavailable"})),
    )
        .into_response()
}
