//! Jobs in PostgreSQL: the store several engines can share.
//!
//! Every call is one statement, so a connection is shared by many callers at once
//! (tokio-postgres pipelines them) and needs no transaction: binding a key and storing
//! its job is one `INSERT ... ON CONFLICT ... WHERE` with a data-modifying CTE, which
//! PostgreSQL makes atomic against concurrent inserts of the same key on any connection.
//! The replicas' leases and claims are in `replicas.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};

mod batch;
mod replicas;
mod schema;

use super::{
    Insert, JobQuery, JobStatus, JobStore, Replication, StoreError, StoreFuture, StoredJob, StoredProgress, before,
    from_unix_ms, status_from_column, unix_ms,
};

/// Connections kept open by default.
const DEFAULT_CONNECTIONS: usize = 4;

const INSERT: &str = "
WITH bound AS (
    INSERT INTO ezt_bindings (key, job_id, bound_at_ms) VALUES ($1, $2, $3)
    ON CONFLICT (key) DO UPDATE SET job_id = EXCLUDED.job_id, bound_at_ms = EXCLUDED.bound_at_ms
        WHERE ezt_bindings.bound_at_ms <= $4
    RETURNING job_id
), stored AS (
    INSERT INTO ezt_jobs (id, key, host, accepted_at_ms, status, submission, settled, finished_at_ms, progress)
    SELECT $2, $1, $9, $10, $11, $5, $6, $7, $8 FROM bound
    RETURNING id
)
SELECT count(*) FROM stored";

const FIND: &str = "
SELECT j.id, j.key, j.host, j.accepted_at_ms, j.status, j.submission, j.settled, j.finished_at_ms, j.progress
FROM ezt_bindings b JOIN ezt_jobs j ON j.id = b.job_id
WHERE b.key = $1 AND b.bound_at_ms > $2";

/// A job's progress is saved by the replica that claimed it, or while nobody has.
const SAVE: &str = "
UPDATE ezt_jobs SET settled = $2, finished_at_ms = $3, progress = $4, status = $6
WHERE id = $1 AND (owner IS NULL OR owner = $5)";

/// A conditional save checks the status, not the holder: a cancel made on any replica
/// and the holder's dispatch exclude each other by it. A finished job it makes unsettled
/// again (a redelivery) is released, for the replica running its host to settle.
const SAVE_IF: &str = "
UPDATE ezt_jobs SET settled = $2, finished_at_ms = $3, progress = $4, status = $5,
    owner = CASE WHEN $5 IN ('success', 'failed') AND NOT $2 THEN NULL ELSE owner END
WHERE id = $1 AND status = ANY($6)";

const LIST: &str = "
SELECT id, key, host, accepted_at_ms, status, submission, settled, finished_at_ms, progress FROM ezt_jobs
WHERE left(key, length($1)) = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR host = $3)
  AND accepted_at_ms >= $4 AND accepted_at_ms < $5 AND ($6::text IS NULL OR id > $6)
ORDER BY id LIMIT $7";

const JOB_COLUMNS: &str = "id, key, host, accepted_at_ms, status, submission, settled, finished_at_ms, progress";

/// Jobs in a PostgreSQL database (`--store postgres://...`), shared by every engine that
/// opens it: each instance is one replica ([`Replication`]: leases, hosts and jobs claimed
/// with `FOR UPDATE SKIP LOCKED`). The schema (`ezt_*` tables) is created or migrated at
/// open, under an advisory lock, so several engines may start at once. Connections use no
/// TLS: keep the database on a trusted network, or on loopback.
pub struct PostgresStore {
    config: tokio_postgres::Config,
    connections: Vec<Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
    replica: replicas::Replica,
    inserts: batch::Batcher,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the password: show where, not how.
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("connections", &self.connections.len())
            .field("replica", &self.replica.id)
            .finish_non_exhaustive()
    }
}

fn sql_error(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |err| StoreError::with_source(format!("postgres: {what}"), err)
}

