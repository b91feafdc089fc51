//! Server-side rate limiting: protect an API and tell its callers (EZThrottle among them)
//! how fast they may call.
//!
//! - Algorithms: a token bucket (rate + burst) and an exact sliding window (a sliding log:
//!   no approximation, `limit` timestamps per key). Rules are checked when added
//!   ([`RateLimitLayer::try_rule`] names the rule and field it refuses; periods are 1 ms to
//!   ten years), so no configuration makes a request panic.
//! - Scopes, combinable in one layer, each with its own limit: global, per header (API key),
//!   per extension (the authenticated user), per client IP (connection or a trusted
//!   forwarded header, parsed), per route, or any key function. Values are counted under
//!   their SHA-256 digest, never stored or logged as sent.
//! - Stores: in memory (sharded, no global lock, idle keys evicted, at most
//!   [`MemoryRateLimitStore::DEFAULT_MAX_KEYS`] keys by default, newcomers sharing an overflow
//!   bucket when full) or Redis (feature `redis`: one Lua script per algorithm, atomic across
//!   replicas, one pipelined round trip per request, bounded by a timeout, failing open or
//!   closed as configured).
//! - Answers: `RateLimit-Limit` / `-Remaining` / `-Reset` (and `X-RateLimit-*`) on every
//!   response, from the tightest rule; a refusal is `429` with `Retry-After` and
//!   `{"error":"rate limit exceeded","limit":"<rule>","retry_after":<s>}`; optionally
//!   `X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT` so EZThrottle paces itself.
//! - For callers and operators: a caller's limits and remaining budget read without
//!   counting ([`RateLimitLayer::status`], served by the axum `rate_limit_status_route`),
//!   the recommended client retry configuration ([`RetryConfig`]), and an audit hook seeing
//!   every decision ([`RateLimitLayer::on_decision`], a [`RateLimitEvent`] with the scope's
//!   digest, never the credential).
//!
//! Each rule is checked atomically on its own key; a request refused by one rule still
//! counts against the rules it passed.
//!
//! # Against clients that try to get around it
//!
//! - **A scope a client picks is only a limit behind authentication.** A per-key rule gives
//!   every new `x-api-key` a full bucket, so a client sending a fresh key per request is not
//!   limited by it. Put the layer after the one that checks the key, and add a fallback rule
//!   every request counts against ([`Scope::global`], or [`Scope::client_ip`] from the
//!   connection): see [`Scope`].
//! - Leaving the value out, or sending the text `anonymous`, gets no bucket of its own
//!   beyond one: requests without a value share [`ANONYMOUS`], which no value reaches.
//! - Made-up keys cannot exhaust the memory store: it is bounded, evicts idle keys first,
//!   then counts newcomers in one shared bucket (limited, not waved through).
//! - No raw API key or address is a Redis key name (`SCAN`, `MONITOR`), a metric or a log line.

mod algorithm;
mod audit;
mod body;
mod clock;
mod forwarded;
mod future;
pub(crate) mod headers;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod retry;
mod scope;
mod service;
mod status;
mod store;

pub use algorithm::{Algorithm, Decision, InvalidAlgorithm, InvalidRule, Rule};
pub use audit::RateLimitEvent;
pub use body::RateLimitResponseBody;
pub use clock::{Clock, ManualClock, SystemClock};
pub use future::RateLimitFuture;
pub use headers::HeaderStyle;
pub use layer::{FailMode, RateLimitLayer, RateLimitMetrics};
pub use memory::MemoryRateLimitStore;
#[cfg(feature = "redis")]
pub use redis::RedisRateLimitStore;
pub use retry::RetryConfig;
pub use scope::{ANONYMOUS, RequestHead, Scope};
pub use service::RateLimit;
pub use status::LimitStatus;
pub use store::{Check, RateLimitStore};

/// The decisions `ezthrottle-actix`'s middleware shares with [`RateLimit`] (not a stable API).
#[doc(hidden)]
pub mod engine {
    pub use super::layer::{RateLimitConfig, Verdict};
}
