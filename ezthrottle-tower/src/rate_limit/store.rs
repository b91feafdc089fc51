//! Where counts live: the trait both stores implement.

use std::future::Future;

use super::algorithm::{Algorithm, Decision};

/// One key to check against one algorithm.
#[derive(Debug, Clone)]
pub struct Check {
    /// The storage key (rule name and scope key).
    pub key: String,
    /// How to count.
    pub algorithm: Algorithm,
}

/// A store of rate-limit state. Each check is atomic on its key: concurrent requests
/// (and, for a shared store, replicas) never admit more than the algorithm allows.
///
/// Checks of one request are independent: a request refused by one rule still counts
/// against the rules it passed (as most rate limiters do).
pub trait RateLimitStore: Clone + Send + Sync + 'static {
    /// The decisions, in the order of `checks`.
    type Future: Future<Output = Result<Vec<Decision>, RateLimitStoreError>> + Send + 'static;

    /// Checks and counts every key of one request.
    fn check(&self, checks: Vec<Check>) -> Self::Future;
}

/// The store could not decide (e.g. Redis unreachable or too slow).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate-limit store unavailable: {0}")]
pub struct RateLimitStoreError(pub(crate) String);

impl RateLimitStoreError {
    /// A failure described by `message` (logged; the layer then fails open or closed as
    /// configured).
    ///
    /// ```
    /// use ezthrottle_tower::rate_limit::RateLimitStoreError;
    ///
    /// let err = RateLimitStoreError::new("timed out");
    /// assert_eq!(err.message(), "timed out");
    /// assert_eq!(err.to_string(), "rate-limit store unavailable: timed out");
    /// ```
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// What failed.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.0
    }
}
