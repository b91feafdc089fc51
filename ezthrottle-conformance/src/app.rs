//! The router and its shared state.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use ezthrottle::EZThrottle;
use ezthrottle::webhook::Verifier;
use serde_json::{Value, json};

use crate::deliveries::{self, Deliveries};
use crate::scenarios;

/// Everything the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppState {
    /// Submits the scenarios' jobs; its HTTP client also makes the local (FRUGAL, legacy) calls.
    pub client: EZThrottle,
    /// The public base URL of this app, without a trailing slash.
    pub app_url: String,
    /// The httpbin-compatible base URL the scenarios target, without a trailing slash.
    pub upstream_url: String,
    /// Verifies deliveries; `None` stores them unverified.
    pub verifier: Option<Verifier>,
    /// The received deliveries.
    pub deliveries: Deliveries,
}

impl AppState {
    /// State for an app reachable at `app_url` whose scenarios target `upstream_url`.
    pub fn new(client: EZThrottle, app_url: impl Into<String>, upstream_url: impl Into<String>) -> Self {
        Self {
            client,
            app_url: trimmed(app_url.into()),
            upstream_url: trimmed(upstream_url.into()),
            verifier: None,
            deliveries: Deliveries::new(),
        }
    }

    /// Verifies every delivery with `verifier` (unsigned or badly signed ones are refused).
    #[must_use]
    pub fn with_verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Stores deliveries in `deliveries` (to share the store with the caller).
    #[must_use]
    pub fn with_deliveries(mut self, deliveries: Deliveries) -> Self {
        self.deliveries = deliveries;
        self
    }

    /// `{app_url}/webhook`: where the scenarios' jobs deliver.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhook", self.app_url)
    }

    /// `{upstream_url}{path}`.
    pub(crate) fn upstream(&self, path: &str) -> String {
        format!("{}{path}", self.upstream_url)
    }
}

fn trimmed(url: String) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// The app: the webhook store endpoints, the scenario endpoints, `GET /` and `GET /health`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(|| async { Json(json!({ "status": "healthy" })) }))
        .route("/webhook", post(deliveries::receive))
        .route("/webhooks", get(deliveries::list))
        .route("/webhooks/reset", post(deliveries::reset))
        // A wildcard: job ids are opaque and may contain `/` (as the Go test app learned).
        .route("/webhooks/{*job_id}", get(deliveries::get_one))
        .merge(scenarios::routes())
        .with_state(state)
}

/// `GET /`: what this app serves and how it is configured.
async fn index(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "service": "EZThrottle Rust SDK conformance app",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "tests": scenarios::ENDPOINTS.iter().map(|path| format!("POST {path}")).collect::<Vec<_>>(),
            "webhooks": ["POST /webhook", "GET /webhooks/{job_id}", "GET /webhooks", "POST /webhooks/reset"],
        },
        "config": {
            "mode": if state.client.is_direct() { "direct" } else { "cloud" },
            "app_url": state.app_url,
            "webhook_url": state.webhook_url(),
            "upstream_url": state.upstream_url,
            "webhook_verification": state.verifier.is_some(),
        },
        "flow": {
            "1": "POST /test/xxx → Submit job → Return job_id",
            "2": "EZThrottle executes → Sends webhook to /webhook",
            "3": "Poll GET /webhooks/{job_id} until webhook arrives",
        },
    }))
}
