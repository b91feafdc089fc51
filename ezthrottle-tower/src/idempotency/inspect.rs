//! [`IdempotencyKeys`]: inspect and clear a caller's keys, scoped as the layer scopes them.

use std::sync::Arc;

use super::key::{KeySource, store_key};
use super::layer::IdempotencyConfig;
use super::store::{Begin, IdempotencyStore};
use crate::StoreError;

/// The keys of one [`IdempotencyLayer`](super::IdempotencyLayer), for debugging and tests:
/// what a key holds ([`inspect`](Self::inspect)) and forgetting it ([`clear`](Self::clear)).
/// Made by [`IdempotencyLayer::keys`](super::IdempotencyLayer::keys); the axum route
/// `ezthrottle_tower::axum::idempotency_key_route` (features `axum`, `idempotency`) serves
/// both.
///
/// A key is looked up **in the caller's scope**, computed from the request asking with the
/// layer's own [`scope`](super::IdempotencyLayer::scope) function: one caller never sees
/// nor clears another's key. Callers without credentials share the anonymous scope, so
/// put authentication in front of whatever serves this.
///
/// ```
/// use ezthrottle_tower::idempotency::{IdempotencyLayer, KeyCleared};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let layer = IdempotencyLayer::memory();
/// let keys = layer.keys();
/// let (asking, ()) = http::Request::get("/").header("authorization", "Bearer alice").body(())?.into_parts();
/// assert!(keys.inspect(&asking, "order-0001-abcdefgh").await?.is_none());
/// assert_eq!(keys.clear(&asking, "order-0001-abcdefgh").await?, KeyCleared::Unknown);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct IdempotencyKeys<St> {
    pub(super) config: Arc<IdempotencyConfig<St>>,
}

impl<St> Clone for IdempotencyKeys<St> {
    fn clone(&self) -> Self {
        Self { config: Arc::clone(&self.config) }
    }
}

/// What [`IdempotencyKeys::clear`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyCleared {
    /// The stored answer (or lapsed lock) is gone: the next request with the key runs.
    Cleared,
    /// A request with the key is running: left alone.
    Running,
    /// No such key in the caller's scope.
    Unknown,
}

impl<St: IdempotencyStore> IdempotencyKeys<St> {
    /// The store keys `key` may be kept under for the caller asking with `parts`: the layer's
    /// digests of scope and key, one per place the key source reads keys from.
    fn store_keys(&self, parts: &http::request::Parts, key: &str) -> Vec<String> {
        let kinds: &[char] = match self.config.key_source {
            KeySource::Auto => &['h', 'j'],
            KeySource::Header => &['h'],
            KeySource::Webhook => &['j'],
            KeySource::Custom(_) => &['c'],
        };
        let scope = self.config.scope.of(parts);
        kinds.iter().map(|kind| store_key(*kind, &scope, key)).collect()
    }

    /// What `key` holds in the scope of the caller asking with `parts` (the head of the
    /// request asking): a running request, a lapsed lock or a stored answer; `None` when
    /// the caller has no such key.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn inspect(&self, parts: &http::request::Parts, key: &str) -> Result<Option<Begin>, StoreError> {
        for store_key in self.store_keys(parts, key) {
            if let Some(state) = self.config.store.inspect(&store_key).await? {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// Forgets `key`'s stored answer in the scope of the caller asking with `parts`, so its
    /// next request runs the handler (a running request's key is left alone).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn clear(&self, parts: &http::request::Parts, key: &str) -> Result<KeyCleared, StoreError> {
        let mut outcome = KeyCleared::Unknown;
        for store_key in self.store_keys(parts, key) {
            if self.config.store.clear(&store_key).await? {
                outcome = KeyCleared::Cleared;
            } else if outcome == KeyCleared::Unknown
                && matches!(self.config.store.inspect(&store_key).await?, Some(Begin::InFlight { .. }))
            {
                outcome = KeyCleared::Running;
            }
        }
        Ok(outcome)
    }
}