fn job_from_row(row: &Row) -> Result<StoredJob, StoreError> {
    let read = || sql_error("reading a job row");
    Ok(StoredJob {
        id: row.try_get(0).map_err(read())?,
        key: row.try_get(1).map_err(read())?,
        host: row.try_get(2).map_err(read())?,
        accepted_at: from_unix_ms(row.try_get(3).map_err(read())?),
        submission: Bytes::from(row.try_get::<_, Vec<u8>>(5).map_err(read())?),
        progress: StoredProgress {
            status: status_from_column(row.try_get(4).map_err(read())?),
            settled: row.try_get(6).map_err(read())?,
            finished_at: row.try_get::<_, Option<i64>>(7).map_err(read())?.map(from_unix_ms),
            document: Bytes::from(row.try_get::<_, Vec<u8>>(8).map_err(read())?),
        },
    })
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(sql_error("connecting"))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/dbname`), creates or
    /// migrates the schema, and keeps 4 connections (and 4 more that insert submissions in batches).
    ///
    /// # Errors
    ///
    /// [`StoreError`]: the URL is not one, the server cannot be reached, or the database
    /// holds a schema newer than this version knows.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::with_source("postgres: the store URL is not a PostgreSQL URL", err))?;
        let mut client = connect(&config).await?;
        schema::migrate(&mut client).await?;
        let mut connections = vec![Mutex::new(Some(Arc::new(client)))];
        connections.extend((1..DEFAULT_CONNECTIONS).map(|_| Mutex::new(None)));
        let inserts = batch::Batcher::start(&config);
        Ok(Self { config, connections, next: AtomicUsize::new(0), replica: replicas::Replica::new(), inserts })
    }

    /// A connection, the next in turn; a closed one is opened again.
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len().max(1);
        let Some(slot) = self.connections.get(index) else {
            return Err(StoreError::new("postgres: no connection slot"));
        };
        let mut slot = slot.lock().await;
        match slot.as_ref() {
            Some(client) if !client.is_closed() => Ok(Arc::clone(client)),
            _ => {
                let client = Arc::new(connect(&self.config).await?);
                *slot = Some(Arc::clone(&client));
                Ok(client)
            }
        }
    }

    async fn find_live(&self, key: &str, ttl: Duration, now: SystemTime) -> Result<Option<StoredJob>, StoreError> {
        let client = self.client().await?;
        let row =
            client.query_opt(FIND, &[&key, &unix_ms(before(now, ttl))]).await.map_err(sql_error("looking a key up"))?;
        row.as_ref().map(job_from_row).transpose()
    }
}

impl JobStore for PostgresStore {
    fn insert_if_absent<'a>(&'a self, job: &'a StoredJob, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Insert> {
        Box::pin(async move {
            if self.inserts.insert(job, ttl, now).await? {
                return Ok(Insert::Inserted);
            }
            // A live binding that expires between the insert and the lookup: try again.
            for _ in 0..3 {
                let client = self.client().await?;
                let finished = job.progress.finished_at.map(unix_ms);
                let stored: i64 = client
                    .query_one(
                        INSERT,
                        &[
                            &job.key,
                            &job.id,
                            &unix_ms(now),
                            &unix_ms(before(now, ttl)),
                            &&job.submission[..],
                            &job.progress.settled,
                            &finished,
                            &&job.progress.document[..],
                            &job.host,
                            &unix_ms(job.accepted_at),
                            &job.progress.status.as_str(),
                        ],
                    )
                    .await
                    .map_err(sql_error("inserting a job"))?
                    .try_get(0)
                    .map_err(sql_error("reading the insert's answer"))?;
                if stored > 0 {
                    return Ok(Insert::Inserted);
                }
                if let Some(existing) = self.find_live(&job.key, ttl, now).await? {
                    return Ok(Insert::Duplicate(existing));
                }
            }
            Err(StoreError::new("postgres: a key kept changing hands while binding it"))
        })
    }

    fn find<'a>(&'a self, key: &'a str, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Option<StoredJob>> {
        Box::pin(self.find_live(key, ttl, now))
    }

    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<StoredJob>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(&format!("SELECT {JOB_COLUMNS} FROM ezt_jobs WHERE id = $1"), &[&job_id])
                .await
                .map_err(sql_error("reading a job"))?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn save<'a>(&'a self, job_id: &'a str, progress: &'a StoredProgress) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            let finished = progress.finished_at.map(unix_ms);
            let saved = client
                .execute(
                    SAVE,
                    &[
                        &job_id,
                        &progress.settled,
                        &finished,
                        &&progress.document[..],
                        &self.replica.id,
                        &progress.status.as_str(),
                    ],
                )
                .await
                .map_err(sql_error("saving progress"))?;
            if saved == 0 {
                return self.replica.check_holder(&client, job_id).await;
            }
            Ok(())
        })
    }

    fn save_if<'a>(
        &'a self,
        job_id: &'a str,
        progress: &'a StoredProgress,
        only_from: &'a [JobStatus],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let finished = progress.finished_at.map(unix_ms);
            let from: Vec<&str> = only_from.iter().map(|status| status.as_str()).collect();
            let saved = client
                .execute(
                    SAVE_IF,
                    &[&job_id, &progress.settled, &finished, &&progress.document[..], &progress.status.as_str(), &from],
                )
                .await
                .map_err(sql_error("saving progress"))?;
            Ok(saved > 0)
        })
    }

    fn list<'a>(&'a self, query: &'a JobQuery) -> StoreFuture<'a, Vec<StoredJob>> {
        Box::pin(async move {
            let client = self.client().await?;
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    LIST,
                    &[
                        &query.key_prefix,
                        &query.status.map(JobStatus::as_str),
                        &query.host,
                        &unix_ms(query.accepted.start),
                        &unix_ms(query.accepted.end),
                        &query.after_id,
                        &limit,
                    ],
                )
                .await
                .map_err(sql_error("listing jobs"))?;
            rows.iter().map(job_from_row).collect()
        })
    }

    fn unsettled(&self) -> StoreFuture<'_, Vec<StoredJob>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(&format!("SELECT {JOB_COLUMNS} FROM ezt_jobs WHERE NOT settled"), &[])
                .await
                .map_err(sql_error("reading the unsettled jobs"))?;
            rows.iter().map(job_from_row).collect()
        })
    }

    fn sweep(&self, now: SystemTime, ttl: Duration, retention: Duration) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let client = self.client().await?;
            let keys = client
                .execute("DELETE FROM ezt_bindings WHERE bound_at_ms <= $1", &[&unix_ms(before(now, ttl))])
                .await
                .map_err(sql_error("sweeping keys"))?;
            let jobs = client
                .execute(
                    "DELETE FROM ezt_jobs WHERE settled AND finished_at_ms < $1",
                    &[&unix_ms(before(now, retention))],
                )
                .await
                .map_err(sql_error("sweeping jobs"))?;
            Ok(usize::try_from(keys.saturating_add(jobs)).unwrap_or(usize::MAX))
        })
    }

    fn count(&self) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let client = self.client().await?;
            let count: i64 = client
                .query_one("SELECT count(*) FROM ezt_jobs", &[])
                .await
                .map_err(sql_error("counting jobs"))?
                .try_get(0)
                .map_err(sql_error("counting jobs"))?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    fn webhook_secrets<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT document FROM ezt_webhook_secrets WHERE tenant = $1", &[&tenant])
                .await
                .map_err(sql_error("reading webhook secrets"))?;
            row.map(|row| row.try_get::<_, Vec<u8>>(0).map(Bytes::from))
                .transpose()
                .map_err(sql_error("reading webhook secrets"))
        })
    }

    fn save_webhook_secrets<'a>(&'a self, tenant: &'a str, document: &'a Bytes) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO ezt_webhook_secrets (tenant, document) VALUES ($1, $2)
                     ON CONFLICT (tenant) DO UPDATE SET document = EXCLUDED.document",
                    &[&tenant, &&document[..]],
                )
                .await
                .map_err(sql_error("saving webhook secrets"))?;
            Ok(())
        })
    }

    fn replication(&self) -> Option<&dyn Replication> {
        Some(self)
    }
}
