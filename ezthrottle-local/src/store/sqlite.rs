//! The durable store: one SQLite file in WAL mode, one writer thread with group commit.
//!
//! Every write goes to the writer thread, which takes all the writes waiting (up to
//! [`MAX_BATCH`]), runs them in one transaction and answers each only after the commit:
//! one fsync acknowledges a whole batch. Reads run on a second connection (WAL lets it
//! read while the writer writes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::oneshot;

use super::{
    Insert, JobQuery, JobStatus, JobStore, StoreError, StoreFuture, StoredJob, StoredProgress, before, binding_is_live,
    from_unix_ms, status_from_column, unix_ms,
};
use crate::util::lock;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 1024;
/// The schema this version writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    accepted_at_ms INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'queued',
    submission BLOB NOT NULL,
    settled INTEGER NOT NULL,
    finished_at_ms INTEGER,
    progress BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_unsettled ON jobs (settled) WHERE settled = 0;
CREATE TABLE IF NOT EXISTS bindings (
    key TEXT PRIMARY KEY NOT NULL,
    job_id TEXT NOT NULL,
    bound_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_secrets (
    tenant TEXT PRIMARY KEY NOT NULL,
    document BLOB NOT NULL
);
";

const JOB_COLUMNS: &str = "id, key, host, accepted_at_ms, status, submission, settled, finished_at_ms, progress";

enum Write {
    Insert {
        job: StoredJob,
        ttl: Duration,
        now: SystemTime,
        reply: oneshot::Sender<Result<Insert, StoreError>>,
    },
    Save {
        job_id: String,
        progress: StoredProgress,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SaveIf {
        job_id: String,
        progress: StoredProgress,
        only_from: Vec<JobStatus>,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    Sweep {
        now: SystemTime,
        ttl: Duration,
        retention: Duration,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    Secrets {
        tenant: String,
        document: Bytes,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Jobs in one SQLite file (WAL, `synchronous = FULL`): a submission is answered only
/// after the transaction holding it is on disk. The binary's default
/// ([`StoreLocation::binary_default`](super::StoreLocation::binary_default)).
///
/// The file holds every job as submitted, credentials included: on Unix it is created
/// readable and writable by its owner only.
pub struct SqliteStore {
    path: PathBuf,
    writes: mpsc::Sender<Write>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn sql_error(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |err| StoreError::with_source(format!("sqlite: {what}"), err)
}

impl SqliteStore {
    /// Opens the store in `path`, creating the file and its schema when missing.
    ///
    /// # Errors
    ///
    /// [`StoreError`]: the file cannot be opened or created, or it holds a schema newer
    /// than this version knows.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)?;
        let writer = Connection::open(&path).map_err(sql_error("opening the file"))?;
        writer.busy_timeout(Duration::from_secs(5)).map_err(sql_error("setting the busy timeout"))?;
        writer.pragma_update(None, "journal_mode", "WAL").map_err(sql_error("switching to WAL"))?;
        writer.pragma_update(None, "synchronous", "FULL").map_err(sql_error("setting synchronous"))?;
        let version: i64 = writer
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql_error("reading the schema"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::new(format!(
                "{} has schema version {version}; this engine knows {SCHEMA_VERSION}",
                path.display()
            )));
        }
        writer.execute_batch(SCHEMA).map_err(sql_error("creating the schema"))?;
        if version == 1 {
            // Version 2 keeps each job's host, acceptance and status (and adds
            // `webhook_secrets`, created above).
            writer
                .execute_batch(
                    "ALTER TABLE jobs ADD COLUMN host TEXT NOT NULL DEFAULT '';
                     ALTER TABLE jobs ADD COLUMN accepted_at_ms INTEGER NOT NULL DEFAULT 0;
                     ALTER TABLE jobs ADD COLUMN status TEXT NOT NULL DEFAULT 'queued';",
                )
                .map_err(sql_error("migrating the schema to version 2"))?;
        }
        writer.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql_error("writing the schema version"))?;
        let reader = Connection::open(&path).map_err(sql_error("opening the reader"))?;
        reader.busy_timeout(Duration::from_secs(5)).map_err(sql_error("setting the busy timeout"))?;
        let (writes, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("ezthrottle-sqlite-writer".into())
            .spawn(move || write_loop(writer, &queue))
            .map_err(|err| StoreError::with_source("starting the writer thread", err))?;
        Ok(Self { path, writes, reader: Arc::new(Mutex::new(reader)) })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> StoreFuture<'_, T> {
        let (reply, answer) = oneshot::channel();
        let sent = self.writes.send(make(reply));
        Box::pin(async move {
            if sent.is_err() {
                return Err(StoreError::new("sqlite: the writer thread stopped"));
            }
            answer.await.map_err(|_| StoreError::new("sqlite: the writer thread stopped"))?
        })
    }

    fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let reader = Arc::clone(&self.reader);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || query(&lock(&reader)))
                .await
                .map_err(|err| StoreError::with_source("sqlite: the reading task failed", err))?
        })
    }
}

/// Creates the file readable by its owner only (it holds credentials), if missing.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .map_err(|err| StoreError::with_source(format!("sqlite: cannot open {}", path.display()), err))
}

