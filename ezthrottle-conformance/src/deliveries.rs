//! Received webhook deliveries: the store and the `/webhook`, `/webhooks...` endpoints.
//!
//! As in the official SDKs' test apps, deliveries are kept in memory keyed by `job_id`,
//! the latest delivery of a job replacing the one before (delivery is at least once, so a
//! job may be delivered twice; `deliveries` counts how many times it was). As in the Go
//! SDK's test app, a delivery can also be looked up by its `idempotent_key`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ezthrottle::tower::webhook::{SIGNATURE_HEADER, WebhookRejection};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::app::AppState;

/// One job's latest delivery, as `GET /webhooks/{job_id}` shows it under `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Delivery {
    /// When the latest delivery arrived (ISO 8601, UTC).
    pub received_at: String,
    /// The delivered JSON body, verbatim.
    pub data: Value,
    /// How many deliveries of this job arrived (repeats included).
    pub deliveries: u64,
    /// Whether the latest delivery's signature was verified (false when no secret is configured).
    pub verified: bool,
}

/// The in-memory store of deliveries, keyed by job id. Cheap to clone (one `Arc`); every
/// change can be awaited ([`wait_for`](Self::wait_for), [`wait_until`](Self::wait_until)).
#[derive(Debug, Clone)]
pub struct Deliveries {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Mutex<Store>,
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Store {
    /// Latest delivery per job id.
    jobs: BTreeMap<String, Delivery>,
    /// Job id per idempotency key.
    keys: BTreeMap<String, String>,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self::new()
    }
}

impl Deliveries {
    /// An empty store.
    pub fn new() -> Self {
        Self { inner: Arc::new(Inner { store: Mutex::new(Store::default()), changed: watch::Sender::new(0) }) }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the maps half-updated: keep serving.
        self.inner.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a delivery of `job_id`.
    pub fn record(&self, job_id: &str, data: Value, verified: bool) {
        {
            let mut store = self.store();
            if let Some(key) = data.get("idempotent_key").and_then(Value::as_str) {
                store.keys.insert(key.to_owned(), job_id.to_owned());
            }
            let deliveries = store.jobs.get(job_id).map_or(0, |previous| previous.deliveries).saturating_add(1);
            store.jobs.insert(job_id.to_owned(), Delivery { received_at: now_iso8601(), data, deliveries, verified });
        }
        self.inner.changed.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// The latest delivery of `job_id`.
    pub fn get(&self, job_id: &str) -> Option<Delivery> {
        self.store().jobs.get(job_id).cloned()
    }

    /// The job id and latest delivery of the job whose idempotency key is `key`.
    pub fn get_by_key(&self, key: &str) -> Option<(String, Delivery)> {
        let store = self.store();
        let job_id = store.keys.get(key)?;
        Some((job_id.clone(), store.jobs.get(job_id)?.clone()))
    }

    /// Every job's latest delivery.
    pub fn all(&self) -> BTreeMap<String, Delivery> {
        self.store().jobs.clone()
    }

    /// How many jobs have been delivered.
    pub fn len(&self) -> usize {
        self.store().jobs.len()
    }

    /// Whether nothing has been delivered.
    pub fn is_empty(&self) -> bool {
        self.store().jobs.is_empty()
    }

    /// Forgets every delivery.
    pub fn clear(&self) {
        {
            let mut store = self.store();
            store.jobs.clear();
            store.keys.clear();
        }
        self.inner.changed.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Waits until `check` returns `Some` for the stored deliveries, at most `timeout`.
    /// `None` when the time ran out.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&BTreeMap<String, Delivery>) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before checking: a change after the check wakes the wait below.
        let mut changes = self.inner.changed.subscribe();
        loop {
            if let Some(found) = check(&self.store().jobs) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as `self`: it cannot be dropped while we wait.
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Waits for a delivery of `job_id`, at most `timeout`.
    pub async fn wait_for(&self, job_id: &str, timeout: Duration) -> Option<Delivery> {
        self.wait_until(timeout, |jobs| jobs.get(job_id).cloned()).await
    }
}

/// `POST /webhook`: verifies the signature when a secret is configured, then stores the
/// delivery under its `job_id`.
///
/// Answers 200 `{"status":"received","job_id"}`; a missing, malformed or wrong signature
/// 400/401 `{"status":"rejected","error"}`; a body without a string `job_id` 422
/// `{"status":"rejected","error"}`.
pub(crate) async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let verified = match &state.verifier {
        Some(verifier) => {
            let signature = headers.get(SIGNATURE_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
            if let Err(rejection) = verifier.verify(&body, signature).map_err(WebhookRejection::from) {
                tracing::warn!(error = %rejection, "webhook delivery rejected");
                return rejected(rejection.status(), rejection.body_text());
            }
            true
        }
        None => false,
    };
    let data: Value = match serde_json::from_slice(&body) {
        Ok(data) => data,
        Err(error) => return rejected(StatusCode::UNPROCESSABLE_ENTITY, format!("the body is not JSON: {error}")),
    };
    let Some(job_id) = data.get("job_id").and_then(Value::as_str).map(str::to_owned) else {
        return rejected(StatusCode::UNPROCESSABLE_ENTITY, "the body has no string job_id".to_owned());
    };
    let text = |field: &str| data.get(field).and_then(Value::as_str).unwrap_or("").to_owned();
    let (idempotent_key, status) = (text("idempotent_key"), text("status"));
    tracing::info!(job_id, idempotent_key, status, verified, "webhook received");
    state.deliveries.record(&job_id, data, verified);
    Json(json!({ "status": "received", "job_id": job_id })).into_response()
}

fn rejected(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "status": "rejected", "error": error }))).into_response()
}

