//! actix-web 4 integrations: the [`VerifiedWebhook`] extractor, the [`VerifyWebhook`]
//! middleware (verify before anything else runs), the [`Idempotency`] middleware
//! (duplicate suppression) and the [`RateLimit`] middleware.
//!
//! ```
//! use actix_web::{App, HttpResponse, web};
//! use ezthrottle_tower::actix::{VerifiedWebhook, WebhookVerifier};
//!
//! async fn webhook(delivery: VerifiedWebhook) -> HttpResponse {
//!     println!("job {} finished (secret {:?})", delivery.payload.job_id, delivery.secret());
//!     HttpResponse::Ok().finish()
//! }
//!
//! let app = App::new()
//!     .app_data(WebhookVerifier::new("whsec_1"))
//!     .app_data(web::PayloadConfig::new(64 * 1024)) // body limit: over it is 413
//!     .route("/webhook", web::post().to(webhook));
//! # let _ = app;
//! ```

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode as ActixStatus;
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;

mod idempotency;
mod rate_limit;
mod verify;

pub use idempotency::{Idempotency, IdempotencyMiddleware};
pub use rate_limit::{RateLimit, RateLimitMiddleware};
pub use verify::{VerifyWebhook, VerifyWebhookMiddleware};

use crate::webhook::{SIGNATURE_HEADER, VerifiedRequest, parse};
pub use crate::webhook::{VerifiedWebhook, WebhookRejection, WebhookVerifier};

const NOT_CONFIGURED: &str =
    "webhook verifier not configured: register a WebhookVerifier with App::app_data (or as web::Data<WebhookVerifier>)";

impl<T: DeserializeOwned + 'static> FromRequest for VerifiedWebhook<T> {
    type Error = WebhookRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebhookRejection>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let verifier = registered_verifier(req);
        let signature = req.headers().get(SIGNATURE_HEADER).map(|value| value.as_bytes().to_vec());
        let already = req.extensions().get::<VerifiedRequest>().copied();
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await.map_err(body_rejection)?;
            let verified = match already {
                // A `VerifyWebhook` middleware outside already verified these exact bytes.
                Some(done) => done.verified(),
                None => verifier.ok_or_else(not_configured)?.verify(&body, signature.as_deref())?,
            };
            let payload = parse(&body)?;
            Ok(Self { payload, verified, body })
        })
    }
}

/// The verifier the app registered, as itself or as `web::Data<WebhookVerifier>`.
fn registered_verifier(req: &HttpRequest) -> Option<WebhookVerifier> {
    req.app_data::<WebhookVerifier>()
        .cloned()
        .or_else(|| req.app_data::<Data<WebhookVerifier>>().map(|data| WebhookVerifier::clone(data)))
}

fn not_configured() -> WebhookRejection {
    tracing::error!(target: crate::webhook::TARGET, "{NOT_CONFIGURED}");
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

impl ResponseError for WebhookRejection {
    fn status_code(&self) -> ActixStatus {
        ActixStatus::from_u16(self.status().as_u16()).unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).content_type("text/plain; charset=utf-8").body(self.body_text())
    }
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
