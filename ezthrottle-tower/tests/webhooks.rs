//! Receiving webhooks: the axum extractor, `VerifyWebhookLayer`, the
//! idempotency layer (memory and Redis stores) and `WebhookInbox` with the local engine as
//! the sender. Real servers on 127.0.0.1; Redis tests start a `redis-server` on a free port.

mod webhooks {
    #[cfg(feature = "axum")]
    pub(crate) mod axum;
    #[cfg(feature = "rate-limit")]
    pub(crate) mod hostile;
    #[cfg(feature = "axum")]
    pub(crate) mod idempotency;
    pub(crate) mod layer;
    #[cfg(all(feature = "axum", feature = "redis"))]
    pub(crate) mod redis;
    #[cfg(all(feature = "axum", feature = "redis"))]
    pub(crate) mod redis_inbox;
    pub(crate) mod support;
    pub(crate) mod unread;
}
