//! Inserts in batches: one statement, so one commit (one WAL flush), for every submission
//! waiting when a writer is free.
//!
//! Each of a few writers, on its own connection, takes what is queued (at most
//! [`MAX_BATCH`], one row per key), binds and stores it all with one `INSERT ... SELECT
//! FROM unnest(...)`, and answers each caller whether its job was stored. A job that was
//! not (its key is bound, or a second one with the same key in the batch) goes through
//! the one-job path, which tells a live duplicate from an expired binding.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::Client;

use super::{connect, sql_error};
use crate::store::{StoreError, StoredJob, unix_ms};

/// Most jobs in one statement.
const MAX_BATCH: usize = 512;
/// Writers, each with its connection: batches in flight at once.
const WRITERS: usize = 4;
/// Submissions waiting for a writer before callers wait to queue theirs.
const QUEUE: usize = 8_192;

const INSERT_BATCH: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bool[], $6::bigint[], $7::bytea[],
                         $8::bigint[], $10::bigint[], $11::text[])
        AS i(key, id, host, submission, settled, finished_at_ms, progress, bound_at_ms, accepted_at_ms, status)
), bound AS (
    INSERT INTO ezt_bindings (key, job_id, bound_at_ms)
    SELECT key, id, bound_at_ms FROM input
    ON CONFLICT (key) DO UPDATE SET job_id = EXCLUDED.job_id, bound_at_ms = EXCLUDED.bound_at_ms
        WHERE ezt_bindings.bound_at_ms <= EXCLUDED.bound_at_ms - $9
    RETURNING job_id
)
INSERT INTO ezt_jobs (id, key, host, accepted_at_ms, status, submission, settled, finished_at_ms, progress)
SELECT i.id, i.key, i.host, i.accepted_at_ms, i.status, i.submission, i.settled, i.finished_at_ms, i.progress
FROM input i JOIN bound b ON b.job_id = i.id
RETURNING id";

struct Pending {
    job: StoredJob,
    ttl: Duration,
    now: SystemTime,
    /// `true`: stored, and its key bound to it.
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue of inserts and its writers (which stop when it is dropped).
#[derive(Debug)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    pub(super) fn start(config: &tokio_postgres::Config) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        let pending = Arc::new(Mutex::new(pending));
        for _ in 0..WRITERS {
            tokio::spawn(write(config.clone(), Arc::clone(&pending)));
        }
        Self { queue }
    }

    /// Stores `job` and binds its key in the next batch; `false` when it was not (see the
    /// module docs).
    pub(super) async fn insert(&self, job: &StoredJob, ttl: Duration, now: SystemTime) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { job: job.clone(), ttl, now, reply };
        self.queue.send(pending).await.map_err(|_| StoreError::new("postgres: the insert writers stopped"))?;
        answer.await.map_err(|_| StoreError::new("postgres: the insert writers stopped"))?
    }
}

async fn write(config: tokio_postgres::Config, pending: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut client: Option<Client> = None;
    loop {
        let batch = {
            let mut pending = pending.lock().await;
            let Some(first) = pending.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match pending.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        let (batch, aside) = one_per_key(batch);
        for pending in aside {
            let _ = pending.reply.send(Ok(false));
        }
        let connected = match client.take().filter(|client| !client.is_closed()) {
            Some(client) => Ok(client),
            None => connect(&config).await,
        };
        match connected {
            Ok(connected) => {
                let stored = run(&connected, &batch).await;
                answer(batch, stored);
                client = Some(connected);
            }
            Err(err) => answer(batch, Err(err)),
        }
    }
}

/// The batch with one job per key and one TTL (a statement binds each key once), sorted
/// by key, and the rest, for the one-job path.
fn one_per_key(batch: Vec<Pending>) -> (Vec<Pending>, Vec<Pending>) {
    let ttl = batch.first().map(|pending| pending.ttl);
    let mut keys = HashSet::with_capacity(batch.len());
    let (mut batch, aside): (Vec<Pending>, Vec<Pending>) =
        batch.into_iter().partition(|pending| Some(pending.ttl) == ttl && keys.insert(pending.job.key.clone()));
    // Every batch locks its keys in one order: two batches never wait for each other's.
    batch.sort_unstable_by(|a, b| a.job.key.cmp(&b.job.key));
    (batch, aside)
}

async fn run(client: &Client, batch: &[Pending]) -> Result<HashSet<String>, StoreError> {
    let ttl = batch.first().map_or(0, |pending| i64::try_from(pending.ttl.as_millis()).unwrap_or(i64::MAX));
    let column = |field: fn(&Pending) -> &str| batch.iter().map(field).collect::<Vec<_>>();
    let (keys, ids, hosts) = (column(|p| &p.job.key), column(|p| &p.job.id), column(|p| &p.job.host));
    let submissions: Vec<&[u8]> = batch.iter().map(|p| &p.job.submission[..]).collect();
    let settled: Vec<bool> = batch.iter().map(|p| p.job.progress.settled).collect();
    let finished: Vec<Option<i64>> = batch.iter().map(|p| p.job.progress.finished_at.map(unix_ms)).collect();
    let progress: Vec<&[u8]> = batch.iter().map(|p| &p.job.progress.document[..]).collect();
    let bound_at: Vec<i64> = batch.iter().map(|p| unix_ms(p.now)).collect();
    let accepted_at: Vec<i64> = batch.iter().map(|p| unix_ms(p.job.accepted_at)).collect();
    let statuses: Vec<&str> = batch.iter().map(|p| p.job.progress.status.as_str()).collect();
    let rows = client
        .query(
            INSERT_BATCH,
            &[
                &keys,
                &ids,
                &hosts,
                &submissions,
                &settled,
                &finished,
                &progress,
                &bound_at,
                &ttl,
                &accepted_at,
                &statuses,
            ],
        )
        .await
        .map_err(sql_error("inserting jobs"))?;
    rows.iter().map(|row| row.try_get::<_, String>(0).map_err(sql_error("reading the insert's answer"))).collect()
}

fn answer(batch: Vec<Pending>, stored: Result<HashSet<String>, StoreError>) {
    match stored {
        Ok(stored) => {
            for pending in batch {
                let inserted = stored.contains(&pending.job.id);
                let _ = pending.reply.send(Ok(inserted));
            }
        }
        Err(err) => {
            let message = ezthrottle_core::ErrorChain(&err).to_string();
            for pending in batch {
                let _ = pending.reply.send(Err(StoreError::new(message.clone())));
            }
        }
    }
}
