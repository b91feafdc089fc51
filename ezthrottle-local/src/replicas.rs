//! The engine as one replica of a shared store: its lease kept, the jobs of its hosts
//! claimed (the rules are in [`crate::store::Replication`]).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use ezthrottle_core::protocol::Pace;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::engine::Shared;
use crate::store::StoreError;

/// The leases a replica may take (`--replica-lease`, [`EngineBuilder::replica_lease`]).
///
/// [`EngineBuilder::replica_lease`]: crate::EngineBuilder::replica_lease
pub(crate) const LEASE_BOUNDS: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(600);

/// Most jobs claimed at once; a full batch is followed by another at once.
const CLAIM_BATCH: usize = 1_000;

/// The background work of a replica, stopped by [`Replica::stop`] or on drop.
#[derive(Debug)]
pub(crate) struct Replica {
    lease: JoinHandle<()>,
    claims: JoinHandle<()>,
}

/// Registers the engine as a replica of its store (when the store is shared) and starts
/// keeping its lease and claiming its jobs. `None` for a store one engine owns.
pub(crate) async fn join(shared: &Arc<Shared>) -> Result<Option<Replica>, StoreError> {
    let Some(replication) = shared.store.replication() else { return Ok(None) };
    let lease = shared.config.replica_lease;
    let sent = Instant::now();
    if !replication.renew(lease).await? {
        return Err(StoreError::new("the store refused this replica's first lease"));
    }
    let lease = tokio::spawn(keep_lease(Arc::clone(shared), sent));
    let claims = tokio::spawn(claim_jobs(Arc::clone(shared)));
    Ok(Some(Replica { lease, claims }))
}

impl Replica {
    /// Stops renewing and claiming, then hands the hosts and jobs left over to the other
    /// replicas (the drain is over: what is unsettled is theirs to take).
    pub(crate) async fn leave(self, shared: &Shared) {
        self.lease.abort();
        self.claims.abort();
        if let Some(replication) = shared.store.replication()
            && let Err(err) = replication.release().await
        {
            tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "releasing the replica's lease failed: its jobs are taken over when it expires");
        }
    }

    /// Stops at once; the release is sent without waiting for it (a dropped engine).
    pub(crate) fn abandon(&self, shared: &Arc<Shared>) {
        self.lease.abort();
        self.claims.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&shared.store);
            runtime.spawn(async move {
                if let Some(replication) = store.replication() {
                    let _ = replication.release().await;
                }
            });
        }
    }
}

/// Renews the lease every third of its length. A replica that learns its lease expired,
/// or that cannot renew before it would, stops working at once: another may be taking
/// its jobs over, and a job must not run on two replicas.
async fn keep_lease(shared: Arc<Shared>, first: Instant) {
    let lease = shared.config.replica_lease;
    let period = lease / 3;
    let mut held_until = first.checked_add(lease).unwrap_or(first);
    loop {
        let next = Instant::now().checked_add(period).unwrap_or(held_until).min(held_until);
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        if sent >= held_until {
            shared.lose_lease("the lease could not be renewed before it expired");
            return;
        }
        let Some(replication) = shared.store.replication() else { return };
        match tokio::time::timeout_at(held_until, replication.renew(lease)).await {
            Ok(Ok(true)) => {
                held_until = sent.checked_add(lease).unwrap_or(sent);
                adopt_paces(&shared).await;
            }
            Ok(Ok(false)) => {
                shared.lose_lease("the lease had expired: other replicas may have taken this one's jobs");
                return;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "renewing the replica's lease failed")
            }
            Err(_) => {}
        }
    }
}

/// Claims the jobs of the hosts this replica runs, every poll interval and whenever a
/// submission for one of them arrives here, until the drain starts.
async fn claim_jobs(shared: Arc<Shared>) {
    let poll = shared.config.replica_poll;
    loop {
        let Some(replication) = shared.store.replication() else { return };
        loop {
            match replication.claim(CLAIM_BATCH).await {
                Ok(jobs) => {
                    // A host new here: the pace the others learned applies from its first job.
                    if jobs.iter().any(|job| !shared.lanes.has(&job.host)) {
                        adopt_paces(&shared).await;
                    }
                    let now = Instant::now();
                    for stored in &jobs {
                        crate::recovery::resume_one(&shared, stored, now).await;
                    }
                    if jobs.len() < CLAIM_BATCH {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "claiming jobs failed");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = shared.claims_due.notified() => {}
            () = shared.stopping() => return,
        }
    }
}

/// Applies the paces every replica learned to this one's lanes.
async fn adopt_paces(shared: &Shared) {
    let Some(replication) = shared.store.replication() else { return };
    match replication.shared_paces().await {
        Ok(paces) => {
            for (host, pace) in paces {
                shared.lanes.adopt_pace(&host, pace);
            }
        }
        Err(err) => tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "reading the shared paces failed"),
    }
}

/// Saves a pace a target just announced, for the other replicas (in the background: the
/// attempt that learned it does not wait).
pub(crate) fn share_pace(shared: &Arc<Shared>, host: &str, pace: Pace) {
    if shared.store.replication().is_none() {
        return;
    }
    let (store, host) = (Arc::clone(&shared.store), host.to_owned());
    tokio::spawn(async move {
        if let Some(replication) = store.replication()
            && let Err(err) = replication.share_pace(&host, pace).await
        {
            tracing::warn!(host, error = %ezthrottle_core::ErrorChain(&err), "saving a learned pace failed");
        }
    });
}
