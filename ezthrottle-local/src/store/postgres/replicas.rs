//! The replicas of one database: leases in `ezt_replicas`, hosts held in `ezt_hosts`,
//! jobs claimed through `ezt_jobs.owner`.
//!
//! Lease times are the database's clock (`clock_timestamp()`), so replicas on machines
//! whose clocks disagree still agree on who has expired.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ezthrottle_core::protocol::Pace;
use tokio_postgres::Client;

use super::{PostgresStore, job_from_row, sql_error};
use crate::store::{Replication, StoreError, StoreFuture, StoredJob};
use crate::util::lock;

/// The database's clock, in Unix milliseconds.
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

const REGISTER: &str = concat!("INSERT INTO ezt_replicas (id, lease_until_ms) VALUES ($1, ", now_ms!(), " + $2)");

const RENEW: &str = concat!(
    "UPDATE ezt_replicas SET lease_until_ms = ",
    now_ms!(),
    " + $2 WHERE id = $1 AND lease_until_ms > ",
    now_ms!()
);

/// Drops the expired replicas and frees their hosts and unsettled jobs, in one statement.
const REAP: &str = concat!(
    "WITH dead AS (DELETE FROM ezt_replicas WHERE lease_until_ms <= ",
    now_ms!(),
    " RETURNING id),
    jobs AS (UPDATE ezt_jobs SET owner = NULL WHERE owner IN (SELECT id FROM dead) AND NOT settled RETURNING 1),
    hosts AS (UPDATE ezt_hosts SET owner = NULL WHERE owner IN (SELECT id FROM dead) RETURNING 1)
    SELECT (SELECT count(*) FROM dead), (SELECT count(*) FROM jobs)"
);

/// Takes every free host whose jobs are waiting. Two replicas racing for one host
/// serialise on its row; the second sees it held and skips it.
const TAKE_HOSTS: &str = "
INSERT INTO ezt_hosts (host, owner)
SELECT DISTINCT host, $1 FROM ezt_jobs WHERE owner IS NULL AND NOT settled
ON CONFLICT (host) DO UPDATE SET owner = EXCLUDED.owner WHERE ezt_hosts.owner IS NULL
RETURNING host";

/// Claims the oldest waiting jobs of the hosts held; rows another replica is claiming at
/// the same moment are skipped, never waited for.
const CLAIM: &str = "
UPDATE ezt_jobs j SET owner = $1
FROM (
    SELECT w.id FROM ezt_jobs w JOIN ezt_hosts h ON h.host = w.host
    WHERE w.owner IS NULL AND NOT w.settled AND h.owner = $1
    ORDER BY w.serial
    LIMIT $2
    FOR UPDATE OF w SKIP LOCKED
) picked
WHERE j.id = picked.id
RETURNING j.id, j.key, j.host, j.accepted_at_ms, j.status, j.submission, j.settled, j.finished_at_ms, j.progress,
    j.serial";

const SHARE_PACE: &str = "
INSERT INTO ezt_hosts (host, rps, max_concurrent) VALUES ($1, $2, $3)
ON CONFLICT (host) DO UPDATE SET rps = EXCLUDED.rps, max_concurrent = EXCLUDED.max_concurrent";

const RELEASE: &str = "
WITH me AS (DELETE FROM ezt_replicas WHERE id = $1),
jobs AS (UPDATE ezt_jobs SET owner = NULL WHERE owner = $1 AND NOT settled)
UPDATE ezt_hosts SET owner = NULL WHERE owner = $1";

/// This instance as a replica.
#[derive(Debug)]
pub(super) struct Replica {
    /// Unique per instance: a restarted engine is a new replica, and takes its old
    /// jobs over like any other once the old lease has expired (or was released).
    pub(super) id: String,
    registered: AtomicBool,
    hosts: Mutex<HashSet<String>>,
}

impl Replica {
    pub(super) fn new() -> Self {
        let id = format!("r{}-{:016x}", std::process::id(), fastrand::u64(..));
        Self { id, registered: AtomicBool::new(false), hosts: Mutex::new(HashSet::new()) }
    }

