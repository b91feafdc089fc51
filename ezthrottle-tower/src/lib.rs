//! Tower middleware for [EZThrottle](https://ezthrottle.fly.dev).
//!
//! - [`ForwardLayer`] / [`Forward`]: wrap the HTTP client you already have (hyper-util's
//!   client, any `tower::Service<http::Request<B>>`). Calls go to the API directly; when the
//!   API answers 429 or 5xx, or the call fails in transport, the request is submitted to
//!   EZThrottle as a job and the caller gets `202 Accepted` with the job's receipt instead
//!   of retrying in a storm. See the [`forward`] module for the guide.
//! - `ForwardMiddleware` (feature `reqwest-middleware`): the same for `reqwest` clients
//!   built with `reqwest-middleware`.
//! - [`PaceLayer`]: on the *server* side, tells EZThrottle how fast to send
//!   (`X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT`). See the [`pace`] module.
//! - [`rate_limit`]: protect your own API (token bucket or exact sliding window, scopes,
//!   memory or Redis stores, `RateLimit-*` headers, `429` + `Retry-After`).
//! - Receiving webhooks: [`webhook`] (verification glue and [`VerifyWebhookLayer`]), the
//!   `axum` and `actix` modules (`VerifiedWebhook` extractors, features `axum` / `actix`),
//!   [`idempotency`] ([`IdempotencyLayer`]: at-least-once deliveries and retried API calls
//!   run the handler once; memory or Redis store) and the [`inbox`] to await results.
//!
//! ```
//! use ezthrottle_core::{EZThrottle, Webhook};
//! use ezthrottle_tower::ForwardLayer;
//! use http::StatusCode;
//!
//! # fn main() -> Result<(), ezthrottle_core::Error> {
//! let client = EZThrottle::builder().direct("http://127.0.0.1:8080").build()?;
//! let layer = ForwardLayer::new(client)
//!     .forward_on([StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE])
//!     .with_template(|job| job.webhook(Webhook::new("https://app.example.com/ezthrottle")));
//! # let _ = layer; Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
pub mod forward;
pub mod idempotency;
pub mod pace;
pub mod rate_limit;
#[cfg(feature = "redis")]
mod redis_connection;
pub mod webhook;

/// [`WebhookInbox`](inbox::WebhookInbox): verified deliveries, awaitable by job id or
/// idempotency key (re-exported from `ezthrottle-core`).
pub use ezthrottle_core::inbox;

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use forward::ForwardMiddleware;
pub use forward::{
    CircuitBreaker, CircuitState, DefaultForwardPolicy, Forward, ForwardFailed, ForwardLayer, ForwardPolicy,
    ForwardReason, ForwardedJob, StatusCodes,
};
pub use idempotency::IdempotencyLayer;
pub use pace::{Pace, PaceLayer};
pub use webhook::{VerifyWebhookLayer, WebhookRejection, WebhookVerifier};