fn write_loop(mut connection: Connection, queue: &mpsc::Receiver<Write>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        commit(&mut connection, batch);
    }
}

/// The answer of one write, sent once the transaction commits (or with the reason it did
/// not).
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

fn reply_with<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    answer: Result<T, StoreError>,
) -> Reply {
    Box::new(move |failed: Option<&str>| {
        // A caller that went away (a dropped request) no longer needs its answer.
        drop(reply.send(match failed {
            None => answer,
            Some(reason) => Err(StoreError::new(reason)),
        }));
    })
}

fn run(transaction: &rusqlite::Transaction<'_>, write: Write) -> Reply {
    match write {
        Write::Insert { job, ttl, now, reply } => reply_with(reply, insert(transaction, &job, ttl, now)),
        Write::Save { job_id, progress, reply } => reply_with(reply, save(transaction, &job_id, &progress)),
        Write::SaveIf { job_id, progress, only_from, reply } => {
            reply_with(reply, save_if(transaction, &job_id, &progress, Some(&only_from)))
        }
        Write::Sweep { now, ttl, retention, reply } => reply_with(reply, sweep(transaction, now, ttl, retention)),
        Write::Secrets { tenant, document, reply } => reply_with(reply, save_secrets(transaction, &tenant, &document)),
    }
}

/// The reply of a write that never ran (the transaction did not begin): its placeholder
/// answer is never sent, the failure is.
fn refuse(write: Write) -> Reply {
    match write {
        Write::Insert { reply, .. } => reply_with(reply, Ok(Insert::Inserted)),
        Write::Save { reply, .. } => reply_with(reply, Ok(())),
        Write::SaveIf { reply, .. } => reply_with(reply, Ok(false)),
        Write::Sweep { reply, .. } => reply_with(reply, Ok(0)),
        Write::Secrets { reply, .. } => reply_with(reply, Ok(())),
    }
}

fn commit(connection: &mut Connection, batch: Vec<Write>) {
    let (replies, committed): (Vec<Reply>, Result<(), String>) = match connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    {
        Ok(transaction) => {
            let replies = batch.into_iter().map(|write| run(&transaction, write)).collect();
            (replies, transaction.commit().map_err(|err| format!("sqlite: committing: {err}")))
        }
        Err(err) => (batch.into_iter().map(refuse).collect(), Err(format!("sqlite: beginning a transaction: {err}"))),
    };
    let failed = committed.err();
    for reply in replies {
        reply(failed.as_deref());
    }
}

