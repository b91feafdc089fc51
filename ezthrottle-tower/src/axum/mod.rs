//! axum 0.8 integrations: the [`VerifiedWebhook`](crate::webhook::VerifiedWebhook) extractor and
//! [`webhook_routes`] (feature `webhook`), [`idempotency_key_route`] (feature `idempotency`),
//! [`rate_limit_status_route`] (feature `rate-limit`).
//!
//! ```
//! use axum::{Router, routing::post};
//! use ezthrottle_core::WebhookPayload;
//! use ezthrottle_core::webhook::Verifier;
//! use ezthrottle_tower::webhook::VerifiedWebhook;
//!
//! async fn webhook(delivery: VerifiedWebhook) -> &'static str {
//!     let payload: &WebhookPayload = &delivery.payload;
//!     println!("job {} finished: {:?} (secret {:?})", payload.job_id, payload.status, delivery.secret());
//!     "ok"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/webhook", post(webhook))
//!     .with_state(Verifier::new("whsec_current_0123")?.with_secondary("whsec_previous_0123")?);
//! # let _ = app;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Add an [`IdempotencyLayer`](crate::idempotency::IdempotencyLayer) with
//! `.route_layer(...)` to answer repeated deliveries without running the handler again; the
//! extractor runs inside it only for the first delivery of a key. To verify *before* the
//! idempotency check (so an unverified request can never replay a stored answer), put a
//! [`VerifyWebhookLayer`](crate::webhook::VerifyWebhookLayer) outside it, as
//! [`webhook_routes`] does.

#[cfg(feature = "idempotency")]
mod idempotency;
#[cfg(feature = "rate-limit")]
mod rate_limit;
#[cfg(feature = "webhook")]
mod webhook;

#[cfg(feature = "idempotency")]
pub use idempotency::idempotency_key_route;
#[cfg(feature = "rate-limit")]
pub use rate_limit::rate_limit_status_route;
#[cfg(feature = "webhook")]
pub use webhook::webhook_routes;
