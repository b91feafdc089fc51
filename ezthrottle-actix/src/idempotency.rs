//! [`ActixIdempotency`]: the duplicate suppression of
//! [`IdempotencyLayer`] as actix-web middleware.

use std::rc::Rc;
use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BodyStream, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{Error, HttpMessage};
use ezthrottle_tower::idempotency::engine::{
    Admission, Answer, IdempotencyConfig, Read, Settled, store_failed_header, too_large, unreadable,
};
use ezthrottle_tower::idempotency::{IdempotencyLayer, IdempotencyStore, MemoryIdempotencyStore};

use super::{bad_request, copy_headers, http_headers, own_answer, request_parts};

/// actix-web middleware suppressing duplicate requests with the configuration (and store)
/// of an [`IdempotencyLayer`]: the same behaviour and options as the tower layer (see the
/// [`idempotency`](ezthrottle_tower::idempotency) module docs).
///
/// The first request with a key runs the handler and its answer is stored; a repeat gets
/// the stored answer with `X-Idempotent-Replay: true`; a concurrent repeat waits for the
/// first answer (or gets `409` with
/// [`InFlight::Conflict`](ezthrottle_tower::idempotency::InFlight::Conflict)); the same key
/// with a different method, path, query or body gets `422`; a `5xx` answer releases the
/// key; a store failure is `503` with `Retry-After`. Keys are scoped per caller, safe
/// methods are not keyed, the lock is renewed while the handler runs. The request body is
/// buffered up to the layer's [`max_body`](IdempotencyLayer::max_body) (over it is `413`)
/// and handed back to the handler; at most
/// [`max_stored_body`](IdempotencyLayer::max_stored_body) of the answer is buffered, a
/// larger one streams through unstored.
///
/// **Webhook routes:** the [`VerifiedDelivery`](super::VerifiedDelivery) extractor runs in
/// the handler, i.e. *inside* this middleware, so a repeat answered from the store is not
/// verified again (a forger who learnt a job id could read its stored answer, never run
/// the handler). Where that matters, wrap an
/// [`ActixVerifyWebhook`](super::ActixVerifyWebhook) *outside* this one (in actix, a later
/// `.wrap` runs first).
///
/// ```
/// use std::time::Duration;
/// use actix_web::{App, HttpResponse, web};
/// use ezthrottle_actix::ActixIdempotency;
/// use ezthrottle_tower::idempotency::{IdempotencyLayer, InFlight};
///
/// let app = App::new()
///     .wrap(ActixIdempotency::new(IdempotencyLayer::memory().ttl(Duration::from_secs(3600)).in_flight(InFlight::Conflict)))
///     .route("/charge", web::post().to(|| async { HttpResponse::Created().body("charged") }));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ActixIdempotency<St = MemoryIdempotencyStore> {
    layer: IdempotencyLayer<St>,
}

impl ActixIdempotency<MemoryIdempotencyStore> {
    /// Middleware with a fresh in-memory store (one replica) and the layer's defaults.
    ///
    /// ```
    /// let idempotency = ezthrottle_actix::ActixIdempotency::memory();
    /// # let _ = idempotency;
    /// ```
    pub fn memory() -> Self {
        Self::new(IdempotencyLayer::memory())
    }
}

impl<St> ActixIdempotency<St> {
    /// Middleware applying `layer`'s options and store (a `RedisIdempotencyStore` is shared
    /// by every replica).
    ///
    /// ```
    /// use ezthrottle_actix::ActixIdempotency;
    /// use ezthrottle_tower::idempotency::{IdempotencyLayer, KeySource, MemoryIdempotencyStore};
    ///
    /// let layer = IdempotencyLayer::new(MemoryIdempotencyStore::new()).key_source(KeySource::Header).max_body(4096);
    /// let idempotency = ActixIdempotency::new(layer);
    /// # let _ = idempotency;
    /// ```
    pub fn new(layer: IdempotencyLayer<St>) -> Self {
        Self { layer }
    }
}

impl<St> From<IdempotencyLayer<St>> for ActixIdempotency<St> {
    /// The same as [`ActixIdempotency::new`].
    fn from(layer: IdempotencyLayer<St>) -> Self {
        Self::new(layer)
    }
}

super::middleware! {
    ActixIdempotency<St: IdempotencyStore> => IdempotencyMiddleware,
    state: Arc<IdempotencyConfig<St>> = |transform| Arc::clone(transform.layer.config()),
    handle,
}

