//! Duplicate suppression for webhook receivers and ordinary APIs: [`IdempotencyLayer`].
//!
//! EZThrottle delivers webhooks at least once, and clients retry POSTs: the same request
//! can arrive twice, even at the same time. Behind an [`IdempotencyLayer`]:
//!
//! - the **first** request with a key runs the handler; its answer (status, headers and
//!   body up to [`max_stored_body`](IdempotencyLayer::max_stored_body), default 1 MiB) is
//!   stored for the [`ttl`](IdempotencyLayer::ttl) (default 24 h);
//! - a **repeat** gets the stored answer with `X-Idempotent-Replay: true`, without running
//!   the handler;
//! - a **concurrent** repeat, while the first runs, waits for its answer (up to
//!   [`wait_timeout`](IdempotencyLayer::wait_timeout), default 10 s) or, with
//!   [`InFlight::Conflict`], gets `409 Conflict` with `Retry-After` at once;
//! - the same key with a **different** request (method, path or body) gets `422`;
//! - a handler that answers **5xx** (or whose future is dropped) releases the key: a retry
//!   runs again. So does an answer refusing the request itself (400, 401, 403, 407, 408,
//!   409, 411, 413, 414, 415, 422, 429, 431), so a forged or malformed request can never
//!   decide what the genuine one gets. Other 4xx answers (404, 410, ...) are stored like
//!   2xx ones.
//!
//! # Keys
//!
//! [`KeySource::Auto`] (the default) takes the `Idempotency-Key` or `X-Idempotency-Key`
//! header (16 to 255 visible ASCII characters, else `400`) and, without one, for a
//! webhook delivery (a request signed with `X-EZThrottle-Signature`) the payload's
//! `idempotent_key`, else its `job_id`. Requests without a key pass through: a plain API's
//! body is never read for a key, so `{"job_id": ...}` in an ordinary request means nothing
//! here. Receive unsigned deliveries with [`KeySource::Webhook`].
//!
//! # Order with verification
//!
//! For webhook routes, **verify before de-duplicating**: put a
//! [`VerifyWebhookLayer`](crate::webhook::VerifyWebhookLayer) *outside* this layer, so an
//! unverified request (a forger who learnt a job id) can never replay a stored answer or
//! take a key. With tower's `ServiceBuilder`, list the verifier first:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use ezthrottle_tower::idempotency::IdempotencyLayer;
//! use ezthrottle_tower::webhook::{VerifyWebhookLayer, WebhookVerifier};
//! use tower::{ServiceBuilder, service_fn};
//!
//! let service = ServiceBuilder::new()
//!     .layer(VerifyWebhookLayer::new(WebhookVerifier::new("whsec_1"))) // runs first
//!     .layer(IdempotencyLayer::memory())
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"charged"))))
//!     }));
//! # let _ = service;
//! ```
//!
//! In axum, `route_layer` calls apply outside-in from the last one: add the
//! `IdempotencyLayer` first, then the `VerifyWebhookLayer`.
//!
//! # Stores
//!
//! [`MemoryStore`] for one replica; [`RedisStore`] (feature `redis`) for several replicas
//! sharing one view. A store failure answers `503` with `Retry-After` (fail closed: the
//! handler does not run without protection).

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::webhook::SIGNATURE_HEADER;

pub use memory::{DEFAULT_MEMORY_CAPACITY, MemoryStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{DEFAULT_REDIS_TIMEOUT, RedisStore};
pub use store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoreError, StoredResponse};

/// The header marking a replayed answer: `X-Idempotent-Replay: true`.
pub const REPLAY_HEADER: &str = "x-idempotent-replay";
/// Default time an answer is kept: 24 hours.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

const TARGET: &str = "ezthrottle::idempotency";

/// A custom key function: the request head and the buffered body to an optional key.
pub type KeyFn = Arc<dyn Fn(&http::request::Parts, &Bytes) -> Option<String> + Send + Sync>;