fn job_from_row(row: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<StoredJob> {
    Ok(StoredJob {
        id: row.get(offset)?,
        key: row.get(offset + 1)?,
        host: row.get(offset + 2)?,
        accepted_at: from_unix_ms(row.get(offset + 3)?),
        submission: Bytes::from(row.get::<_, Vec<u8>>(offset + 5)?),
        progress: StoredProgress {
            status: status_from_column(&row.get::<_, String>(offset + 4)?),
            settled: row.get::<_, i64>(offset + 6)? != 0,
            finished_at: row.get::<_, Option<i64>>(offset + 7)?.map(from_unix_ms),
            document: Bytes::from(row.get::<_, Vec<u8>>(offset + 8)?),
        },
    })
}

fn bound_job(connection: &Connection, key: &str) -> Result<Option<(SystemTime, StoredJob)>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT b.bound_at_ms, j.id, j.key, j.host, j.accepted_at_ms, j.status, j.submission, j.settled, \
             j.finished_at_ms, j.progress \
             FROM bindings b JOIN jobs j ON j.id = b.job_id WHERE b.key = ?1",
        )
        .map_err(sql_error("preparing a lookup"))?;
    statement
        .query_row(params![key], |row| Ok((from_unix_ms(row.get(0)?), job_from_row(row, 1)?)))
        .optional()
        .map_err(sql_error("looking a key up"))
}

fn insert(connection: &Connection, job: &StoredJob, ttl: Duration, now: SystemTime) -> Result<Insert, StoreError> {
    if let Some((bound_at, existing)) = bound_job(connection, &job.key)?
        && binding_is_live(bound_at, now, ttl)
    {
        return Ok(Insert::Duplicate(existing));
    }
    connection
        .prepare_cached(
            "INSERT INTO jobs (id, key, host, accepted_at_ms, status, submission, settled, finished_at_ms, progress) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                job.id,
                job.key,
                job.host,
                unix_ms(job.accepted_at),
                job.progress.status.as_str(),
                &job.submission[..],
                i64::from(job.progress.settled),
                job.progress.finished_at.map(unix_ms),
                &job.progress.document[..],
            ])
        })
        .map_err(sql_error("inserting a job"))?;
    connection
        .prepare_cached("INSERT OR REPLACE INTO bindings (key, job_id, bound_at_ms) VALUES (?1, ?2, ?3)")
        .and_then(|mut statement| statement.execute(params![job.key, job.id, unix_ms(now)]))
        .map_err(sql_error("binding a key"))?;
    Ok(Insert::Inserted)
}

fn save_secrets(connection: &Connection, tenant: &str, document: &[u8]) -> Result<(), StoreError> {
    connection
        .prepare_cached("INSERT OR REPLACE INTO webhook_secrets (tenant, document) VALUES (?1, ?2)")
        .and_then(|mut statement| statement.execute(params![tenant, document]))
        .map(drop)
        .map_err(sql_error("saving webhook secrets"))
}

fn save(connection: &Connection, job_id: &str, progress: &StoredProgress) -> Result<(), StoreError> {
    save_if(connection, job_id, progress, None).map(drop)
}

/// Saves `progress` if the job's status is one of `only_from` (any, for `None`); answers
/// whether a row changed.
fn save_if(
    connection: &Connection,
    job_id: &str,
    progress: &StoredProgress,
    only_from: Option<&[JobStatus]>,
) -> Result<bool, StoreError> {
    if let Some(only_from) = only_from {
        let status: Option<String> = connection
            .prepare_cached("SELECT status FROM jobs WHERE id = ?1")
            .and_then(|mut statement| statement.query_row(params![job_id], |row| row.get(0)).optional())
            .map_err(sql_error("reading a job's status"))?;
        // Read and written in the writer's transaction: nothing changes in between.
        if !status.is_some_and(|status| only_from.contains(&status_from_column(&status))) {
            return Ok(false);
        }
    }
    connection
        .prepare_cached("UPDATE jobs SET status = ?2, settled = ?3, finished_at_ms = ?4, progress = ?5 WHERE id = ?1")
        .and_then(|mut statement| {
            statement.execute(params![
                job_id,
                progress.status.as_str(),
                i64::from(progress.settled),
                progress.finished_at.map(unix_ms),
                &progress.document[..],
            ])
        })
        .map(|changed| changed > 0)
        .map_err(sql_error("saving progress"))
}

fn sweep(connection: &Connection, now: SystemTime, ttl: Duration, retention: Duration) -> Result<usize, StoreError> {
    let keys = connection
        .execute("DELETE FROM bindings WHERE bound_at_ms <= ?1", params![unix_ms(before(now, ttl))])
        .map_err(sql_error("sweeping keys"))?;
    let jobs = connection
        .execute("DELETE FROM jobs WHERE settled = 1 AND finished_at_ms < ?1", params![unix_ms(before(now, retention))])
        .map_err(sql_error("sweeping jobs"))?;
    Ok(keys + jobs)
}

