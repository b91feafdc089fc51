//! [`RateLimitResponseBody`]: the response body of [`RateLimit`](super::RateLimit).

crate::body::opaque_body! {
    /// The response body of [`RateLimit`](super::RateLimit): the wrapped service's body,
    /// untouched, or the JSON of a refusal.
    RateLimitResponseBody
}

impl<B> RateLimitResponseBody<B> {
    /// Whether this is the limiter's own answer (a refusal), not the service's body.
    pub fn is_refusal(&self) -> bool {
        self.body.is_own()
    }
}
