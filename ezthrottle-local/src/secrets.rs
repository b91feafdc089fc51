//! Webhook secrets per tenant (`docs/protocol.md` §3.2).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::Secret;

/// A tenant's secrets.
#[derive(Debug, Clone)]
pub(crate) struct TenantSecrets {
    pub(crate) primary: Secret,
    pub(crate) secondary: Option<Secret>,
}

/// Every tenant's secrets. A tenant never configured uses the engine's initial secret;
/// one whose secrets were deleted has none.
#[derive(Debug)]
pub(crate) struct SecretsStore {
    initial: Option<Secret>,
    tenants: RwLock<HashMap<Arc<str>, Option<TenantSecrets>>>,
}

impl SecretsStore {
    pub(crate) fn new(initial: Option<Secret>) -> Self {
        Self { initial, tenants: RwLock::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, tenant: &str) -> Option<TenantSecrets> {
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        match tenants.get(tenant) {
            Some(secrets) => secrets.clone(),
            None => self.initial.clone().map(|primary| TenantSecrets { primary, secondary: None }),
        }
    }

    pub(crate) fn primary(&self, tenant: &str) -> Option<Secret> {
        self.get(tenant).map(|secrets| secrets.primary)
    }

    pub(crate) fn set(&self, tenant: &Arc<str>, secrets: TenantSecrets) {
        self.tenants.write().unwrap_or_else(PoisonError::into_inner).insert(Arc::clone(tenant), Some(secrets));
    }

    pub(crate) fn delete(&self, tenant: &Arc<str>) {
        self.tenants.write().unwrap_or_else(PoisonError::into_inner).insert(Arc::clone(tenant), None);
    }
}
