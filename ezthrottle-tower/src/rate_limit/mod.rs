//! Server-side rate limiting: protect an API and tell its callers (EZThrottle among them)
//! how fast they may call.
//!
//! - Algorithms: a token bucket (rate + burst) and an exact sliding window (a sliding log:
//!   no approximation, `limit` timestamps per key).
//! - Scopes, combinable in one layer, each with its own limit: global, per header (API key),
//!   per extension (the authenticated user), per client IP (connection or a trusted
//!   forwarded header), per route, or any key function.
//! - Stores: in memory (sharded, no global lock, idle keys evicted) or Redis (feature
//!   `redis`: one Lua script per algorithm, atomic across replicas, one pipelined round trip
//!   per request, bounded by a timeout, failing open or closed as configured).
//! - Answers: `RateLimit-Limit` / `-Remaining` / `-Reset` (and `X-RateLimit-*`) on every
//!   response, from the tightest rule; a refusal is `429` with `Retry-After` and
//!   `{"error":"rate limit exceeded","limit":"<rule>","retry_after":<s>}`; optionally
//!   `X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT` so EZThrottle paces itself.
//!
//! Each rule is checked atomically on its own key; a request refused by one rule still
//! counts against the rules it passed.

mod algorithm;
mod body;
mod clock;
mod forwarded;
mod future;
mod headers;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod scope;
mod service;
mod store;

pub use algorithm::{Algorithm, Decision, InvalidAlgorithm, InvalidRule, Rule};
pub use body::RateLimitResponseBody;
pub use clock::{Clock, ManualClock, SystemClock};
pub use future::RateLimitFuture;
pub use headers::HeaderStyle;
pub use layer::{FailMode, RateLimitLayer, RateLimitMetrics};
pub use memory::MemoryRateLimitStore;
#[cfg(feature = "redis")]
pub use redis::RedisRateLimitStore;
pub use scope::{ANONYMOUS, RequestHead, Scope};
pub use service::RateLimit;
pub use store::{Check, RateLimitStore};

/// The decisions `ezthrottle-actix`'s middleware shares with [`RateLimit`] (not a stable API).
#[doc(hidden)]
pub mod engine {
    pub use super::layer::{RateLimitConfig, Verdict};
}