/// Where the key of a request comes from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum KeySource {
    /// The `Idempotency-Key` / `X-Idempotency-Key` header; else, for a request signed with
    /// `X-EZThrottle-Signature` (a webhook delivery), the payload's `idempotent_key`, else
    /// its `job_id`.
    #[default]
    Auto,
    /// Only the `Idempotency-Key` / `X-Idempotency-Key` header.
    Header,
    /// Only a webhook payload's `idempotent_key`, else its `job_id`.
    Webhook,
    /// A function of the request head and body.
    Custom(KeyFn),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "Auto",
            Self::Header => "Header",
            Self::Webhook => "Webhook",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

/// What a concurrent repeat gets while the first request with its key is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InFlight {
    /// Wait for the first request's answer (up to the wait timeout, then 409).
    #[default]
    Wait,
    /// Answer `409 Conflict` with `Retry-After` at once.
    Conflict,
}

/// The response body of [`Idempotency`]: the inner body for requests without a key,
/// else the buffered (or replayed) answer.
pub type IdempotencyResponseBody<B> = Either<B, Full<Bytes>>;

/// A tower layer suppressing duplicate requests. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct IdempotencyLayer<St = MemoryStore> {
    config: Arc<Config<St>>,
}

#[derive(Debug)]
pub(crate) struct Config<St> {
    store: St,
    key_source: KeySource,
    ttl: Duration,
    lock_ttl: Duration,
    wait_timeout: Duration,
    in_flight: InFlight,
    max_body: usize,
    max_stored_body: usize,
}

impl IdempotencyLayer<MemoryStore> {
    /// A layer with a fresh [`MemoryStore`].
    #[must_use]
    pub fn memory() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// A layer over `store` with the defaults: [`KeySource::Auto`], 24 h TTL, concurrent
    /// repeats wait up to 10 s, 60 s lock, 2 MiB request bodies, 1 MiB stored bodies.
    #[must_use]
    pub fn new(store: St) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                key_source: KeySource::Auto,
                ttl: DEFAULT_TTL,
                lock_ttl: Duration::from_secs(60),
                wait_timeout: Duration::from_secs(10),
                in_flight: InFlight::Wait,
                max_body: 2 * 1024 * 1024,
                max_stored_body: 1024 * 1024,
            }),
        }
    }

    /// The shared configuration (for the actix adapter).
    #[cfg(feature = "actix")]
    pub(crate) fn config(&self) -> &Arc<Config<St>> {
        &self.config
    }

    fn with(self, change: impl FnOnce(&mut Config<St>)) -> Self {
        let mut config = unwrap_or_clone_config(self.config);
        change(&mut config);
        Self { config: Arc::new(config) }
    }

    /// Where keys come from (default [`KeySource::Auto`]).
    #[must_use]
    pub fn key_source(self, source: KeySource) -> Self {
        self.with(|config| config.key_source = source)
    }

    /// How long answers are kept (default 24 h).
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|config| config.ttl = ttl)
    }

    /// How long a running request holds its key at most (default 60 s): if the replica
    /// running it dies, the key frees itself after this.
    #[must_use]
    pub fn lock_ttl(self, ttl: Duration) -> Self {
        self.with(|config| config.lock_ttl = ttl)
    }

    /// What a concurrent repeat gets (default [`InFlight::Wait`]).
    #[must_use]
    pub fn in_flight(self, behaviour: InFlight) -> Self {
        self.with(|config| config.in_flight = behaviour)
    }

    /// How long a concurrent repeat waits before getting 409 (default 10 s).
    #[must_use]
    pub fn wait_timeout(self, timeout: Duration) -> Self {
        self.with(|config| config.wait_timeout = timeout)
    }

    /// The largest request body read, in bytes (default 2 MiB; larger gets 413).
    #[must_use]
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|config| config.max_body = bytes)
    }

    /// The largest answer body stored, in bytes (default 1 MiB). A larger answer is
    /// returned but not stored: the key is released and a repeat runs again.
    #[must_use]
    pub fn max_stored_body(self, bytes: usize) -> Self {
        self.with(|config| config.max_stored_body = bytes)
    }
}

