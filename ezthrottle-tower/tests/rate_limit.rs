//! Rate limiting through a real tower stack; Redis tests against a real `redis-server`
//! started on a free loopback port.

mod rate_limit {
    pub(crate) mod abuse;
    #[cfg(feature = "axum")]
    pub(crate) mod axum;
    pub(crate) mod memory;
    pub(crate) mod props;
    #[cfg(feature = "redis")]
    pub(crate) mod redis;
    #[cfg(all(feature = "axum", feature = "redis"))]
    pub(crate) mod status;
    pub(crate) mod support;
}
