//! Receiving signed webhooks: the verification shared by the axum and actix-web
//! extractors, and [`VerifyWebhookLayer`] for any tower/hyper server.
//!
//! EZThrottle signs each delivery with `X-EZThrottle-Signature: t=<unix>,v1=<hex HMAC>`
//! over `"<t>." + raw body`. A [`WebhookVerifier`] checks it over the **exact raw bytes**
//! of the body, before anything parses it, then the payload is deserialized.
//!
//! | Failure | Status | Body |
//! |---|---|---|
//! | no signature header | 400 | `missing X-EZThrottle-Signature header` |
//! | malformed header (no `v1`, bad `t`, not UTF-8) | 400 | `malformed X-EZThrottle-Signature header: ...` |
//! | signature mismatch, stale or future timestamp | 401 | `invalid webhook signature` (the precise reason is logged) |
//! | body over the limit | 413 | `webhook body too large` |
//! | body could not be read | 400 | `failed to read the webhook body` |
//! | verified, but not the expected JSON | 422 | `invalid webhook payload: <path>: <error>` |
//! | verifier not configured (actix) | 500 | names what is missing |
//!
//! Crypto failures answer a generic 401 on purpose: telling a forger which check failed
//! helps them. The precise reason is logged at `warn` with target `ezthrottle::webhook`;
//! which secret matched a valid delivery is logged at `debug` with the same target, so a
//! rotation in progress is visible.
//!
//! ```
//! use ezthrottle_core::webhook::sign;
//! use ezthrottle_core::WebhookPayload;
//! use ezthrottle_tower::webhook::{WebhookRejection, WebhookVerifier};
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! let verifier = WebhookVerifier::new("whsec_new").with_secondary("whsec_old");
//! let body = br#"{"job_id":"job_1","status":"success"}"#;
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
//! let header = sign("whsec_old", now, body);
//!
//! let (payload, verified) = verifier.verify_and_parse::<WebhookPayload>(body, Some(header.as_bytes()))?;
//! assert_eq!(payload.job_id, "job_1");
//! assert_eq!(verified.reason(), "valid_secondary");
//!
//! let err = verifier.verify(body, None).unwrap_err();
//! assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
//! # Ok::<(), WebhookRejection>(())
//! ```

mod layer;
mod verified;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use ezthrottle_core::webhook::{SecretSlot, Verified, Verifier, VerifyError};
use http::StatusCode;
use serde::de::DeserializeOwned;

pub use layer::{DEFAULT_BODY_LIMIT, VerifiedRequest, VerifyWebhook, VerifyWebhookLayer, VerifyWebhookResponseBody};
pub use verified::VerifiedWebhook;

pub use ezthrottle_core::protocol::SIGNATURE_HEADER;

/// The tracing target of webhook verification.
pub(crate) const TARGET: &str = "ezthrottle::webhook";

/// The webhook secrets (primary, optional secondary) and timestamp tolerance, shared by the
/// extractors and [`VerifyWebhookLayer`].
///
/// Built on core's [`Verifier`] (keyed once); cheap to clone (one `Arc`). In axum, put it
/// in the state (or anything implementing `FromRef` for it); in actix-web, register it
/// with `App::app_data` (or as `web::Data<WebhookVerifier>`).
#[derive(Clone, Debug)]
pub struct WebhookVerifier {
    inner: Arc<Verifier>,
}

impl From<Verifier> for WebhookVerifier {
    fn from(verifier: Verifier) -> Self {
        Self { inner: Arc::new(verifier) }
    }
}

impl WebhookVerifier {
    /// A verifier for one secret, with a 300 s tolerance.
    #[must_use]
    pub fn new(primary: impl AsRef<str>) -> Self {
        Verifier::new(primary).into()
    }

    /// Also accepts signatures made with `secret`, for rotation (an empty string removes it).
    #[must_use]
    pub fn with_secondary(self, secret: impl AsRef<str>) -> Self {
        Arc::unwrap_or_clone(self.inner).with_secondary(secret).into()
    }

    /// How far the signed timestamp may be from now, either way (default 300 s).
    #[must_use]
    pub fn tolerance(self, tolerance: Duration) -> Self {
        Arc::unwrap_or_clone(self.inner).tolerance(tolerance).into()
    }