/// The service of [`ActixIdempotency`] (made by actix when the app starts).
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use ezthrottle_actix::ActixIdempotency;
///
/// # actix_web::rt::System::new().block_on(async {
/// let app = test::init_service(
///     App::new().wrap(ActixIdempotency::memory()).route("/", web::post().to(|| async { HttpResponse::Ok().finish() })),
/// )
/// .await; // `app` runs every request through an `IdempotencyMiddleware`
/// # let _ = app;
/// # });
/// ```
pub struct IdempotencyMiddleware<S, St = MemoryIdempotencyStore> {
    service: Rc<S>,
    state: Arc<IdempotencyConfig<St>>,
}

fn answer<B>(req: ServiceRequest, answer: Answer) -> ServiceResponse<EitherBody<B>> {
    let (parts, body) = answer.into_parts();
    req.into_response(own_answer(parts.status, &parts.headers, body)).map_into_right_body()
}

async fn handle<S, B, St>(
    service: Rc<S>,
    config: Arc<IdempotencyConfig<St>>,
    mut req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
    St: IdempotencyStore,
{
    let Some(parts) = request_parts(&req) else {
        return Ok(req.into_response(bad_request()).map_into_right_body());
    };
    let from_header = match config.header_key(&parts) {
        Ok(key) => key,
        Err(refusal) => return Ok(answer(req, *refusal)),
    };
    if from_header.is_none() && !config.key_may_be_in_body(&parts) {
        return service.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let body = match actix_web::body::to_bytes_limited(BodyStream::new(req.take_payload()), config.max_body()).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Ok(answer(req, unreadable())),
        Err(_) => return Ok(answer(req, too_large())),
    };
    req.set_payload(Payload::from(body.clone()));
    let key = config.key(from_header, &parts, &body);
    let print = IdempotencyConfig::<St>::fingerprint(&parts, &body);
    let Some(key) = key else {
        return service.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let held = match config.admit(key, print).await {
        Admission::Answer(refusal) => return Ok(answer(req, refusal)),
        Admission::Run(held) => held,
    };
    let (response, guard) = config.call_holding(&held, service.call(req)).await?;
    let (request, response) = response.into_parts();
    let (mut response, body) = response.into_parts();
    let status =
        http::StatusCode::from_u16(response.status().as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    // At most `max_stored_body` is buffered: past it the rest streams through.
    let (read, body) = config.renewing(&held, read_bounded(body, config.max_stored_body())).await;
    let response = match config.settle(&held, guard, status, &http_headers(response.headers()), &read).await {
        Ok(settled) => {
            if settled == Settled::StoreFailed {
                let (name, value) = store_failed_header();
                copy_headers(&http::HeaderMap::from_iter([(name, value)]), response.headers_mut());
            }
            response.set_body(body)
        }
        Err(failed) => {
            let (parts, body) = failed.into_parts();
            own_answer(parts.status, &parts.headers, body)
        }
    };
    Ok(ServiceResponse::new(request, response).map_into_right_body())
}

/// Reads `body` until its end or past `limit` bytes: the whole body, or the start read so
/// far chained to the rest (streamed on), or a failure.
async fn read_bounded<B: MessageBody + 'static>(body: B, limit: usize) -> (Read, BoxBody) {
    let mut body = Box::pin(body);
    let mut buffered = BytesMut::new();
    loop {
        match std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            None => {
                let whole = buffered.freeze();
                return (Read::Whole(whole.clone()), BoxBody::new(whole));
            }
            Some(Err(_)) => return (Read::Failed, BoxBody::new(Bytes::new())),
            Some(Ok(chunk)) => {
                buffered.extend_from_slice(&chunk);
                if buffered.len() > limit {
                    let prefix = Some(buffered.freeze());
                    return (Read::TooLarge, BoxBody::new(Chained { prefix, rest: body }));
                }
            }
        }
    }
}

/// An answer's buffered start, then the rest of its body.
struct Chained<B> {
    prefix: Option<Bytes>,
    rest: Pin<Box<B>>,
}

impl<B: MessageBody> MessageBody for Chained<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        match (self.rest.size(), &self.prefix) {
            (BodySize::Sized(rest), Some(prefix)) => BodySize::Sized(rest.saturating_add(prefix.len() as u64)),
            (BodySize::Sized(rest), None) => BodySize::Sized(rest),
            _ => BodySize::Stream,
        }
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, B::Error>>> {
        match self.prefix.take() {
            Some(prefix) => Poll::Ready(Some(Ok(prefix))),
            None => self.rest.as_mut().poll_next(cx),
        }
    }
}
