//! [`Idempotency`]: the duplicate suppression of
//! [`IdempotencyLayer`](crate::idempotency::IdempotencyLayer) as actix-web middleware.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BodyStream, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};

use super::{bad_request, http_headers, own_answer, request_parts};
use crate::idempotency::{
    Admission, Answer, Config, IdempotencyLayer, IdempotencyStore, InFlight, KeySource, MemoryStore, fingerprint,
    too_large, unreadable,
};

/// actix-web middleware suppressing duplicate requests: the same behaviour and options as
/// [`IdempotencyLayer`] (see the [`idempotency`](crate::idempotency) module docs).
///
/// The first request with a key runs the handler and its answer is stored; a repeat gets
/// the stored answer with `X-Idempotent-Replay: true`; a concurrent repeat waits for the
/// first answer (or gets `409` with [`InFlight::Conflict`]); the same key with a different
/// method, path or body gets `422`; a `5xx` answer releases the key; a store failure is
/// `503` with `Retry-After`. The request body is buffered up to
/// [`max_body`](Self::max_body) (over it is `413`) and handed back to the handler.
///
/// **Webhook routes:** the [`VerifiedWebhook`](super::VerifiedWebhook) extractor runs in
/// the handler, i.e. *inside* this middleware, so a repeat answered from the store is not
/// verified again (a forger who learnt a job id could read its stored answer, never run
/// the handler). Where that matters, verify in a middleware wrapped *outside* this one
/// (in actix, a later `.wrap` runs first).
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use ezthrottle_tower::actix::Idempotency;
///
/// let app = App::new()
///     .wrap(Idempotency::memory())
///     .route("/charge", web::post().to(|| async { HttpResponse::Created().body("charged") }));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Idempotency<St = MemoryStore> {
    layer: IdempotencyLayer<St>,
}

impl Idempotency<MemoryStore> {
    /// Middleware with a fresh in-memory store (one replica).
    ///
    /// ```
    /// let idempotency = ezthrottle_tower::actix::Idempotency::memory();
    /// # let _ = idempotency;
    /// ```
    pub fn memory() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl<St: IdempotencyStore> Idempotency<St> {
    /// Middleware over `store` with [`IdempotencyLayer::new`]'s defaults.
    ///
    /// ```
    /// use ezthrottle_tower::actix::Idempotency;
    /// use ezthrottle_tower::idempotency::MemoryStore;
    ///
    /// let store = MemoryStore::new(); // or a RedisStore shared by every replica
    /// let idempotency = Idempotency::new(store);
    /// # let _ = idempotency;
    /// ```
    pub fn new(store: St) -> Self {
        Self { layer: IdempotencyLayer::new(store) }
    }

    fn with(self, change: impl FnOnce(IdempotencyLayer<St>) -> IdempotencyLayer<St>) -> Self {
        Self { layer: change(self.layer) }
    }

    /// Where keys come from (default [`KeySource::Auto`]).
    ///
    /// ```
    /// use ezthrottle_tower::actix::Idempotency;
    /// use ezthrottle_tower::idempotency::KeySource;
    ///
    /// let idempotency = Idempotency::memory().key_source(KeySource::Header);
    /// # let _ = idempotency;
    /// ```
    pub fn key_source(self, source: KeySource) -> Self {
        self.with(|layer| layer.key_source(source))
    }

    /// How long answers are kept (default 24 h).
    ///
    /// ```
    /// use std::time::Duration;
    /// let idempotency = ezthrottle_tower::actix::Idempotency::memory().ttl(Duration::from_secs(3600));
    /// # let _ = idempotency;
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|layer| layer.ttl(ttl))
    }

    /// How long a running request holds its key at most (default 60 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let idempotency = ezthrottle_tower::actix::Idempotency::memory().lock_ttl(Duration::from_secs(30));
    /// # let _ = idempotency;
    /// ```
    pub fn lock_ttl(self, ttl: Duration) -> Self {
        self.with(|layer| layer.lock_ttl(ttl))
    }

    /// What a concurrent repeat gets (default [`InFlight::Wait`]).
    ///
    /// ```
    /// use ezthrottle_tower::actix::Idempotency;
    /// use ezthrottle_tower::idempotency::InFlight;
    ///
    /// let idempotency = Idempotency::memory().in_flight(InFlight::Conflict);
    /// # let _ = idempotency;
    /// ```
    pub fn in_flight(self, behaviour: InFlight) -> Self {
        self.with(|layer| layer.in_flight(behaviour))
    }

    /// How long a concurrent repeat waits before getting 409 (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let idempotency = ezthrottle_tower::actix::Idempotency::memory().wait_timeout(Duration::from_secs(2));
    /// # let _ = idempotency;
    /// ```
    pub fn wait_timeout(self, timeout: Duration) -> Self {
        self.with(|layer| layer.wait_timeout(timeout))
    }

    /// The largest request body buffered, in bytes (default 2 MiB; larger gets 413).
    ///
    /// ```
    /// let idempotency = ezthrottle_tower::actix::Idempotency::memory().max_body(64 * 1024);
    /// # let _ = idempotency;
    /// ```
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|layer| layer.max_body(bytes))
    }

    /// The largest answer body stored, in bytes (default 1 MiB); a larger answer is
    /// returned but not stored.
    ///
    /// ```
    /// let idempotency = ezthrottle_tower::actix::Idempotency::memory().max_stored_body(256 * 1024);
    /// # let _ = idempotency;
    /// ```
    pub fn max_stored_body(self, bytes: usize) -> Self {
        self.with(|layer| layer.max_stored_body(bytes))
    }
}