    /// The core verifier.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.inner
    }

    /// Verifies the raw `body` against the signature header value (`None` when absent);
    /// the same argument order as [`Verifier::verify`].
    ///
    /// # Errors
    ///
    /// [`WebhookRejection::MissingSignature`], [`WebhookRejection::MalformedSignature`] or
    /// [`WebhookRejection::InvalidSignature`].
    pub fn verify(&self, body: &[u8], signature: Option<&[u8]>) -> Result<Verified, WebhookRejection> {
        let Some(signature) = signature else {
            return Err(WebhookRejection::MissingSignature);
        };
        let Ok(signature) = std::str::from_utf8(signature) else {
            return Err(WebhookRejection::MalformedSignature(Cow::Borrowed("the value is not valid UTF-8")));
        };
        match self.inner.verify(body, signature) {
            Ok(verified) => {
                tracing::debug!(
                    target: TARGET,
                    secret = match verified.secret() {
                        SecretSlot::Primary => "primary",
                        SecretSlot::Secondary => "secondary",
                    },
                    reason = verified.reason(),
                    "webhook signature verified"
                );
                Ok(verified)
            }
            Err(VerifyError::MissingHeader) => Err(WebhookRejection::MissingSignature),
            Err(VerifyError::MissingSignature) => {
                Err(WebhookRejection::MalformedSignature(Cow::Borrowed("no v1 signature")))
            }
            Err(VerifyError::InvalidTimestamp) => {
                Err(WebhookRejection::MalformedSignature(Cow::Borrowed("missing or invalid t timestamp")))
            }
            Err(err) => {
                tracing::warn!(target: TARGET, reason = %err.reason(), "webhook signature rejected");
                Err(WebhookRejection::InvalidSignature(err))
            }
        }
    }

    /// [`verify`](Self::verify), then deserializes the verified body as JSON.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify); [`WebhookRejection::InvalidPayload`] when the verified
    /// body is not a valid `T`.
    pub fn verify_and_parse<T: DeserializeOwned>(
        &self,
        body: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<(T, Verified), WebhookRejection> {
        let verified = self.verify(body, signature)?;
        let payload = parse(body)?;
        Ok((payload, verified))
    }
}

/// Deserializes a verified body, naming the failing path.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookRejection> {
    // Fast path; the slower path-tracking parse runs only to describe a failure.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        WebhookRejection::InvalidPayload(format!("{path}: {}", err.into_inner()))
    })?;
    de.end().map_err(|err| WebhookRejection::InvalidPayload(err.to_string()))?;
    Ok(value)
}

/// Why a webhook request was refused. Each variant maps to one HTTP status
/// ([`status`](Self::status)) and a response text ([`body_text`](Self::body_text)) that
/// never reveals which cryptographic check failed.
///
/// `Display` is for logs: for [`InvalidSignature`](Self::InvalidSignature) it includes the
/// precise reason, which the response body does not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// 400: the request has no `X-EZThrottle-Signature` header (or an empty one).
    #[error("missing X-EZThrottle-Signature header")]
    MissingSignature,
    /// 400: the header is present but cannot be parsed; the text says what is wrong.
    #[error("malformed X-EZThrottle-Signature header: {0}")]
    MalformedSignature(Cow<'static, str>),
    /// 401: the signature does not match, or its timestamp is outside the tolerance.
    #[error("invalid webhook signature: {}", .0.reason())]
    InvalidSignature(#[source] VerifyError),
    /// 413: the body is larger than the configured limit.
    #[error("webhook body too large")]
    PayloadTooLarge,
    /// 400: the body could not be read (the connection failed, ...).
    #[error("failed to read the webhook body: {0}")]
    BodyRead(String),
    /// 422: the signature is valid but the body is not the expected JSON.
    #[error("invalid webhook payload: {0}")]
    InvalidPayload(String),
    /// 500: the server has no verifier configured; the text names what is missing.
    #[error("{0}")]
    NotConfigured(&'static str),
}

impl WebhookRejection {
    /// The HTTP status to answer.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingSignature | Self::MalformedSignature(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidPayload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotConfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response body: precise for client mistakes, generic for crypto failures.
    #[must_use]
    pub fn body_text(&self) -> String {
        match self {
            Self::InvalidSignature(_) => "invalid webhook signature".to_owned(),
            Self::BodyRead(_) => "failed to read the webhook body".to_owned(),
            other => other.to_string(),
        }
    }
}