/// `GET /webhooks/{job_id}`: `{"found":true,"job_id","webhook":{"received_at","data",..}}`
/// or 404 `{"found":false,"job_id"}`. The id may also be an `idempotent_key` (as the Go
/// test app queries): the answer then also carries `"idempotent_key"`.
pub(crate) async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(webhook) = state.deliveries.get(&id) {
        return Json(json!({ "found": true, "job_id": id, "webhook": webhook })).into_response();
    }
    match state.deliveries.get_by_key(&id) {
        Some((job_id, webhook)) => {
            Json(json!({ "found": true, "job_id": job_id, "idempotent_key": id, "webhook": webhook })).into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(json!({ "found": false, "job_id": id }))).into_response(),
    }
}

/// `GET /webhooks`: `{"count","webhooks":{<job_id>: {"received_at","data",..}}}`.
pub(crate) async fn list(State(state): State<AppState>) -> Json<Value> {
    let webhooks = state.deliveries.all();
    Json(json!({ "count": webhooks.len(), "webhooks": webhooks }))
}

/// `POST /webhooks/reset`: `{"status":"cleared"}`.
pub(crate) async fn reset(State(state): State<AppState>) -> Json<Value> {
    state.deliveries.clear();
    tracing::info!("webhook store cleared");
    Json(json!({ "status": "cleared" }))
}

/// Now as `2026-01-31T12:34:56.789Z`.
fn now_iso8601() -> String {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    iso8601(since_epoch)
}

fn iso8601(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(iso8601(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(Duration::from_millis(951_782_400_123)), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(Duration::from_secs(1_763_674_210)), "2025-11-20T21:30:10.000Z");
    }

    #[tokio::test]
    async fn records_counts_repeats_and_wakes_waiters() {
        let store = Deliveries::new();
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for("job_1", Duration::from_secs(5)).await })
        };
        store.record("job_1", json!({"job_id": "job_1", "status": "success"}), false);
        store.record("job_1", json!({"job_id": "job_1", "status": "success"}), true);
        let first = waiter.await.ok().flatten();
        assert!(first.is_some_and(|d| d.data["job_id"] == "job_1"));
        assert_eq!(store.get_by_key("k").map(|(id, _)| id).as_deref(), None);
        store.record("job_2", json!({"job_id": "job_2", "idempotent_key": "k:/1"}), false);
        assert_eq!(store.get_by_key("k:/1").map(|(id, _)| id).as_deref(), Some("job_2"));
        let latest = store.get("job_1");
        assert!(latest.as_ref().is_some_and(|d| d.deliveries == 2 && d.verified), "{latest:?}");
        assert_eq!(store.len(), 2);
        store.clear();
        assert!(store.is_empty() && store.get_by_key("k:/1").is_none());
        assert!(store.wait_for("job_1", Duration::from_millis(10)).await.is_none());
    }
}
