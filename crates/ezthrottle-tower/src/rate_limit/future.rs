//! [`ResponseFuture`]: decide, then call or refuse.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::algorithm::Decision;
use super::body::ResponseBody;
use super::headers;
use super::layer::{Config, FailMode};
use super::store::StoreError;

pin_project! {
    /// The future of [`RateLimit`](super::RateLimit): waits for the store's decision, then
    /// calls the service (adding the limit headers to its answer) or refuses.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, C, S::Future>,
        config: Arc<Config>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, C, F> {
        Checking { #[pin] check: C, pending: Option<(S, Request<B>)> },
        Calling { #[pin] future: F, tightest: Option<Decision> },
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    pub(crate) fn new(check: C, service: S, request: Request<B>, config: Arc<Config>) -> Self {
        Self { state: State::Checking { check, pending: Some((service, request)) }, config }
    }
}

impl<S, B, C, R> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<R>>,
    C: Future<Output = Result<Vec<Decision>, StoreError>>,
{
    type Output = Result<Response<ResponseBody<R>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let verdict = ready!(check.poll(cx));
                    #[allow(clippy::panic)] // Only reachable by polling a completed future.
                    let Some((mut service, request)) = pending.take() else {
                        panic!("rate_limit::ResponseFuture polled after completion")
                    };
                    let tightest = match verdict {
                        Ok(decisions) => match refusal(this.config, &decisions) {
                            Some(refused) => return Poll::Ready(Ok(refused)),
                            None => {
                                this.config.counters.allowed.fetch_add(1, Relaxed);
                                decisions.into_iter().min_by_key(|d| (d.remaining, std::cmp::Reverse(d.reset)))
                            }
                        },
                        Err(error) => {
                            this.config.counters.store_errors.fetch_add(1, Relaxed);
                            match this.config.fail_mode {
                                FailMode::Open => {
                                    tracing::warn!(target: "ezthrottle::rate_limit", %error, "letting the request through (fail open)");
                                    None
                                }
                                FailMode::Closed => {
                                    tracing::warn!(target: "ezthrottle::rate_limit", %error, "refusing the request (fail closed)");
                                    return Poll::Ready(Ok(own_answer(headers::unavailable())));
                                }
                            }
                        }
                    };
                    let future = service.call(request);
                    this.state.set(State::Calling { future, tightest });
                }
                StateProj::Calling { future, tightest } => {
                    let response = ready!(future.poll(cx))?;
                    let (mut parts, body) = response.into_parts();
                    if let Some(decision) = tightest {
                        this.config.header_style.write(decision, &mut parts.headers);
                    }
                    if let Some(pace) = &this.config.pace {
                        for (name, value) in pace {
                            parts.headers.insert(name.clone(), value.clone());
                        }
                    }
                    return Poll::Ready(Ok(Response::from_parts(parts, ResponseBody::inner(body))));
                }
            }
        }
    }
}

/// The 429 answer when some rule refused: the one that frees up last is named.
fn refusal<R>(config: &Config, decisions: &[Decision]) -> Option<Response<ResponseBody<R>>> {
    let (index, worst) = decisions.iter().enumerate().filter(|(_, d)| !d.allowed).max_by_key(|(_, d)| d.retry_after)?;
    config.counters.refused.fetch_add(1, Relaxed);
    let rule = config.rules.get(index).map_or("unknown", |rule| rule.name());
    let mut response = own_answer(headers::refusal(rule, worst.retry_after));
    config.header_style.write(worst, response.headers_mut());
    if let Some(pace) = &config.pace {
        for (name, value) in pace {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Some(response)
}

fn own_answer<R>(
    (status, headers, body): (http::StatusCode, http::HeaderMap, bytes::Bytes),
) -> Response<ResponseBody<R>> {
    let mut response = Response::new(ResponseBody::refused(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