fn unwrap_or_clone_config<St: Clone>(this: Arc<Config<St>>) -> Config<St> {
    Arc::try_unwrap(this).unwrap_or_else(|shared| Config {
        store: shared.store.clone(),
        key_source: shared.key_source.clone(),
        ttl: shared.ttl,
        lock_ttl: shared.lock_ttl,
        wait_timeout: shared.wait_timeout,
        in_flight: shared.in_flight,
        max_body: shared.max_body,
        max_stored_body: shared.max_stored_body,
    })
}

impl<S, St> Layer<S> for IdempotencyLayer<St> {
    type Service = Idempotency<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency { inner, config: Arc::clone(&self.config) }
    }
}

/// The service of [`IdempotencyLayer`].
#[derive(Debug)]
pub struct Idempotency<S, St = MemoryStore> {
    inner: S,
    config: Arc<Config<St>>,
}

impl<S: Clone, St> Clone for Idempotency<S, St> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), config: Arc::clone(&self.config) }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An answer of the layer itself (refusals, replays, buffered handler answers).
pub(crate) type Answer = Response<Bytes>;

/// Answers that refuse the request instead of processing it (bad or unauthenticated
/// input, conflicts, limits). They are not stored: otherwise a forged webhook delivery
/// (refused with 401 by an extractor inside this layer) or a malformed retry would take the
/// key, and the genuine request would get its refusal replayed for the whole TTL.
fn refuses_the_request(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 403 | 407 | 408 | 409 | 411 | 413 | 414 | 415 | 422 | 429 | 431)
}

fn text(status: StatusCode, message: &'static str) -> Answer {
    let mut response = Response::new(Bytes::from_static(message.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn retry_later(status: StatusCode, message: &'static str) -> Answer {
    let mut response = text(status, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn replay(stored: &StoredResponse) -> Answer {
    let mut response = Response::new(stored.body.clone());
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.header_map();
    response.headers_mut().insert(HeaderName::from_static(REPLAY_HEADER), HeaderValue::from_static("true"));
    response
}

/// `413`: the request body is over `max_body`.
pub(crate) fn too_large() -> Answer {
    text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
}

/// `400`: the request body could not be read.
pub(crate) fn unreadable() -> Answer {
    text(StatusCode::BAD_REQUEST, "failed to read the request body")
}

const KEY_HEADERS: [&str; 2] = ["idempotency-key", "x-idempotency-key"];

/// The key from the headers: `Ok(None)` without one, `Err` for an invalid one.
fn header_key(parts: &http::request::Parts) -> Result<Option<String>, ()> {
    let Some(value) = KEY_HEADERS.iter().find_map(|name| parts.headers.get(*name)) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| ())?;
    if !(16..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(());
    }
    Ok(Some(format!("h:{key}")))
}

/// A webhook payload's `idempotent_key`, else its `job_id`.
/// Only a delivery's payload names its job: an ordinary request's body is data.
fn is_delivery(parts: &http::request::Parts) -> bool {
    parts.headers.contains_key(SIGNATURE_HEADER)
}

fn webhook_key(body: &Bytes) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Keys {
        job_id: Option<String>,
        idempotent_key: Option<String>,
    }
    if body.first() != Some(&b'{') {
        return None;
    }
    let keys: Keys = serde_json::from_slice(body).ok()?;
    match (keys.idempotent_key, keys.job_id) {
        (Some(key), _) if !key.is_empty() => Some(format!("k:{key}")),
        (_, Some(job)) if !job.is_empty() => Some(format!("j:{job}")),
        _ => None,
    }
}

/// SHA-256 over the method, path and body.
#[must_use]
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().into()
}

/// Releases the key if the handler's future is dropped before it answered.
pub(crate) struct ReleaseOnDrop<St: IdempotencyStore> {
    armed: Option<(St, String, LockToken)>,
}

impl<St: IdempotencyStore> ReleaseOnDrop<St> {
    /// The handler answered: the key is completed or released explicitly.
    pub(crate) fn disarm(&mut self) {
        self.armed = None;
    }
}

impl<St: IdempotencyStore> Drop for ReleaseOnDrop<St> {
    fn drop(&mut self) {
        if let Some((store, key, token)) = self.armed.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = store.release(&key, &token).await;
            });
        }
    }
}