impl<St> From<IdempotencyLayer<St>> for Idempotency<St> {
    /// The same configuration (and store) as a tower [`IdempotencyLayer`].
    ///
    /// ```
    /// use ezthrottle_tower::actix::Idempotency;
    /// use ezthrottle_tower::idempotency::IdempotencyLayer;
    ///
    /// let idempotency = Idempotency::from(IdempotencyLayer::memory().max_body(4096));
    /// # let _ = idempotency;
    /// ```
    fn from(layer: IdempotencyLayer<St>) -> Self {
        Self { layer }
    }
}

impl<S, B, St> Transform<S, ServiceRequest> for Idempotency<St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: IdempotencyStore,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = IdempotencyMiddleware<S, St>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(IdempotencyMiddleware { service: Rc::new(service), config: Arc::clone(self.layer.config()) }))
    }
}

/// The service of [`Idempotency`] (made by actix when the app starts).
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use ezthrottle_tower::actix::Idempotency;
///
/// # actix_web::rt::System::new().block_on(async {
/// let app = test::init_service(
///     App::new().wrap(Idempotency::memory()).route("/", web::post().to(|| async { HttpResponse::Ok().finish() })),
/// )
/// .await; // `app` runs every request through an `IdempotencyMiddleware`
/// # let _ = app;
/// # });
/// ```
pub struct IdempotencyMiddleware<S, St = MemoryStore> {
    service: Rc<S>,
    config: Arc<Config<St>>,
}

impl<S, St> std::fmt::Debug for IdempotencyMiddleware<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyMiddleware").finish_non_exhaustive()
    }
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

fn answer<B>(req: ServiceRequest, answer: Answer) -> ServiceResponse<EitherBody<B>> {
    let (parts, body) = answer.into_parts();
    req.into_response(own_answer(parts.status, &parts.headers, body)).map_into_right_body()
}

impl<S, B, St> Service<ServiceRequest> for IdempotencyMiddleware<S, St>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
    St: IdempotencyStore,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<Result<Self::Response, Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Box::pin(handle(Rc::clone(&self.service), Arc::clone(&self.config), req))
    }
}

async fn handle<S, B, St>(
    service: Rc<S>,
    config: Arc<Config<St>>,
    mut req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
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
    let print = fingerprint(&parts.method, parts.uri.path(), &body);
    let Some(key) = key else {
        return service.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let held = match config.admit(key, print).await {
        Admission::Answer(refusal) => return Ok(answer(req, refusal)),
        Admission::Run(held) => held,
    };
    let mut guard = config.guard(&held);
    let response = match service.call(req).await {
        Ok(response) => response,
        Err(err) => {
            guard.disarm();
            config.release(&held).await;
            return Err(err);
        }
    };
    let (request, response) = response.into_parts();
    let (response, body) = response.into_parts();
    // The handler's own answer: read whole, stored only up to `max_stored_body`.
    let Ok(body) = actix_web::body::to_bytes(body).await else {
        guard.disarm();
        let failed = config.answer_failed(&held).await;
        let (parts, body) = failed.into_parts();
        let response = own_answer(parts.status, &parts.headers, body);
        return Ok(ServiceResponse::new(request, response).map_into_right_body());
    };
    guard.disarm();
    let status =
        http::StatusCode::from_u16(response.status().as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    config.finish(&held, status, &http_headers(response.headers()), &body).await;
    let response = response.set_body(body).map_into_boxed_body();
    Ok(ServiceResponse::new(request, response).map_into_right_body())
}
