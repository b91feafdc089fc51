//! Several engines on one store: how they share the work.
//!
//! An engine whose store answers [`JobStore::replication`](super::JobStore::replication)
//! is a *replica*. Replicas share everything the store keeps (jobs, keys, progress, the
//! schedule), and split the running of jobs by host:
//!
//! - Each replica holds a lease, renewed every third of [`EngineBuilder::replica_lease`]
//!   (`--replica-lease`, default 10 s). A replica that stops renewing (killed, cut off
//!   from the database) loses it; one that cannot renew in time stops itself, so a job
//!   never runs on two live replicas.
//! - Each host (`host:port`) is run by one replica at a time: the first that finds the
//!   host's jobs waiting takes the host, and keeps it while its lease lasts. One replica
//!   paces each host, so a target sees its pace however many replicas run.
//! - A submission is stored unclaimed, on whichever replica received it. The replica
//!   running its host claims it at its next poll (woken at once when the submission
//!   reached that replica), then queues and runs it as a lone engine would.
//! - A pace a target announces (`X-EZTHROTTLE-RPS`, `X-EZTHROTTLE-MAX-CONCURRENT`) is
//!   saved for every replica; each applies the saved paces at every renewal, and before
//!   it runs the jobs of a host it has just taken.
//! - When a replica's lease expires, any other releases its hosts and jobs; the replica
//!   that takes a host over resumes its jobs as a restarted engine would: queued jobs
//!   queue again, interrupted attempts run again, undelivered webhooks are delivered.
//!
//! [`EngineBuilder::replica_lease`]: crate::EngineBuilder::replica_lease

use std::time::Duration;

use ezthrottle_core::protocol::Pace;

use super::{StoreFuture, StoredJob};

/// What a store shared by several engines does beyond [`JobStore`](super::JobStore):
/// leases, and the claiming of jobs by host. One instance is one replica.
///
/// The engine calls [`renew`](Self::renew) first, then [`claim`](Self::claim) and
/// `renew` from then on, and [`release`](Self::release) once it has drained.
pub trait Replication: Send + Sync + std::fmt::Debug {
    /// Registers (on the first call) or renews this replica's lease for `lease` from now
    /// (by the store's clock), and releases the hosts and jobs of replicas whose lease
    /// has expired. `Ok(false)`: the lease had already expired, and another replica may
    /// have taken this one's jobs over.
    fn renew(&self, lease: Duration) -> StoreFuture<'_, bool>;

    /// Takes the hosts nobody holds whose jobs are waiting, then claims up to `limit`
    /// unclaimed, unsettled jobs of the hosts this replica holds, oldest first: each is
    /// this replica's to run (or to settle) from now on. No job is claimed twice.
    fn claim(&self, limit: usize) -> StoreFuture<'_, Vec<StoredJob>>;

    /// Whether this replica held `host` at its last claim: a submission for it is
    /// claimed at once rather than at the next poll.
    fn holds_host(&self, host: &str) -> bool;

    /// Saves the pace a target announced for `host` (`X-EZTHROTTLE-RPS`, ...), for every
    /// replica: the one that takes the host over starts with it.
    fn share_pace<'a>(&'a self, host: &'a str, pace: Pace) -> StoreFuture<'a, ()>;

    /// Every pace saved by [`share_pace`](Self::share_pace), by host.
    fn shared_paces(&self) -> StoreFuture<'_, Vec<(String, Pace)>>;

    /// Gives up the lease, the hosts and the unsettled jobs this replica holds, so
    /// another replica takes them over without waiting for the lease to expire.
    fn release(&self) -> StoreFuture<'_, ()>;
}
