//! Where a request's key comes from ([`KeySource`]) and what makes two requests the same
//! ([`fingerprint`]).

use std::sync::Arc;

use bytes::Bytes;
use ezthrottle_core::protocol::SIGNATURE_HEADER;
use http::Method;
use sha2::{Digest, Sha256};

use super::store::Fingerprint;

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

use ezthrottle_core::protocol::headers::IDEMPOTENCY_KEY_HEADERS as KEY_HEADERS;

/// The key from the headers: `Ok(None)` without one, `Err` for an invalid one.
pub(crate) fn header_key(parts: &http::request::Parts) -> Result<Option<String>, ()> {
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
pub(crate) fn is_delivery(parts: &http::request::Parts) -> bool {
    parts.headers.contains_key(SIGNATURE_HEADER)
}

pub(crate) fn webhook_key(body: &Bytes) -> Option<String> {
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