/// A key this request holds: run the handler, then [`Config::finish`] or [`Config::release`].
pub(crate) struct Held {
    key: String,
    token: LockToken,
    print: Fingerprint,
}

/// What to do with a keyed request, decided by [`Config::admit`].
pub(crate) enum Admission {
    /// Answer this without running the handler (replay, 409, 422, 503).
    Answer(Answer),
    /// Run the handler holding the key.
    Run(Held),
}

impl<St: IdempotencyStore> Config<St> {
    /// The largest request body read, in bytes.
    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    /// The key from the headers, when the key source reads them; `Err` is the `400` for an
    /// invalid header.
    pub(crate) fn header_key(&self, parts: &http::request::Parts) -> Result<Option<String>, Box<Answer>> {
        match self.key_source {
            KeySource::Auto | KeySource::Header => header_key(parts).map_err(|()| {
                Box::new(text(StatusCode::BAD_REQUEST, "Idempotency-Key must be 16 to 255 visible ASCII characters"))
            }),
            KeySource::Webhook | KeySource::Custom(_) => Ok(None),
        }
    }

    /// Whether a request without a header key may still find one in its body; when not,
    /// the request passes through with its body unread (streamed, never refused as large).
    pub(crate) fn key_may_be_in_body(&self, parts: &http::request::Parts) -> bool {
        match self.key_source {
            KeySource::Auto => is_delivery(parts),
            KeySource::Header => false,
            KeySource::Webhook | KeySource::Custom(_) => true,
        }
    }

    /// The request's key, from the header key found before and the buffered body.
    pub(crate) fn key(
        &self,
        from_header: Option<String>,
        parts: &http::request::Parts,
        body: &Bytes,
    ) -> Option<String> {
        match &self.key_source {
            KeySource::Auto if is_delivery(parts) => from_header.or_else(|| webhook_key(body)),
            KeySource::Auto => from_header,
            KeySource::Header => from_header,
            KeySource::Webhook => webhook_key(body),
            KeySource::Custom(derive) => derive(parts, body),
        }
    }

    /// Takes `key` for this request, or decides its answer (replay, wait, 409, 422, 503).
    pub(crate) async fn admit(&self, key: String, print: Fingerprint) -> Admission {
        // Bounded: a released key is retried a few times, then the request gets 409.
        let mut waited = false;
        for _ in 0..4 {
            let state = match self.store.begin(&key, print, self.lock_ttl).await {
                Ok(state) => state,
                Err(err) => {
                    tracing::error!(target: TARGET, error = %err, "idempotency store failed");
                    return Admission::Answer(retry_later(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "idempotency store unavailable",
                    ));
                }
            };
            let state = match state {
                Begin::InFlight { fingerprint } if fingerprint != print => {
                    return Admission::Answer(text(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Idempotency-Key reused with a different request",
                    ));
                }
                Begin::InFlight { .. } if self.in_flight == InFlight::Conflict || waited => {
                    return Admission::Answer(retry_later(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is in progress",
                    ));
                }
                Begin::InFlight { .. } => {
                    waited = true;
                    match self.store.wait(&key, self.wait_timeout).await {
                        Ok(Begin::Released) => continue,
                        Ok(state) => state,
                        Err(err) => {
                            tracing::error!(target: TARGET, error = %err, "idempotency store failed");
                            return Admission::Answer(retry_later(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "idempotency store unavailable",
                            ));
                        }
                    }
                }
                other => other,
            };
            match state {
                Begin::Completed(stored) if stored.fingerprint != print => {
                    return Admission::Answer(text(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Idempotency-Key reused with a different request",
                    ));
                }
                Begin::Completed(stored) => {
                    tracing::debug!(target: TARGET, key = %key, "replaying a stored answer");
                    return Admission::Answer(replay(&stored));
                }
                Begin::InFlight { .. } => {
                    return Admission::Answer(retry_later(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is in progress",
                    ));
                }
                Begin::Released => continue,
                Begin::Acquired(token) => return Admission::Run(Held { key, token, print }),
            }
        }
        Admission::Answer(retry_later(StatusCode::CONFLICT, "a request with this Idempotency-Key is in progress"))
    }

