//! [`Forward`]: the tower service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use ezthrottle_core::EZThrottle;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::layer::ForwardLayer;
use super::policy::{DefaultForwardPolicy, ForwardPolicy};
use super::settings::{Config, policy_setters, settings_setters};

/// Middleware that hands failing calls to EZThrottle. Build it with [`ForwardLayer`].
///
/// For every request it:
///
/// 1. captures the request body when its size is known and at most `max_replay_bytes`
///    (a body of unknown or larger size passes through untouched and cannot be
///    forwarded);
/// 2. calls the wrapped service with the same request (same method, URI, version,
///    headers, extensions and body bytes);
/// 3. answers the wrapped service's response or error unchanged, unless the policy
///    selects it and the replay rule allows it (see
///    [Which calls forward](crate::forward#which-calls-forward)): then the request is submitted to EZThrottle as a job and the answer is
///    `202 Accepted` with the receipt (see the [module docs](crate::forward)). If the
///    submission fails, the original answer is returned after all, with a
///    [`ForwardFailed`](crate::ForwardFailed) extension.
///
/// `Error = S::Error`: the layer never invents errors.
///
/// # Bounds
///
/// The request body `B` must be `http_body::Body + From<Bytes> + Unpin` (`Full<Bytes>`,
/// `axum::body::Body`, `reqwest::Body`; hyper-util's client needs `Unpin` bodies too), and
/// its error convertible to `Box<dyn Error + Send + Sync>`. A body already in memory is read
/// in `call` itself, so the common path needs no extra state.
///
/// # Clone
///
/// `S` must be `Clone`. The service `poll_ready` made ready is the one called: in `call`
/// itself when the request can go at once; otherwise (a body still arriving, a request
/// forwarded before the target is called) it moves into the response future and a clone
/// takes its place (clone-and-swap). If a submission fails while the circuit is open and
/// the target may be called, it is called afterwards with that same ready service.
///
/// `S::Error: 'static`: the layer reads the error's type to tell a request never sent
/// from one the API may have run.
pub struct Forward<S, P = DefaultForwardPolicy> {
    inner: S,
    config: Arc<Config<P>>,
}

impl<S> Forward<S> {
    /// Wraps `inner`, forwarding to `client` with the default policy and settings.
    pub fn new(inner: S, client: EZThrottle) -> Self {
        Self::from_config(inner, ForwardLayer::new(client).config)
    }

    /// A [`ForwardLayer`] forwarding to `client`.
    pub fn layer(client: EZThrottle) -> ForwardLayer {
        ForwardLayer::new(client)
    }
}

impl<S, P> Forward<S, P> {
    pub(crate) fn from_config(inner: S, config: Arc<Config<P>>) -> Self {
        Self { inner, config }
    }

    define_inner_service_accessors!();

    /// Replaces the policy that decides which outcomes forward.
    pub fn policy<P2>(self, policy: P2) -> Forward<S, P2> {
        Forward { inner: self.inner, config: Config::with_policy(self.config, policy) }
    }
}

impl<S, P: Clone> Forward<S, P> {
    settings_setters!();
}

policy_setters!(Forward<S>);

impl<S, P, B, R> Service<Request<B>> for Forward<S, P>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: 'static,
    B: Body + From<Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    P: ForwardPolicy<R, S::Error>,
{
    type Response = Response<ResponseBody<R>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service made ready by `poll_ready` is the one called: at once, or moved into
        // the future with a clone left in its place (clone-and-swap).
        ResponseFuture::new(&mut self.inner, request, Arc::clone(&self.config))
    }
}

impl<S: Clone, P> Clone for Forward<S, P> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), config: Arc::clone(&self.config) }
    }
}

impl<S: fmt::Debug, P: fmt::Debug> fmt::Debug for Forward<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("inner", &self.inner)
            .field("settings", &self.config.settings)
            .field("policy", &self.config.policy)
            .finish()
    }
}
