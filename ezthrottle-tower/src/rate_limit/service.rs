//! [`RateLimit`]: the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::RateLimitResponseBody;
use super::future::RateLimitFuture;
use super::layer::RateLimitConfig;
use super::scope::RequestHead;
use super::store::RateLimitStore;

/// A service limited by the rules of its [`RateLimitLayer`](super::RateLimitLayer).
#[derive(Debug, Clone)]
pub struct RateLimit<S, St> {
    inner: S,
    config: Arc<RateLimitConfig>,
    store: St,
}

impl<S, St> RateLimit<S, St> {
    pub(crate) fn new(inner: S, config: Arc<RateLimitConfig>, store: St) -> Self {
        Self { inner, config, store }
    }

    define_inner_service_accessors!();
}

impl<S, St, B, R> Service<Request<B>> for RateLimit<S, St>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    St: RateLimitStore,
{
    type Response = Response<RateLimitResponseBody<R>>;
    type Error = S::Error;
    type Future = RateLimitFuture<S, B, St::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service made ready is the one called (a clone may not be ready).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let checks = self.config.checks(&RequestHead::of(&request));
        let scopes = self.config.audit_scopes(&checks);
        RateLimitFuture::new(self.store.check(checks), scopes, ready, request, Arc::clone(&self.config))
    }
}
