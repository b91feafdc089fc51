//! Webhook secrets per tenant (`docs/protocol.md` §3.2), kept in the job store.
//!
//! What a tenant sets through `/api/v1/webhook-secrets` is saved in the store before it
//! is answered, so it survives a restart and every replica of a shared store signs with
//! it. Reads are cached: for ever on a store one engine owns (it is the only writer), for
//! [`SHARED_CACHE`] on a shared one (a rotation made on one replica reaches the others
//! within it).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::Secret;
use crate::store::{JobStore, StoreError};

/// How long a replica of a shared store trusts the secrets it read.
pub(crate) const SHARED_CACHE: Duration = Duration::from_secs(1);

/// A tenant's secrets.
#[derive(Debug, Clone)]
pub(crate) struct TenantSecrets {
    pub(crate) primary: Secret,
    pub(crate) secondary: Option<Secret>,
}

/// The document saved in the store: no primary means the tenant deleted its secrets.
#[derive(Serialize, Deserialize)]
struct Document {
    primary: Option<String>,
    secondary: Option<String>,
}

/// Every tenant's secrets. A tenant never configured uses the engine's initial secret;
/// one whose secrets were deleted has none.
#[derive(Debug)]
pub(crate) struct SecretsStore {
    initial: Option<Secret>,
    cache: RwLock<HashMap<Arc<str>, Cached>>,
}

/// A tenant's secrets as last read: when, and what (`None`: deleted).
type Cached = (Instant, Option<TenantSecrets>);

impl SecretsStore {
    pub(crate) fn new(initial: Option<Secret>) -> Self {
        Self { initial, cache: RwLock::new(HashMap::new()) }
    }

    pub(crate) async fn get(
        &self,
        store: &dyn JobStore,
        tenant: &Arc<str>,
    ) -> Result<Option<TenantSecrets>, StoreError> {
        let fresh_for = if store.replication().is_some() { Some(SHARED_CACHE) } else { None };
        let cached = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(tenant).cloned();
        if let Some((read_at, secrets)) = cached
            && fresh_for.is_none_or(|fresh_for| read_at.elapsed() < fresh_for)
        {
            return Ok(secrets);
        }
        let secrets = match store.webhook_secrets(tenant).await? {
            None => self.initial.clone().map(|primary| TenantSecrets { primary, secondary: None }),
            Some(document) => {
                let document: Document = serde_json::from_slice(&document)
                    .map_err(|err| StoreError::with_source("reading a tenant's webhook secrets", err))?;
                document.primary.map(|primary| TenantSecrets {
                    primary: primary.into(),
                    secondary: document.secondary.map(Secret::new),
                })
            }
        };
        self.remember(tenant, secrets.clone());
        Ok(secrets)
    }

    pub(crate) async fn primary(&self, store: &dyn JobStore, tenant: &Arc<str>) -> Result<Option<Secret>, StoreError> {
        Ok(self.get(store, tenant).await?.map(|secrets| secrets.primary))
    }

    /// Saves `secrets` (`None`: deleted) for `tenant`, then uses them.
    pub(crate) async fn set(
        &self,
        store: &dyn JobStore,
        tenant: &Arc<str>,
        secrets: Option<TenantSecrets>,
    ) -> Result<(), StoreError> {
        let document = Document {
            primary: secrets.as_ref().map(|secrets| secrets.primary.expose().to_owned()),
            secondary: secrets.as_ref().and_then(|secrets| secrets.secondary.as_ref()).map(|s| s.expose().to_owned()),
        };
        let document = serde_json::to_vec(&document)
            .map_err(|err| StoreError::with_source("encoding a tenant's webhook secrets", err))?;
        store.save_webhook_secrets(tenant, &Bytes::from(document)).await?;
        self.remember(tenant, secrets);
        Ok(())
    }

    fn remember(&self, tenant: &Arc<str>, secrets: Option<TenantSecrets>) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(Arc::clone(tenant), (Instant::now(), secrets));
    }
}
