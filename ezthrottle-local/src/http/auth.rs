//! Bearer authentication: each API key is a tenant.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest as _, Sha256};

use crate::config::Secret;

/// The tenant of requests in open mode that carry no `Authorization` header.
pub(crate) const OPEN_TENANT: &str = "cust_local";

/// API keys and the tenants they stand for.
pub(crate) struct Tenants {
    keys: HashMap<String, Arc<str>>,
    open: Option<Arc<str>>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants").field("keys", &self.keys.len()).field("open", &self.open.is_some()).finish()
    }
}

/// The tenant id of an API key: `cust_` and 16 hex digits of its SHA-256 (the key
/// itself never appears in ids, logs or answers).
pub(crate) fn tenant_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex = hex::encode(digest);
    format!("cust_{}", hex.get(..16).unwrap_or(&hex))
}

impl Tenants {
    pub(crate) fn new(keys: &[Secret], open: bool) -> Self {
        Self {
            keys: keys.iter().map(|key| (key.expose().to_owned(), Arc::from(tenant_id(key.expose())))).collect(),
            open: open.then(|| Arc::from(OPEN_TENANT)),
        }
    }

    /// The tenant of a request: `Authorization: Bearer <key>` (scheme case-insensitive,
    /// key trimmed) naming a known key. In open mode a request without an `Authorization`
    /// header is the open tenant; one presenting an unknown key (or another scheme) is
    /// refused all the same, so a typo or a key meant for another engine is seen at once
    /// instead of sharing the open tenant.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Option<Arc<str>> {
        if !headers.contains_key(http::header::AUTHORIZATION) {
            return self.open.clone();
        }
        bearer(headers).and_then(|key| self.keys.get(key).cloned())
    }
}

/// The key of `Authorization: Bearer <key>` (scheme case-insensitive, key trimmed).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
}
