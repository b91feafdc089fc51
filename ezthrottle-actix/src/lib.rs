//! actix-web 4 integrations for [EZThrottle](https://ezthrottle.fly.dev): the
//! [`VerifiedDelivery`] extractor, the [`ActixVerifyWebhook`] middleware (verify before
//! anything else runs), the [`ActixIdempotency`] middleware (duplicate suppression) and the
//! [`ActixRateLimit`] middleware.
//!
//! ```toml
//! ezthrottle-actix = "0.1"
//! ```
//!
//! actix-web is not tower, so these are actix-web's own `FromRequest` and `Transform`
//! types; what they decide is `ezthrottle-tower`'s, shared with the tower layers: core's one
//! [`Verifier`], the [`IdempotencyLayer`](ezthrottle_tower::idempotency::IdempotencyLayer)
//! and [`RateLimitLayer`](ezthrottle_tower::rate_limit::RateLimitLayer) configurations,
//! the [`WebhookRejection`] statuses and texts.
//!
//! ```
//! use actix_web::{App, HttpResponse, web};
//! use ezthrottle_actix::VerifiedDelivery;
//! use ezthrottle_core::webhook::Verifier;
//!
//! async fn webhook(delivery: VerifiedDelivery) -> HttpResponse {
//!     println!("job {} finished (secret {:?})", delivery.payload.job_id, delivery.secret());
//!     HttpResponse::Ok().finish()
//! }
//!
//! let app = App::new()
//!     .app_data(Verifier::new("whsec_current_0123")?)
//!     .app_data(web::PayloadConfig::new(64 * 1024)) // body limit: over it is 413
//!     .route("/webhook", web::post().to(webhook));
//! # let _ = app;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode as ActixStatus;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse};
use ezthrottle_core::WebhookPayload;
use ezthrottle_core::webhook::Verifier;
use ezthrottle_tower::webhook::engine::{TARGET, parse, verified_webhook, verify_extracted};
use ezthrottle_tower::webhook::{SIGNATURE_HEADER, VerifiedRequest, VerifiedWebhook, WebhookRejection};
use serde::de::DeserializeOwned;

/// Implements actix's `Transform` for `$transform<St>` (making `$middleware { service,
/// state }`) and `Service` for `$middleware<S, St>`, whose `call` is `$handle(service,
/// state, request)`: the plumbing every middleware here shares.
macro_rules! middleware {
    // One impl (`[Trait for Type] { items }`) with the bounds both traits need: an inner
    // actix service over `B` bodies, and the store bound `$bound`.
    (@bounded $bound:path; [$($header:tt)*] { $($items:tt)* }) => {
        impl<S, B, St> $($header)*
        where
            S: actix_web::dev::Service<
                    actix_web::dev::ServiceRequest,
                    Response = actix_web::dev::ServiceResponse<B>,
                    Error = actix_web::Error,
                > + 'static,
            B: actix_web::body::MessageBody + 'static,
            St: $bound,
        {
            type Response = actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>;
            type Error = actix_web::Error;
            $($items)*
        }
    };
    (
        $transform:ident<St: $bound:path> => $middleware:ident,
        state: $state:ty = |$this:ident| $make:expr,
        $handle:ident $(,)?
    ) => {
        middleware!(@bounded $bound; [actix_web::dev::Transform<S, actix_web::dev::ServiceRequest> for $transform<St>] {
            type Transform = $middleware<S, St>;
            type InitError = ();
            type Future = std::future::Ready<Result<Self::Transform, ()>>;

            fn new_transform(&self, service: S) -> Self::Future {
                let $this = self;
                std::future::ready(Ok($middleware { service: std::rc::Rc::new(service), state: $make }))
            }
        });

        middleware!(@bounded $bound; [actix_web::dev::Service<actix_web::dev::ServiceRequest> for $middleware<S, St>] {
            type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>>>>;

            actix_web::dev::forward_ready!(service);

            fn call(&self, request: actix_web::dev::ServiceRequest) -> Self::Future {
                let state: $state = self.state.clone();
                Box::pin($handle(std::rc::Rc::clone(&self.service), state, request))
            }
        });

        impl<S, St> std::fmt::Debug for $middleware<S, St> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($middleware)).finish_non_exhaustive()
            }
        }
    };
}
use middleware;

mod idempotency;
mod rate_limit;
mod verify;

pub use idempotency::{ActixIdempotency, IdempotencyMiddleware};
pub use rate_limit::{ActixRateLimit, RateLimitMiddleware};
pub use verify::{ActixVerifyWebhook, VerifyWebhookMiddleware};

const NOT_CONFIGURED: &str =
    "webhook verifier not configured: register a Verifier with App::app_data (or as web::Data<Verifier>)";

