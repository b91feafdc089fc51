//! [`Pace`] and its future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::Shared;

/// Adds the pace headers to the responses of `S`. Built by [`PaceLayer`](super::PaceLayer).
pub struct Pace<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Pace<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    define_inner_service_accessors!();
}

impl<S, B, R> Service<Request<B>> for Pace<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let guard = self.shared.counts().then(|| InFlight::enter(&self.shared));
        ResponseFuture { future: self.inner.call(request), shared: Arc::clone(&self.shared), guard }
    }
}

impl<S: Clone> Clone for Pace<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), shared: Arc::clone(&self.shared) }
    }
}

impl<S: fmt::Debug> fmt::Debug for Pace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pace").field("inner", &self.inner).finish_non_exhaustive()
    }
}

/// One request counted in flight until dropped.
struct InFlight {
    shared: Arc<Shared>,
    /// The count when this request entered (itself included).
    at_entry: usize,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let at_entry = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        Self { shared: Arc::clone(shared), at_entry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// Response future of [`Pace`]: the wrapped future, then the headers. No allocation.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        shared: Arc<Shared>,
        guard: Option<InFlight>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<R>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        let in_flight = match this.guard.take() {
            // The busiest moment of this request: when it entered, or now.
            Some(guard) => guard.at_entry.max(this.shared.in_flight.load(Ordering::Relaxed)),
            None => 1,
        };
        super::apply(&this.shared.pacing(in_flight), response.headers_mut());
        Poll::Ready(Ok(response))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
