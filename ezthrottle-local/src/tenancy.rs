//! Fair share of the queue: one tenant may not hold more than its share of
//! `max_queued_jobs`, so a tenant flooding the engine cannot make every other tenant's
//! submissions 429.
//!
//! The tenants are known at start (one per API key, plus the open tenant), so each gets a
//! lock-free counter of its jobs waiting to start. A job counts from the moment its queue
//! slot is reserved until it starts (or is found to be a duplicate); children of accepted
//! jobs count too but are never refused, like the global limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::config::Config;
use crate::engine::Shared;
use crate::http::auth::{OPEN_TENANT, tenant_id};
use crate::submit::Admission;

/// The jobs each tenant has waiting to start.
#[derive(Debug)]
pub(crate) struct QueueShares {
    queued: HashMap<Arc<str>, AtomicUsize>,
    limit: usize,
}

/// A tenant at its share of the queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShareFull {
    /// The tenant's share (`max_queued_jobs_per_tenant`).
    pub(crate) limit: usize,
}

/// The share of `max_queued_jobs` one tenant may hold: the configured one, else the whole
/// queue when the engine serves a single tenant and half of it (rounded up) otherwise.
pub(crate) fn share_of(config: &Config) -> usize {
    let tenants = config.api_keys.len() + usize::from(config.open);
    match config.max_queued_jobs_per_tenant {
        Some(limit) => limit,
        None if tenants <= 1 => config.max_queued_jobs,
        None => config.max_queued_jobs.div_ceil(2),
    }
}

impl QueueShares {
    pub(crate) fn new(config: &Config) -> Self {
        let mut queued: HashMap<Arc<str>, AtomicUsize> =
            config.api_keys.iter().map(|key| (Arc::from(tenant_id(key.expose())), AtomicUsize::new(0))).collect();
        if config.open {
            queued.insert(Arc::from(OPEN_TENANT), AtomicUsize::new(0));
        }
        Self { queued, limit: share_of(config) }
    }
}

/// Counts one more queued job of `tenant`; under [`Admission::Limit`] refuses it when the
/// tenant already holds its share, giving back the global slot reserved before.
pub(crate) fn reserve(shared: &Shared, tenant: &str, admission: Admission) -> Result<(), ShareFull> {
    let shares = &shared.queue_shares;
    let Some(count) = shares.queued.get(tenant) else { return Ok(()) };
    let before = count.fetch_add(1, Relaxed);
    if admission == Admission::Limit && before >= shares.limit {
        count.fetch_sub(1, Relaxed);
        shared.metrics.queued.fetch_sub(1, Relaxed);
        return Err(ShareFull { limit: shares.limit });
    }
    Ok(())
}

/// One queued job of `tenant` left the queue (it started, or was a duplicate).
pub(crate) fn release(shared: &Shared, tenant: &str) {
    if let Some(count) = shared.queue_shares.queued.get(tenant) {
        // Never below zero, whatever the order of a racing reserve and release.
        let _ = count.fetch_update(Relaxed, Relaxed, |count| count.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn the_default_share_is_the_whole_queue_for_one_tenant_and_half_for_more() {
        let mut config = Config { max_queued_jobs: 5, api_keys: vec![Secret::new("a")], ..Config::default() };
        assert_eq!(share_of(&config), 5);
        config.api_keys.push(Secret::new("b"));
        assert_eq!(share_of(&config), 3);
        config.api_keys.truncate(1);
        config.open = true;
        assert_eq!(share_of(&config), 3, "open mode adds the open tenant");
        config.max_queued_jobs_per_tenant = Some(1);
        assert_eq!(share_of(&config), 1);
    }
}