    /// After a save that changed nothing: an error when another replica holds the job
    /// (this one must not overwrite its progress), nothing when the job is gone.
    pub(super) async fn check_holder(&self, client: &Client, job_id: &str) -> Result<(), StoreError> {
        let row = client
            .query_opt("SELECT owner FROM ezt_jobs WHERE id = $1", &[&job_id])
            .await
            .map_err(sql_error("reading a job's holder"))?;
        match row
            .map(|row| row.try_get::<_, Option<String>>(0))
            .transpose()
            .map_err(sql_error("reading a job's holder"))?
        {
            Some(Some(holder)) if holder != self.id => {
                Err(StoreError::new(format!("postgres: job {job_id} is held by replica {holder}, not by this one")))
            }
            _ => Ok(()),
        }
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

impl Replication for PostgresStore {
    fn renew(&self, lease: Duration) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let replica = &self.replica;
            let held = if replica.registered.load(Ordering::Acquire) {
                client
                    .execute(RENEW, &[&replica.id, &lease_ms(lease)])
                    .await
                    .map_err(sql_error("renewing the lease"))?
                    == 1
            } else {
                client.execute(REGISTER, &[&replica.id, &lease_ms(lease)]).await.map_err(sql_error("registering"))?;
                replica.registered.store(true, Ordering::Release);
                true
            };
            if !held {
                lock(&replica.hosts).clear();
                return Ok(false);
            }
            let reaped = client.query_one(REAP, &[]).await.map_err(sql_error("releasing expired replicas"))?;
            let (replicas, jobs): (i64, i64) =
                (reaped.try_get(0).map_err(sql_error("reaping"))?, reaped.try_get(1).map_err(sql_error("reaping"))?);
            if replicas > 0 {
                tracing::warn!(replicas, jobs, "released the hosts and jobs of replicas whose lease expired");
            }
            Ok(true)
        })
    }

    fn claim(&self, limit: usize) -> StoreFuture<'_, Vec<StoredJob>> {
        Box::pin(async move {
            let client = self.client().await?;
            let replica = &self.replica;
            let taken = client.query(TAKE_HOSTS, &[&replica.id]).await.map_err(sql_error("taking hosts"))?;
            if !taken.is_empty() {
                let mut hosts = lock(&replica.hosts);
                for row in &taken {
                    hosts.insert(row.try_get(0).map_err(sql_error("reading a host"))?);
                }
            }
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = client.query(CLAIM, &[&replica.id, &limit]).await.map_err(sql_error("claiming jobs"))?;
            let mut claimed = rows
                .iter()
                .map(|row| Ok((row.try_get::<_, i64>(9).map_err(sql_error("reading a job row"))?, job_from_row(row)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            // Oldest first, as queued (`RETURNING` keeps no order).
            claimed.sort_unstable_by_key(|(serial, _)| *serial);
            Ok(claimed.into_iter().map(|(_, job)| job).collect())
        })
    }

    fn holds_host(&self, host: &str) -> bool {
        lock(&self.replica.hosts).contains(host)
    }

    fn share_pace<'a>(&'a self, host: &'a str, pace: Pace) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            let max = i32::try_from(pace.max_concurrent()).unwrap_or(i32::MAX);
            client.execute(SHARE_PACE, &[&host, &pace.rps(), &max]).await.map_err(sql_error("saving a pace"))?;
            Ok(())
        })
    }

    fn shared_paces(&self) -> StoreFuture<'_, Vec<(String, Pace)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query("SELECT host, rps, max_concurrent FROM ezt_hosts WHERE rps IS NOT NULL", &[])
                .await
                .map_err(sql_error("reading the paces"))?;
            let mut paces = Vec::with_capacity(rows.len());
            for row in &rows {
                let read = || sql_error("reading a pace");
                let (host, rps, max): (String, f64, Option<i32>) =
                    (row.try_get(0).map_err(read())?, row.try_get(1).map_err(read())?, row.try_get(2).map_err(read())?);
                let max = max.and_then(|max| u32::try_from(max).ok()).unwrap_or(1);
                // A row no engine of this version wrote is skipped, not trusted.
                if let Ok(pace) = Pace::new(rps, max) {
                    paces.push((host, pace));
                }
            }
            Ok(paces)
        })
    }

    fn release(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client.execute(RELEASE, &[&self.replica.id]).await.map_err(sql_error("releasing the lease"))?;
            lock(&self.replica.hosts).clear();
            Ok(())
        })
    }
}
