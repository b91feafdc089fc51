//! [`VerifyWebhookLayer`]: webhook verification as tower middleware.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ezthrottle_core::webhook::Verifier;
use http::{HeaderValue, Request, Response, header};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::request::{check_signature, verify_body};
use super::{SIGNATURE_HEADER, VerifyWebhookResponseBody, WebhookRejection};
use crate::body::{ReadError, read_limited, take_ready};

/// Default body limit of [`VerifyWebhookLayer`]: 2 MiB (axum's default too).
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A tower layer verifying `X-EZThrottle-Signature` before the inner service runs.
///
/// The signature header is checked first (present, well formed, its timestamp within the
/// tolerance): a request failing that is refused before a single body byte is read. Then
/// the body is buffered (up to [`limit`](Self::limit), default 2 MiB) and verified as
/// raw bytes; a verified request goes on with the same bytes as a new body of the same
/// type (`B: From<Bytes>`: axum's `Body`, `Full<Bytes>`, ...; map hyper's `Incoming` to one
/// of these first) and a [`VerifiedRequest`](super::VerifiedRequest) extension bound to
/// them. Refused requests never reach the inner service and get the statuses of
/// [`WebhookRejection`] (400, 401, 413) with a `text/plain` body. The payload is not
/// parsed here.
///
/// Put it *outside* (before) an [`IdempotencyLayer`](crate::idempotency::IdempotencyLayer)
/// so an unverified request can never replay a stored answer.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use ezthrottle_core::webhook::Verifier;
/// use ezthrottle_tower::webhook::{VerifiedRequest, VerifyWebhookLayer};
/// use tower::{ServiceBuilder, service_fn};
///
/// let service = ServiceBuilder::new()
///     .layer(VerifyWebhookLayer::new(Verifier::new("whsec_current_0123")?))
///     .service(service_fn(|req: Request<Full<Bytes>>| async move {
///         let secret = req.extensions().get::<VerifiedRequest>().map(VerifiedRequest::secret);
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("{secret:?}")))))
///     }));
/// # let _ = service;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct VerifyWebhookLayer {
    verifier: Verifier,
    limit: usize,
}

impl VerifyWebhookLayer {
    /// Verifies with `verifier`; 2 MiB body limit.
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier, limit: DEFAULT_BODY_LIMIT }
    }

    /// The largest body accepted, in bytes (larger ones get 413).
    #[must_use]
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }
}

impl<S> Layer<S> for VerifyWebhookLayer {
    type Service = VerifyWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyWebhook { inner, verifier: self.verifier.clone(), limit: self.limit }
    }
}

/// The service of [`VerifyWebhookLayer`].
#[derive(Debug, Clone)]
pub struct VerifyWebhook<S> {
    inner: S,
    verifier: Verifier,
    limit: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A rejection as a plain-text response.
fn rejection_response<B>(rejection: &WebhookRejection) -> Response<VerifyWebhookResponseBody<B>> {
    let mut response = Response::new(VerifyWebhookResponseBody::own(Bytes::from(rejection.body_text())));
    *response.status_mut() = rejection.status();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

impl<S, B, ResBody> Service<Request<B>> for VerifyWebhook<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<VerifyWebhookResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let verifier = self.verifier.clone();
        let limit = self.limit;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let signature = parts.headers.get(SIGNATURE_HEADER).map(HeaderValue::as_bytes);
            // Not a body byte is read for a request without a usable signature.
            if let Err(rejection) = check_signature(&verifier, signature) {
                return Ok(rejection_response(&rejection));
            }
            let bytes = match read_limited(body, limit).await {
                Ok(bytes) => bytes,
                Err(ReadError::TooLarge) => return Ok(rejection_response(&WebhookRejection::PayloadTooLarge)),
                Err(ReadError::Failed(err)) => return Ok(rejection_response(&WebhookRejection::BodyRead(err))),
            };
            let verified = match verify_body(&verifier, bytes.clone(), signature) {
                Ok(verified) => verified,
                Err(rejection) => return Ok(rejection_response(&rejection)),
            };
            let mut request = Request::from_parts(parts, B::from(bytes));
            request.extensions_mut().insert(verified);
            inner.call(request).await.map(|response| response.map(VerifyWebhookResponseBody::inner))
        })
    }
}
