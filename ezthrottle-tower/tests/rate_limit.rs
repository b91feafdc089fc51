//! Rate limiting through a real tower stack; Redis tests against a real `redis-server`
//! started on a free loopback port.

mod rate_limit {
    #[cfg(feature = "axum")]
    pub(crate) mod axum;
    pub(crate) mod memory;
    #[cfg(feature = "redis")]
    pub(crate) mod redis;
    pub(crate) mod support;
}
