//! Duplicate suppression for webhook receivers and ordinary APIs: [`IdempotencyLayer`].
//!
//! EZThrottle delivers webhooks at least once, and clients retry POSTs: the same request
//! can arrive twice, even at the same time. Behind an [`IdempotencyLayer`]:
//!
//! - the **first** request with a key runs the handler; its answer (status, headers except
//!   `Set-Cookie`, and body up to [`max_stored_body`](IdempotencyLayer::max_stored_body),
//!   default 1 MiB) is stored for the [`ttl`](IdempotencyLayer::ttl) (default 24 h; answers
//!   other than 2xx for the [`non_success_ttl`](IdempotencyLayer::non_success_ttl), default
//!   5 min);
//! - a **repeat** gets the stored answer with `X-Idempotent-Replay: true` (or the header of
//!   [`replay_header`](IdempotencyLayer::replay_header); [`x_cached`](IdempotencyLayer::x_cached)
//!   sends `X-Cached: true`), without running the handler;
//! - a **concurrent** repeat, while the first runs, waits for its answer (up to
//!   [`wait_timeout`](IdempotencyLayer::wait_timeout), default 10 s) or, with
//!   [`InFlight::Conflict`], gets `409 Conflict` with `Retry-After` at once;
//! - the same key with a **different** request (method, path, query or body) gets `422`;
//! - a handler that answers **5xx** (or whose future is dropped) releases the key: a retry
//!   runs again. So does an answer refusing the request itself (400, 401, 403, 407, 408,
//!   409, 411, 413, 414, 415, 422, 429, 431), so a forged or malformed request can never
//!   decide what the genuine one gets. Other 4xx answers (404, 410, ...) are stored like
//!   2xx ones, for the shorter `non_success_ttl`.
//!
//! # Bounds
//!
//! - At most `max_stored_body` of an answer is buffered. A larger (or endless, streaming)
//!   answer is streamed through, the buffered part first, and not stored: the key is
//!   released.
//! - Safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`) are not keyed unless
//!   [`key_safe_methods`](IdempotencyLayer::key_safe_methods) says so.
//! - The running request's lock ([`lock_ttl`](IdempotencyLayer::lock_ttl), default 60 s)
//!   is renewed while the handler runs and its answer is read. A lock that lapses (its
//!   replica died or lost the store) answers `409` "outcome unknown" for another
//!   `lock_ttl` instead of running the handler a second time.
//! - When the answer cannot be stored (the store failed [`complete`](IdempotencyStore::complete)
//!   three times) it is still answered, with [`STORE_FAILED_HEADER`]
//!   (`X-Idempotent-Store-Failed: true`), and an error event is logged (the key digested).
//!
//! # Keys
//!
//! [`KeySource::Auto`] (the default) takes the `Idempotency-Key` or `X-Idempotency-Key`
//! header (16 to 255 visible ASCII characters, else `400`) and, without one, for a
//! webhook delivery (a request signed with `X-EZThrottle-Signature`) the payload's
//! `job_id` (not its `idempotent_key`, which later jobs may repeat). Requests without a
//! key pass through: a plain API's body is never read for a key, so `{"job_id": ...}` in
//! an ordinary request means nothing here. Receive unsigned deliveries with
//! [`KeySource::Webhook`].
//!
//! Keys are **per caller**: two requests share a stored answer or a lock only with the
//! same key in the same [`scope`](IdempotencyLayer::scope), by default
//! [`credential_scope`], a digest of the credential headers. So a caller cannot read nor
//! pre-claim another's answer by sending its key. The store keeps a SHA-256 digest of
//! scope and key, never their values.
//!
//! # Authentication sits outside
//!
//! The layer does not authenticate: a repeat is answered from the store **without running
//! the handler**, so any check in the handler is skipped for it. Put authentication (and,
//! for webhooks, verification) in a layer *outside* this one, and scope keys by what it
//! establishes (the user id) when credential headers are not enough.
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
//! # Seeing what it does
//!
//! [`IdempotencyLayer::keys`] inspects and clears a key in the asking caller's scope (the
//! axum `idempotency_key_route` serves it as `GET` / `DELETE`), and
//! [`IdempotencyLayer::on_decision`] sees every keyed request's decision
//! ([`IdempotencyEvent`]: run, replayed, conflict, ...) with the key's digest only.
//!
//! # Stores
//!
//! [`MemoryIdempotencyStore`] for one replica; [`RedisIdempotencyStore`] (feature `redis`) for several replicas
//! sharing one view. A store failure answers `503` with `Retry-After` (fail closed: the
//! handler does not run without protection).

mod admission;
mod audit;
mod body;
mod inspect;
mod key;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod settle;
mod store;

use std::time::Duration;

pub use audit::{IdempotencyEvent, IdempotencyOutcome};
pub use body::IdempotencyResponseBody;
pub use inspect::{IdempotencyKeys, KeyCleared};
pub use key::{KeyFn, KeySource, ScopeFn, credential_scope, fingerprint};
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
    pub use super::settle::{Read, ReleaseOnDrop, Settled, store_failed_header};
}

/// Default time a 2xx answer is kept: 24 hours.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Default time another stored answer (3xx, 404, ...) is kept: 5 minutes.
pub const DEFAULT_NON_SUCCESS_TTL: Duration = Duration::from_secs(5 * 60);

/// `X-Cached`: the replay header of [`IdempotencyLayer::x_cached`] (the idempotent webhook
/// handler design's `X-Cached: true`).
pub const CACHED_HEADER: &str = "x-cached";

/// `X-Idempotent-Store-Failed: true` on an answer the store could not keep: a repeat within
/// the lock's life gets `409`, later it may run again.
pub const STORE_FAILED_HEADER: &str = "x-idempotent-store-failed";

const TARGET: &str = ezthrottle_core::telemetry::TARGET_IDEMPOTENCY;