impl JobStore for SqliteStore {
    fn insert_if_absent<'a>(&'a self, job: &'a StoredJob, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Insert> {
        self.write(|reply| Write::Insert { job: job.clone(), ttl, now, reply })
    }

    fn find<'a>(&'a self, key: &'a str, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Option<StoredJob>> {
        let key = key.to_owned();
        self.read(move |connection| {
            Ok(bound_job(connection, &key)?
                .filter(|(bound_at, _)| binding_is_live(*bound_at, now, ttl))
                .map(|(_, job)| job))
        })
    }

    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<StoredJob>> {
        let job_id = job_id.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
                .and_then(|mut statement| statement.query_row(params![job_id], |row| job_from_row(row, 0)).optional())
                .map_err(sql_error("reading a job"))
        })
    }

    fn save<'a>(&'a self, job_id: &'a str, progress: &'a StoredProgress) -> StoreFuture<'a, ()> {
        self.write(|reply| Write::Save { job_id: job_id.to_owned(), progress: progress.clone(), reply })
    }

    fn save_if<'a>(
        &'a self,
        job_id: &'a str,
        progress: &'a StoredProgress,
        only_from: &'a [JobStatus],
    ) -> StoreFuture<'a, bool> {
        let (job_id, progress, only_from) = (job_id.to_owned(), progress.clone(), only_from.to_vec());
        self.write(move |reply| Write::SaveIf { job_id, progress, only_from, reply })
    }

    fn list<'a>(&'a self, query: &'a JobQuery) -> StoreFuture<'a, Vec<StoredJob>> {
        let query = query.clone();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE substr(key, 1, length(?1)) = ?1 AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR host = ?3) AND accepted_at_ms >= ?4 AND accepted_at_ms < ?5
                       AND (?6 IS NULL OR id > ?6)
                     ORDER BY id LIMIT ?7"
                ))
                .map_err(sql_error("preparing the list query"))?;
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows = statement
                .query_map(
                    params![
                        query.key_prefix,
                        query.status.map(JobStatus::as_str),
                        query.host,
                        unix_ms(query.accepted.start),
                        unix_ms(query.accepted.end),
                        query.after_id,
                        limit,
                    ],
                    |row| job_from_row(row, 0),
                )
                .map_err(sql_error("listing jobs"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql_error("listing jobs"))
        })
    }

    fn unsettled(&self) -> StoreFuture<'_, Vec<StoredJob>> {
        self.read(|connection| {
            let mut statement = connection
                .prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE settled = 0"))
                .map_err(sql_error("preparing the recovery query"))?;
            let rows = statement.query_map([], |row| job_from_row(row, 0)).map_err(sql_error("reading jobs"))?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql_error("reading jobs"))
        })
    }

    fn sweep(&self, now: SystemTime, ttl: Duration, retention: Duration) -> StoreFuture<'_, usize> {
        self.write(|reply| Write::Sweep { now, ttl, retention, reply })
    }

    fn count(&self) -> StoreFuture<'_, usize> {
        self.read(|connection| {
            let count: i64 = connection
                .query_row("SELECT count(*) FROM jobs", [], |row| row.get(0))
                .map_err(sql_error("counting jobs"))?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    fn webhook_secrets<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        let tenant = tenant.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT document FROM webhook_secrets WHERE tenant = ?1")
                .and_then(|mut statement| {
                    statement.query_row(params![tenant], |row| row.get::<_, Vec<u8>>(0)).optional()
                })
                .map(|document| document.map(Bytes::from))
                .map_err(sql_error("reading webhook secrets"))
        })
    }

    fn save_webhook_secrets<'a>(&'a self, tenant: &'a str, document: &'a Bytes) -> StoreFuture<'a, ()> {
        let (tenant, document) = (tenant.to_owned(), document.clone());
        self.write(move |reply| Write::Secrets { tenant, document, reply })
    }
}