/// The actix-web extractor of a webhook delivery whose `X-EZThrottle-Signature` verified,
/// deserialized as `T`: derefs to the framework-neutral
/// [`VerifiedWebhook`] (`payload`, `verified`,
/// `body`, [`secret`](VerifiedWebhook::secret)).
///
/// The verifier is the [`Verifier`] registered with `App::app_data` (or as
/// `web::Data<Verifier>`); the body limit is the app's `web::PayloadConfig` (413 over it).
/// The signature is checked over the exact bytes, then `T` is deserialized from JSON.
/// Failures answer as [`WebhookRejection`] says (400, 401, 413, 422, or 500 when no
/// verifier is registered), with a `text/plain` body. It consumes the body, so it must be
/// the **last** extractor of a handler. Without a verifying middleware, a request without a
/// usable signature header is refused before its body is read. Behind an
/// [`ActixVerifyWebhook`] middleware it does not verify the bytes the middleware verified
/// again (any other body is verified).
#[derive(Debug, Clone)]
pub struct VerifiedDelivery<T = WebhookPayload>(pub VerifiedWebhook<T>);

impl<T> VerifiedDelivery<T> {
    /// The payload (the whole verified webhook is `.0`).
    pub fn into_inner(self) -> T {
        self.0.payload
    }
}

impl<T> Deref for VerifiedDelivery<T> {
    type Target = VerifiedWebhook<T>;

    fn deref(&self) -> &VerifiedWebhook<T> {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for VerifiedDelivery<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let verifier = registered_verifier(req);
        let signature = req.headers().get(SIGNATURE_HEADER).map(|value| value.as_bytes().to_vec());
        let already = req.extensions().get::<VerifiedRequest>().cloned();
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            let delivery = async {
                let body = async { body.await.map_err(body_rejection) };
                let verifier = || verifier.ok_or_else(not_configured);
                let (verified, body) = verify_extracted(verifier, already, signature.as_deref(), body).await?;
                let payload = parse(&body)?;
                Ok::<_, WebhookRejection>(verified_webhook(payload, verified, body))
            };
            delivery.await.map(Self).map_err(|rejection| {
                let response = rejection_response(&rejection);
                InternalError::from_response(rejection, response).into()
            })
        })
    }
}

/// The verifier the app registered, as itself or as `web::Data<Verifier>`.
fn registered_verifier(req: &HttpRequest) -> Option<Verifier> {
    req.app_data::<Verifier>().cloned().or_else(|| req.app_data::<Data<Verifier>>().map(|data| Verifier::clone(data)))
}

fn not_configured() -> WebhookRejection {
    tracing::error!(target: TARGET, "{NOT_CONFIGURED}");
    WebhookRejection::NotConfigured(NOT_CONFIGURED)
}

/// Why the body could not be read: over the `PayloadConfig` limit, or a broken stream.
fn body_rejection(err: actix_web::Error) -> WebhookRejection {
    if err.as_response_error().status_code() == ActixStatus::PAYLOAD_TOO_LARGE {
        WebhookRejection::PayloadTooLarge
    } else {
        WebhookRejection::BodyRead(err.to_string())
    }
}

/// A rejection as actix's plain-text answer.
fn rejection_response(rejection: &WebhookRejection) -> HttpResponse {
    let status = ActixStatus::from_u16(rejection.status().as_u16()).unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(rejection.body_text())
}

/// The head of an actix request as `http` 1 parts (method, URI, headers), with the peer
/// address as a `SocketAddr` extension (for `Scope::client_ip`); `None` if actix's `http`
/// 0.2 values do not convert (they always should).
fn request_parts(req: &actix_web::dev::ServiceRequest) -> Option<http::request::Parts> {
    let method = http::Method::from_bytes(req.method().as_str().as_bytes()).ok()?;
    let uri = http::Uri::try_from(req.uri().to_string()).ok()?;
    let (mut parts, ()) = http::Request::builder().method(method).uri(uri).body(()).ok()?.into_parts();
    for (name, value) in req.headers() {
        let name = http::HeaderName::from_bytes(name.as_str().as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(value.as_bytes()).ok()?;
        parts.headers.append(name, value);
    }
    if let Some(addr) = req.peer_addr() {
        parts.extensions.insert(addr);
    }
    Some(parts)
}

/// Copies `http` 1 headers into an actix response's headers (replacing same-named ones).
fn copy_headers(from: &http::HeaderMap, to: &mut actix_web::http::header::HeaderMap) {
    use actix_web::http::header::{HeaderName, HeaderValue};
    for name in from.keys() {
        let Ok(actix_name) = HeaderName::from_bytes(name.as_str().as_bytes()) else { continue };
        to.remove(&actix_name);
        for value in from.get_all(name) {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                to.append(actix_name.clone(), value);
            }
        }
    }
}

/// The `http` 1 headers of an actix response.
fn http_headers(from: &actix_web::http::header::HeaderMap) -> http::HeaderMap {
    let mut headers = http::HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_str().as_bytes()), http::HeaderValue::from_bytes(value.as_bytes()))
        {
            headers.append(name, value);
        }
    }
    headers
}

/// An answer of the crate's own (status, headers, body) as an actix response.
fn own_answer(status: http::StatusCode, headers: &http::HeaderMap, body: Bytes) -> HttpResponse {
    let status = ActixStatus::from_u16(status.as_u16()).unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, body);
    copy_headers(headers, response.headers_mut());
    response.map_into_boxed_body()
}

/// The `400` for a request whose head does not convert.
fn bad_request() -> HttpResponse {
    HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body("invalid request")
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
