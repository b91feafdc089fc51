//! The verified delivery both framework extractors produce.

use std::ops::Deref;

use bytes::Bytes;
use ezthrottle_core::WebhookPayload;
use ezthrottle_core::webhook::{SecretSlot, Verified};

/// A webhook delivery whose `X-EZThrottle-Signature` verified, deserialized as `T`.
///
/// With feature `axum` it is an extractor (`FromRequest`, with core's
/// [`Verifier`](ezthrottle_core::webhook::Verifier) from the state through `FromRef`, body
/// limit from `DefaultBodyLimit`); `ezthrottle-actix`'s `VerifiedDelivery` extractor derefs
/// to it (the verifier from `app_data`/`web::Data`, body limit from `PayloadConfig`).
/// Either way the signature header is checked first (a request without a usable one is
/// refused before its body is read), the body is buffered within the limit (413
/// over it), the signature is checked over those exact bytes, then `T` is deserialized from
/// JSON; failures are [`WebhookRejection`](super::WebhookRejection)s (400, 401, 413, 422, or
/// 500 when no verifier is configured). It consumes the body, so it must be the **last**
/// extractor of a handler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedWebhook<T = WebhookPayload> {
    /// The deserialized payload.
    pub payload: T,
    /// The verification result (which secret matched, the signed timestamp).
    pub verified: Verified,
    /// The raw body, exactly as signed.
    pub body: Bytes,
}

impl<T> VerifiedWebhook<T> {
    /// Which secret matched.
    #[must_use]
    pub fn secret(&self) -> SecretSlot {
        self.verified.secret()
    }

    /// The payload.
    pub fn into_inner(self) -> T {
        self.payload
    }
}

impl<T> Deref for VerifiedWebhook<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.payload
    }
}
