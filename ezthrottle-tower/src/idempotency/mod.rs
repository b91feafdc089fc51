//! Duplicate suppression for webhook receivers and ordinary APIs: [`IdempotencyLayer`].
//!
//! EZThrottle delivers webhooks at least once, and clients retry POSTs: the same request
//! can arrive twice, even at the same time. Behind an [`IdempotencyLayer`]:
//!
//! - the **first** request with a key runs the handler; its answer (status, headers and
//!   body up to [`max_stored_body`](IdempotencyLayer::max_stored_body), default 1 MiB) is
//!   stored for the [`ttl`](IdempotencyLayer::ttl) (default 24 h);
//! - a **repeat** gets the stored answer with `X-Idempotent-Replay: true`, without running
//!   the handler;
//! - a **concurrent** repeat, while the first runs, waits for its answer (up to
//!   [`wait_timeout`](IdempotencyLayer::wait_timeout), default 10 s) or, with
//!   [`InFlight::Conflict`], gets `409 Conflict` with `Retry-After` at once;
//! - the same key with a **different** request (method, path or body) gets `422`;
//! - a handler that answers **5xx** (or whose future is dropped) releases the key: a retry
//!   runs again. So does an answer refusing the request itself (400, 401, 403, 407, 408,
//!   409, 411, 413, 414, 415, 422, 429, 431), so a forged or malformed request can never
//!   decide what the genuine one gets. Other 4xx answers (404, 410, ...) are stored like
//!   2xx ones.
//!
//! # Keys
//!
//! [`KeySource::Auto`] (the default) takes the `Idempotency-Key` or `X-Idempotency-Key`
//! header (16 to 255 visible ASCII characters, else `400`) and, without one, for a
//! webhook delivery (a request signed with `X-EZThrottle-Signature`) the payload's
//! `idempotent_key`, else its `job_id`. Requests without a key pass through: a plain API's
//! body is never read for a key, so `{"job_id": ...}` in an ordinary request means nothing
//! here. Receive unsigned deliveries with [`KeySource::Webhook`].
//!
//! # Order with verification
//!
//! For webhook routes, **verify before de-duplicating**: put a
//! [`VerifyWebhookLayer`](crate::webhook::VerifyWebhookLayer) *outside* this layer, so an
//! unverified request (a forger who learnt a job id) can never replay a stored answer or
//! take a key. With tower's `ServiceBuilder`, list the verifier first:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use ezthrottle_tower::idempotency::IdempotencyLayer;
//! use ezthrottle_core::webhook::Verifier;
//! use ezthrottle_tower::webhook::VerifyWebhookLayer;
//! use tower::{ServiceBuilder, service_fn};
//!
//! let service = ServiceBuilder::new()
//!     .layer(VerifyWebhookLayer::new(Verifier::new("whsec_current_0123")?)) // runs first
//!     .layer(IdempotencyLayer::memory())
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"charged"))))
//!     }));
//! # let _ = service;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In axum, `route_layer` calls apply outside-in from the last one: add the
//! `IdempotencyLayer` first, then the `VerifyWebhookLayer`.
//!
//! # Stores
//!
//! [`MemoryIdempotencyStore`] for one replica; [`RedisIdempotencyStore`] (feature `redis`) for several replicas
//! sharing one view. A store failure answers `503` with `Retry-After` (fail closed: the
//! handler does not run without protection).

mod admission;
mod body;
mod key;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod store;

use std::time::Duration;

pub use body::IdempotencyResponseBody;
pub use key::{KeyFn, KeySource, fingerprint};
pub use layer::{IdempotencyLayer, InFlight};
pub use memory::MemoryIdempotencyStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisIdempotencyStore;
pub use service::Idempotency;
pub use store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse};

/// The engine `ezthrottle-actix`'s middleware shares with [`Idempotency`] (not a stable API).
#[doc(hidden)]
pub mod engine {
    pub use super::admission::{Admission, Answer, Held, too_large, unreadable};
    pub use super::layer::IdempotencyConfig;
}

/// Default time an answer is kept: 24 hours.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

const TARGET: &str = "ezthrottle::idempotency";
