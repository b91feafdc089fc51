//! [`Idempotency`]: the service of [`IdempotencyLayer`](super::IdempotencyLayer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::TARGET;
use super::admission::{Admission, Answer, Held, too_large, unreadable};
use super::body::{IdempotencyResponseBody, read_bounded};
use super::layer::IdempotencyConfig;
use super::memory::MemoryIdempotencyStore;
use super::settle::{Settled, store_failed_header};
use super::store::IdempotencyStore;
use crate::body::{ReadError, read_limited, take_ready};

/// The service of [`IdempotencyLayer`](super::IdempotencyLayer).
#[derive(Debug)]
pub struct Idempotency<S, St = MemoryIdempotencyStore> {
    pub(super) inner: S,
    pub(super) config: Arc<IdempotencyConfig<St>>,
}

impl<S: Clone, St> Clone for Idempotency<S, St> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), config: Arc::clone(&self.config) }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, St, B, ResBody> Service<Request<B>> for Idempotency<S, St>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    St: IdempotencyStore,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<IdempotencyResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(handle(take_ready(&mut self.inner), Arc::clone(&self.config), request))
    }
}

fn own<B>(answer: Answer) -> Response<IdempotencyResponseBody<B>> {
    answer.map(IdempotencyResponseBody::own)
}

async fn handle<S, St, B, ResBody>(
    mut inner: S,
    config: Arc<IdempotencyConfig<St>>,
    request: Request<B>,
) -> Result<Response<IdempotencyResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    St: IdempotencyStore,
    B: Body + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Body,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let from_header = match config.header_key(&parts) {
        Ok(key) => key,
        Err(answer) => return Ok(own(*answer)),
    };
    if from_header.is_none() && !config.key_may_be_in_body(&parts) {
        let request = Request::from_parts(parts, body);
        return inner.call(request).await.map(|response| response.map(IdempotencyResponseBody::inner));
    }
    let body = match read_limited(body, config.max_body()).await {
        Ok(body) => body,
        Err(ReadError::TooLarge) => return Ok(own(too_large())),
        Err(ReadError::Failed(error)) => {
            tracing::debug!(target: TARGET, %error, "the request body failed");
            return Ok(own(unreadable()));
        }
    };
    let key = config.key(from_header, &parts, &body);
    let print = IdempotencyConfig::<St>::fingerprint(&parts, &body);
    let request = Request::from_parts(parts, B::from(body));
    let Some(key) = key else {
        return inner.call(request).await.map(|response| response.map(IdempotencyResponseBody::inner));
    };
    match config.admit(key, print).await {
        Admission::Answer(answer) => Ok(own(answer)),
        Admission::Run(held) => run(inner, &config, request, held).await,
    }
}

async fn run<S, St, B, ResBody>(
    mut inner: S,
    config: &IdempotencyConfig<St>,
    request: Request<B>,
    held: Held,
) -> Result<Response<IdempotencyResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    St: IdempotencyStore,
    ResBody: Body,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (response, guard) = config.call_holding(&held, inner.call(request)).await?;
    let (mut parts, body) = response.into_parts();
    // At most `max_stored_body` is buffered: past it the rest streams through.
    let (read, body) = config.renewing(&held, read_bounded(body, config.max_stored_body())).await;
    match config.settle(&held, guard, parts.status, &parts.headers, &read).await {
        Ok(settled) => {
            if settled == Settled::StoreFailed {
                let (name, value) = store_failed_header();
                parts.headers.insert(name, value);
            }
            Ok(Response::from_parts(parts, body))
        }
        Err(failed) => Ok(own(failed)),
    }
}
