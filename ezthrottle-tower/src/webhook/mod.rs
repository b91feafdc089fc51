//! Receiving signed webhooks: [`VerifyWebhookLayer`] for any tower/hyper server, and the
//! [`WebhookRejection`] every framework integration answers with.
//!
//! EZThrottle signs each delivery with `X-EZThrottle-Signature: t=<unix>,v1=<hex HMAC>`
//! over `"<t>." + raw body`. The one verifier is core's
//! [`Verifier`](ezthrottle_core::webhook::Verifier): the layer, the axum extractor (feature
//! `axum`) and the actix-web integration (crate `ezthrottle-actix`) run its
//! [`verify`](ezthrottle_core::webhook::Verifier::verify) over the **exact raw bytes** of
//! the body, before anything parses it, and only turn its [`VerifyError`] into an answer:
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
//! The header is checked before the body is read
//! ([`Verifier::check_header`](ezthrottle_core::webhook::Verifier::check_header)): no
//! header, a malformed one, and a stale or future timestamp are answered without reading
//! a body byte, so a request that cannot verify costs no buffering.
//!
//! Crypto failures answer a generic 401 on purpose: telling a forger which check failed
//! helps them. The precise reason is logged at `warn` with target `ezthrottle::webhook`;
//! which secret matched a valid delivery is logged at `debug` with the same target, so a
//! rotation in progress is visible.
//!
//! ```
//! use ezthrottle_core::webhook::{sign, Verifier};
//! use ezthrottle_tower::webhook::WebhookRejection;
//!
//! let verifier = Verifier::new("whsec_new_0123456789")?.with_secondary("whsec_old_0123456789")?;
//! let body = br#"{"job_id":"job_1","status":"success"}"#;
//! let header = sign("whsec_old_0123456789", 1_700_000_000, body);
//! assert_eq!(verifier.verify_at(body, &header, 1_700_000_010).map(|v| v.reason()), Ok("valid_secondary"));
//!
//! // What a server answers for a failure.
//! let rejection = WebhookRejection::from(verifier.verify_at(b"{}", &header, 1_700_000_010).unwrap_err());
//! assert_eq!(rejection.status(), http::StatusCode::UNAUTHORIZED);
//! assert_eq!(rejection.body_text(), "invalid webhook signature");
//! assert_eq!(WebhookRejection::from(verifier.verify(body, "").unwrap_err()).status(), http::StatusCode::BAD_REQUEST);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
mod extension;
mod layer;
#[cfg(feature = "redis")]
mod redis_inbox;
mod request;
mod verified;

use std::borrow::Cow;

use ezthrottle_core::webhook::VerifyError;
use http::StatusCode;

pub use body::VerifyWebhookResponseBody;
pub use extension::VerifiedRequest;
pub use layer::{DEFAULT_BODY_LIMIT, VerifyWebhook, VerifyWebhookLayer};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_inbox::{RedisInbox, RedisInboxBuilder};
pub use verified::VerifiedWebhook;

pub use ezthrottle_core::protocol::SIGNATURE_HEADER;

/// The request handling `ezthrottle-actix` shares with the layer and the axum extractor
/// (not a stable API).
#[doc(hidden)]
pub mod engine {
    pub use super::request::{TARGET, check_signature, parse, verified_webhook, verify_body, verify_extracted};
}

impl From<VerifyError> for WebhookRejection {
    /// A client mistake (no header, no `v1`, a bad `t`) is a precise 400; a failed
    /// cryptographic check (mismatch, stale or future timestamp) is a generic 401.
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::MissingHeader => Self::MissingSignature,
            VerifyError::MissingSignature => Self::MalformedSignature(Cow::Borrowed("no v1 signature")),
            VerifyError::InvalidTimestamp => Self::MalformedSignature(Cow::Borrowed("missing or invalid t timestamp")),
            err => Self::InvalidSignature(err),
        }
    }
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
