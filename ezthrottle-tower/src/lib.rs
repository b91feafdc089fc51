//! Tower middleware for [EZThrottle](https://ezthrottle.fly.dev), one module and one Cargo
//! feature per middleware, as tower-http does.
//!
//! ```toml
//! ezthrottle-tower = { version = "0.1", default-features = false, features = ["rate-limit"] }
//! ```
//!
//! | feature | module | what it does | default |
//! |---|---|---|---|
//! | `forward` | [`forward`] | [`ForwardLayer`] / [`Forward`]: wrap the HTTP client you already have (hyper-util's client, any `tower::Service<http::Request<B>>`). Calls go to the API directly; when the API answers 429 or 5xx, or the call fails in transport, the request is submitted to EZThrottle as a job and the caller gets `202 Accepted` with the job's receipt instead of retrying in a storm. Pulls in the EZThrottle client (reqwest). | yes |
//! | `pace` | [`pace`] | [`PaceLayer`]: on the *server* side, tells EZThrottle how fast to send (`X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT`). | yes |
//! | `rate-limit` | [`rate_limit`] | `RateLimitLayer`: protect your own API (token bucket or exact sliding window, scopes, memory or Redis stores, `RateLimit-*` headers, `429` + `Retry-After`). Needs neither reqwest nor the client. | yes |
//! | `idempotency` | [`idempotency`] | [`IdempotencyLayer`]: at-least-once deliveries and retried API calls run the handler once (memory or Redis store). | yes |
//! | `webhook` | [`webhook`], [`inbox`] | [`VerifyWebhookLayer`], `VerifiedWebhook`, [`WebhookRejection`] around core's one `Verifier`; the `WebhookInbox` to await results. | yes |
//! | `reqwest-middleware` | [`forward`] | `ForwardMiddleware`: forwarding for `reqwest-middleware` clients. | no |
//! | `redis` | [`rate_limit`], [`idempotency`], [`webhook`] | `RedisRateLimitStore`, `RedisIdempotencyStore`, `RedisInbox` (with `webhook`): one view shared by several replicas. | no |
//! | `axum` | [`axum`] | the `VerifiedWebhook` extractor and `webhook_routes` (with `webhook`); `idempotency_key_route` (with `idempotency`); `Scope::client_ip` reading axum's `ConnectInfo` (with `rate-limit`). | no |
//!
//! actix-web integrations are in their own crate, `ezthrottle-actix`.
//!
//! ```
//! # #[cfg(feature = "forward")] {
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
//! # main().unwrap();
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[cfg(any(feature = "forward", feature = "pace", feature = "rate-limit"))]
#[macro_use]
mod macros;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(any(feature = "rate-limit", feature = "idempotency", feature = "webhook"))]
mod body;
#[cfg(feature = "forward")]
#[cfg_attr(docsrs, doc(cfg(feature = "forward")))]
pub mod forward;
#[cfg(any(feature = "rate-limit", feature = "idempotency"))]
mod hook;
#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub mod idempotency;
#[cfg(feature = "pace")]
#[cfg_attr(docsrs, doc(cfg(feature = "pace")))]
pub mod pace;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(all(feature = "redis", any(feature = "rate-limit", feature = "idempotency", feature = "webhook")))]
mod redis_connection;
#[cfg(any(feature = "rate-limit", feature = "idempotency"))]
mod store_error;
#[cfg(all(test, any(feature = "forward", feature = "rate-limit")))]
mod test_requests;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub mod webhook;

/// [`WebhookInbox`](inbox::WebhookInbox): verified deliveries, awaitable by job id or
/// idempotency key (re-exported from `ezthrottle-core`).
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use ezthrottle_core::inbox;

/// The header marking an answer replayed for a repeated request: `X-Idempotent-Replay: true`
/// (the axum `webhook_routes` send it, and the [`IdempotencyLayer`] unless its
/// `replay_header` says otherwise).
pub const REPLAY_HEADER: &str = "x-idempotent-replay";

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use forward::ForwardMiddleware;
#[cfg(feature = "forward")]
pub use forward::{
    CircuitBreaker, CircuitState, DefaultForwardPolicy, Forward, ForwardFailed, ForwardLayer, ForwardPolicy,
    ForwardReason, ForwardResponse, ForwardedJob, StatusCodes,
};
#[cfg(feature = "idempotency")]
pub use idempotency::IdempotencyLayer;
#[cfg(feature = "pace")]
pub use pace::{Pace, PaceLayer};
#[cfg(any(feature = "rate-limit", feature = "idempotency"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "rate-limit", feature = "idempotency"))))]
pub use store_error::StoreError;
#[cfg(feature = "webhook")]
pub use webhook::{VerifyWebhookLayer, WebhookRejection};
