//! What every framework integration does with a request: run the one verifier, log the
//! outcome, parse the verified body.

use std::borrow::Cow;

use bytes::Bytes;
use ezthrottle_core::webhook::{SecretSlot, Verified, Verifier, VerifyError};
use serde::de::DeserializeOwned;

use super::{VerifiedRequest, WebhookRejection};

/// The tracing target of webhook verification.
pub const TARGET: &str = ezthrottle_core::telemetry::TARGET_WEBHOOK;

/// Checks the signature header (`None` when absent) before the body is read: present,
/// well formed, its timestamp within the tolerance. What it refuses, the verification
/// would refuse with the same answer whatever the body, so a server answers without
/// reading a body byte.
pub fn check_signature(verifier: &Verifier, signature: Option<&[u8]>) -> Result<(), WebhookRejection> {
    verifier.check_header(header_text(signature)?).map(drop).map_err(rejected)
}

/// Runs `verifier` over the raw `body` and the signature header value (`None` when
/// absent), logging the outcome: what every framework integration does with a request.
fn verify_request(verifier: &Verifier, body: &[u8], signature: Option<&[u8]>) -> Result<Verified, WebhookRejection> {
    let _span = tracing::debug_span!(target: TARGET, "verify", body_bytes = body.len()).entered();
    let verified = verifier.verify(body, header_text(signature)?).map_err(rejected)?;
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

/// What a verifying middleware hands on: the verification of `body`, as the
/// [`VerifiedRequest`] extension bound to those bytes (the only way to make one).
pub fn verify_body(
    verifier: &Verifier,
    body: Bytes,
    signature: Option<&[u8]>,
) -> Result<VerifiedRequest, WebhookRejection> {
    let verified = verify_request(verifier, &body, signature)?;
    Ok(VerifiedRequest::new(verified, body))
}

/// What both extractors do: trust `already` (a middleware's [`VerifiedRequest`]) only for
/// the bytes it verified; otherwise check the signature header before reading `body`,
/// then verify what was read. `verifier` is asked for only when a verification runs.
pub async fn verify_extracted(
    verifier: impl FnOnce() -> Result<Verifier, WebhookRejection>,
    already: Option<VerifiedRequest>,
    signature: Option<&[u8]>,
    body: impl Future<Output = Result<Bytes, WebhookRejection>>,
) -> Result<(Verified, Bytes), WebhookRejection> {
    let (verifier, body) = match already {
        Some(done) => {
            let body = body.await?;
            if let Some(verified) = done.verified_for(&body) {
                return Ok((verified, body));
            }
            // Not the bytes the middleware verified (swapped, or a copied extension): they
            // are verified like any body, and without a verifier here nothing vouches for them.
            tracing::warn!(target: TARGET, "webhook body differs from the verified one; verifying again");
            let Ok(verifier) = verifier() else {
                return Err(WebhookRejection::InvalidSignature(VerifyError::SignatureMismatch));
            };
            (verifier, body)
        }
        None => {
            let verifier = verifier()?;
            check_signature(&verifier, signature)?;
            (verifier, body.await?)
        }
    };
    let verified = verify_request(&verifier, &body, signature)?;
    Ok((verified, body))
}

/// The header value as text: not UTF-8 is a malformed header.
fn header_text(signature: Option<&[u8]>) -> Result<&str, WebhookRejection> {
    std::str::from_utf8(signature.unwrap_or_default())
        .map_err(|_| WebhookRejection::MalformedSignature(Cow::Borrowed("the value is not valid UTF-8")))
}

/// A verification failure as its answer; a failed crypto check is logged.
fn rejected(err: VerifyError) -> WebhookRejection {
    let rejection = WebhookRejection::from(err);
    if let WebhookRejection::InvalidSignature(err) = &rejection {
        tracing::warn!(target: TARGET, reason = %err.reason(), "webhook signature rejected");
    }
    rejection
}

/// Deserializes a verified body, naming the failing path.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookRejection> {
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

/// A verified webhook of `payload`, built by a framework integration once `verified` came
/// from [`verify_extracted`] over `body`.
pub fn verified_webhook<T>(payload: T, verified: Verified, body: Bytes) -> super::VerifiedWebhook<T> {
    super::VerifiedWebhook { payload, verified, body }
}
