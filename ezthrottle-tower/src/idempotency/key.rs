//! Where a request's key comes from ([`KeySource`]), whose it is ([`ScopeFn`]) and what
//! makes two requests the same ([`fingerprint`]).

use std::sync::Arc;

use bytes::Bytes;
use ezthrottle_core::protocol::SIGNATURE_HEADER;
use ezthrottle_core::protocol::headers::CREDENTIAL_HEADERS;
use http::Method;
use sha2::{Digest, Sha256};

use super::store::Fingerprint;

/// A custom key function: the request head and the buffered body to an optional key.
pub type KeyFn = Arc<dyn Fn(&http::request::Parts, &Bytes) -> Option<String> + Send + Sync>;

/// A scope function: whose a request's key is (the caller), from the request head. Two
/// requests share a key only when their scopes are equal too. See
/// [`IdempotencyLayer::scope`](super::IdempotencyLayer::scope).
pub type ScopeFn = Arc<dyn Fn(&http::request::Parts) -> String + Send + Sync>;

/// The default scope: a SHA-256 digest of the credential headers (`Authorization`,
/// `Proxy-Authorization`, `Cookie`, `X-API-Key`, names and values in order), so callers
/// with different credentials never share a key; every caller without one shares the
/// anonymous scope.
#[must_use]
pub fn credential_scope(parts: &http::request::Parts) -> String {
    let mut hasher = Sha256::new();
    for name in CREDENTIAL_HEADERS {
        for value in parts.headers.get_all(name) {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
    }
    hex::encode(hasher.finalize())
}

/// The store key of `key` (from `kind`'s source) in `scope`: a digest, so neither the
/// client's key nor a credential shows in the store.
pub(crate) fn store_key(kind: char, scope: &str, key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(scope.as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    format!("{kind}:{}", hex::encode(hasher.finalize()))
}

/// Methods that change nothing (RFC 9110 safe methods): not keyed unless asked, so a
/// streaming `GET` is never held or buffered.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}
/// Where the key of a request comes from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum KeySource {
    /// The `Idempotency-Key` / `X-Idempotency-Key` header; else, for a request signed with
    /// `X-EZThrottle-Signature` (a webhook delivery), the payload's `job_id`.
    #[default]
    Auto,
    /// Only the `Idempotency-Key` / `X-Idempotency-Key` header.
    Header,
    /// Only a webhook payload's `job_id` (one per job; its `idempotent_key` may repeat
    /// across jobs, so it is not a delivery's identity).
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

/// The key from the headers: `Ok(None)` without one, `Err` for an invalid one (not 16 to
/// 255 visible ASCII characters).
pub(crate) fn header_key(parts: &http::request::Parts) -> Result<Option<String>, ()> {
    let Some(value) = KEY_HEADERS.iter().find_map(|name| parts.headers.get(*name)) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| ())?;
    if !(16..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(());
    }
    Ok(Some(key.to_owned()))
}

/// Only a delivery's payload names its job: an ordinary request's body is data.
pub(crate) fn is_delivery(parts: &http::request::Parts) -> bool {
    parts.headers.contains_key(SIGNATURE_HEADER)
}

/// A webhook payload's `job_id`: each job's deliveries share it, and no other job has it.
pub(crate) fn webhook_key(body: &Bytes) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Keys {
        job_id: Option<String>,
    }
    if body.first() != Some(&b'{') {
        return None;
    }
    let keys: Keys = serde_json::from_slice(body).ok()?;
    keys.job_id.filter(|job| !job.is_empty())
}

/// SHA-256 over the method, the target (the path with its query: the layer passes
/// `uri.path_and_query()`, so `?amount=1` and `?amount=1000` differ) and the body.
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
