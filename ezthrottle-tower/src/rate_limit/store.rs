//! Where counts live: the trait both stores implement.

use std::future::Future;

use super::algorithm::{Algorithm, Decision};
use crate::StoreError;

/// One key to check against one algorithm.
#[derive(Debug, Clone)]
pub struct Check {
    /// The storage key: the rule's name, a newline, and the [`Scope`](super::Scope)'s key
    /// (a SHA-256 digest, [`ANONYMOUS`](super::ANONYMOUS) or `global`): never a value a
    /// client sent, and at most the rule name plus 64 bytes long.
    pub key: String,
    /// How to count.
    pub algorithm: Algorithm,
}

/// A store of rate-limit state. Each check is atomic on its key: concurrent requests
/// (and, for a shared store, replicas) never admit more than the algorithm allows.
///
/// Checks of one request are independent: a request refused by one rule still counts
/// against the rules it passed (as most rate limiters do).
///
/// Every request may bring a key never seen before (a client can make them up), so a store
/// must bound what it holds: expire a key once its state is back to a fresh one's, and cap
/// the keys held, counting the keys it cannot hold rather than admitting them
/// ([`MemoryRateLimitStore`](super::MemoryRateLimitStore) shows one way).
pub trait RateLimitStore: Clone + Send + Sync + 'static {
    /// The decisions, in the order of `checks`.
    type Future: Future<Output = Result<Vec<Decision>, StoreError>> + Send + 'static;

    /// Checks and counts every key of one request.
    fn check(&self, checks: Vec<Check>) -> Self::Future;

    /// Reads every key's state **without counting** (nor storing anything): what a request
    /// now would get, `allowed` and `remaining` before it is counted (a key never seen
    /// answers a fresh one's state, its whole limit). For a caller's current budget
    /// ([`RateLimitLayer::status`](super::RateLimitLayer::status)).
    fn peek(&self, checks: Vec<Check>) -> Self::Future;
}
