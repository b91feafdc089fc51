//! What every framework integration does with a request: run the one verifier, log the
//! outcome, parse the verified body.

use std::borrow::Cow;

use ezthrottle_core::webhook::{SecretSlot, Verified, Verifier};
use serde::de::DeserializeOwned;

use super::WebhookRejection;

/// The tracing target of webhook verification.
pub const TARGET: &str = "ezthrottle::webhook";

/// Runs `verifier` over the raw `body` and the signature header value (`None` when
/// absent), logging the outcome: what every framework integration does with a request.
pub fn verify_request(
    verifier: &Verifier,
    body: &[u8],
    signature: Option<&[u8]>,
) -> Result<Verified, WebhookRejection> {
    let Ok(signature) = std::str::from_utf8(signature.unwrap_or_default()) else {
        return Err(WebhookRejection::MalformedSignature(Cow::Borrowed("the value is not valid UTF-8")));
    };
    match verifier.verify(body, signature) {
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
        Err(err) => {
            let rejection = WebhookRejection::from(err);
            if let WebhookRejection::InvalidSignature(err) = &rejection {
                tracing::warn!(target: TARGET, reason = %err.reason(), "webhook signature rejected");
            }
            Err(rejection)
        }
    }
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
/// from [`verify_request`] (or a [`VerifiedRequest`](super::VerifiedRequest)) over `body`.
pub fn verified_webhook<T>(payload: T, verified: Verified, body: bytes::Bytes) -> super::VerifiedWebhook<T> {
    super::VerifiedWebhook { payload, verified, body }
}
