//! [`IdempotencyResponseBody`]: the response body of [`Idempotency`](super::Idempotency).

crate::body::opaque_body! {
    /// The response body of [`Idempotency`](super::Idempotency): the inner service's body,
    /// untouched, for a request without a key; else the buffered (or replayed) answer.
    IdempotencyResponseBody
}
