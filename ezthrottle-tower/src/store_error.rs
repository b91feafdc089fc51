//! [`StoreError`]: the one failure of every store (the rate limiter's, the idempotency
//! layer's, built in or written outside this crate).

/// A store could not answer: Redis unreachable or too slow, a full memory store, ...
///
/// The rate limiter then fails open or closed as configured
/// ([`FailMode`](crate::rate_limit::FailMode), feature `rate-limit`); the idempotency
/// layer fails closed (`503` with `Retry-After`, feature `idempotency`). The message is
/// logged, never sent to the client.
///
/// ```
/// use ezthrottle_tower::StoreError;
///
/// let err = StoreError::new("database unreachable");
/// assert_eq!(err.message(), "database unreachable");
/// assert_eq!(err.to_string(), "store unavailable: database unreachable");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub(crate) String);

impl StoreError {
    /// A failure described by `message`.
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
