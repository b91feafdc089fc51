//! [`RateLimitFuture`]: decide, then call or refuse.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::algorithm::Decision;
use super::body::RateLimitResponseBody;
use super::layer::RateLimitConfig;
use crate::StoreError;

pin_project! {
    /// The future of [`RateLimit`](super::RateLimit): waits for the store's decision, then
    /// calls the service (adding the limit headers to its answer) or refuses.
    pub struct RateLimitFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, C, S::Future>,
        config: Arc<RateLimitConfig>,
        // The checks' scope keys, kept only for an `on_decision` hook.
        scopes: Option<Vec<String>>,
        // The decision's span, entered while the store decides.
        span: tracing::Span,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, C, F> {
        Checking { #[pin] check: C, pending: Option<(S, Request<B>)> },
        Calling { #[pin] future: F, tightest: Option<Decision> },
    }
}

impl<S, B, C> RateLimitFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    pub(crate) fn new(
        check: C,
        scopes: Option<Vec<String>>,
        service: S,
        request: Request<B>,
        config: Arc<RateLimitConfig>,
    ) -> Self {
        let span = config.decision_span();
        Self { state: State::Checking { check, pending: Some((service, request)) }, config, scopes, span }
    }
}

impl<S, B, C, R> Future for RateLimitFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<R>>,
    C: Future<Output = Result<Vec<Decision>, StoreError>>,
{
    type Output = Result<Response<RateLimitResponseBody<R>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let verdict = {
                        let _entered = this.span.enter();
                        let decided = ready!(check.poll(cx));
                        this.config.verdict(decided, this.scopes.as_deref(), this.span)
                    };
                    #[allow(clippy::panic)] // Only reachable by polling a completed future.
                    let Some((mut service, request)) = pending.take() else {
                        panic!("rate_limit::RateLimitFuture polled after completion")
                    };
                    let tightest = match verdict {
                        Ok(tightest) => tightest,
                        Err(answer) => return Poll::Ready(Ok(own_answer(*answer))),
                    };
                    let future = service.call(request);
                    this.state.set(State::Calling { future, tightest });
                }
                StateProj::Calling { future, tightest } => {
                    let response = ready!(future.poll(cx))?;
                    let (mut parts, body) = response.into_parts();
                    this.config.write_headers(tightest.as_ref(), &mut parts.headers);
                    return Poll::Ready(Ok(Response::from_parts(parts, RateLimitResponseBody::inner(body))));
                }
            }
        }
    }
}

fn own_answer<R>(
    (status, headers, body): (http::StatusCode, http::HeaderMap, bytes::Bytes),
) -> Response<RateLimitResponseBody<R>> {
    let mut response = Response::new(RateLimitResponseBody::own(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