    /// A guard releasing `held` if the handler's future is dropped; disarm it once answered.
    pub(crate) fn guard(&self, held: &Held) -> ReleaseOnDrop<St> {
        ReleaseOnDrop { armed: Some((self.store.clone(), held.key.clone(), held.token.clone())) }
    }

    /// Frees `held` without an answer (the handler failed).
    pub(crate) async fn release(&self, held: &Held) {
        let _ = self.store.release(&held.key, &held.token).await;
    }

    /// The `500` for an answer body that failed: releases `held`.
    pub(crate) async fn answer_failed(&self, held: &Held) -> Answer {
        self.release(held).await;
        tracing::warn!(target: TARGET, key = %held.key, "the answer body failed; key released");
        text(StatusCode::INTERNAL_SERVER_ERROR, "the handler's answer failed")
    }

    /// Stores the handler's whole answer for `held`, or releases the key for a 5xx, a
    /// refusal (see [`refuses_the_request`]) or an answer over `max_stored_body`.
    pub(crate) async fn finish(&self, held: &Held, status: StatusCode, headers: &http::HeaderMap, body: &Bytes) {
        let kept = !status.is_server_error() && !refuses_the_request(status);
        if !kept || body.len() > self.max_stored_body {
            if kept {
                tracing::warn!(target: TARGET, key = %held.key, bytes = body.len(), "answer too large to store; key released");
            }
            self.release(held).await;
        } else {
            let headers = headers
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "connection" | "transfer-encoding" | "content-length"))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            let stored = StoredResponse { fingerprint: held.print, status, headers, body: body.clone() };
            if let Err(err) = self.store.complete(&held.key, &held.token, stored, self.ttl).await {
                tracing::error!(target: TARGET, error = %err, key = %held.key, "could not store the answer");
            }
        }
    }
}

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
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(handle(inner, config, request))
    }
}

fn own<B>(answer: Answer) -> Response<IdempotencyResponseBody<B>> {
    answer.map(|body| Either::Right(Full::new(body)))
}

async fn handle<S, St, B, ResBody>(
    mut inner: S,
    config: Arc<Config<St>>,
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
        return inner.call(request).await.map(|response| response.map(Either::Left));
    }
    let body = match Limited::new(body, config.max_body()).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => return Ok(own(too_large())),
        Err(_) => return Ok(own(unreadable())),
    };
    let key = config.key(from_header, &parts, &body);
    let print = fingerprint(&parts.method, parts.uri.path(), &body);
    let request = Request::from_parts(parts, B::from(body));
    let Some(key) = key else {
        return inner.call(request).await.map(|response| response.map(Either::Left));
    };
    match config.admit(key, print).await {
        Admission::Answer(answer) => Ok(own(answer)),
        Admission::Run(held) => run(inner, &config, request, held).await,
    }
}

async fn run<S, St, B, ResBody>(
    mut inner: S,
    config: &Config<St>,
    request: Request<B>,
    held: Held,
) -> Result<Response<IdempotencyResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    St: IdempotencyStore,
    ResBody: Body,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut guard = config.guard(&held);
    let result = inner.call(request).await;
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            guard.disarm();
            config.release(&held).await;
            return Err(err);
        }
    };
    let (parts, body) = response.into_parts();
    // The handler's own answer: read whole, stored only up to `max_stored_body`.
    let body = match body.collect().await.map(http_body_util::Collected::to_bytes).ok() {
        Some(body) => body,
        None => {
            guard.disarm();
            return Ok(own(config.answer_failed(&held).await));
        }
    };
    guard.disarm();
    config.finish(&held, parts.status, &parts.headers, &body).await;
    Ok(Response::from_parts(parts, Either::Right(Full::new(body))))
}
