//! Where jobs, their progress, their idempotency keys and the tenants' webhook secrets
//! live: the engine's one port.
//!
//! The engine keeps nothing it cannot lose outside a [`JobStore`]: a submission is answered
//! only once the store has it, every change of a job's progress is saved, and at start the
//! engine resumes every job the store reports as [unsettled](JobStore::unsettled) (on a
//! store several engines share, each resumes the jobs it [claims](Replication::claim)).
//! Lanes and timers in memory are an index of the store, rebuilt from it.
//!
//! A store keeps rows, not engine objects: a job is its id, its idempotency key, an
//! immutable submission document and a progress document ([`StoredJob`]); the documents
//! are opaque bytes the engine writes and reads. Two stores come with the crate:
//! [`MemoryStore`] (the builder's default: nothing survives the process) and
//! [`SqliteStore`] (the binary's default: durable, one file), and [`PostgresStore`] is
//! the one several engines share ([`Replication`]). A store of your own implements the
//! trait; [`conformance`] is the test suite every store must pass.

pub mod conformance;
mod location;
mod memory;
mod postgres;
mod record;
mod replication;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
pub use ezthrottle_core::protocol::JobStatus;

pub use location::{InvalidStoreLocation, StoreLocation};
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub(crate) use record::{AttemptRecord, JobRecord};
pub use replication::Replication;
pub use sqlite::SqliteStore;

/// What every [`JobStore`] method returns: a boxed future of its answer, so the trait
/// stays object-safe (`Arc<dyn JobStore>`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store could not do what it was asked (I/O, a lost connection, a corrupt row).
#[derive(Debug, thiserror::Error)]
#[error("the job store failed: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }

    /// An error saying `message`, caused by `source`.
    pub fn with_source(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { message: message.into(), source: Some(Box::new(source)) }
    }
}

/// One job as a store keeps it.
///
/// The documents hold the job as submitted, credentials included (the engine needs them
/// to run it after a restart): keep a durable store's files readable by the engine alone.
/// `Debug` shows their sizes, never their bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredJob {
    /// The job id, unique in the store.
    pub id: String,
    /// The idempotency key the job is bound to, already scoped to its tenant.
    pub key: String,
    /// The host (`host:port`) whose pace the job follows. A store shared by several
    /// engines gives each host's jobs to one of them (see [`Replication`]).
    pub host: String,
    /// When the job was accepted (what [`JobQuery::accepted`] filters on).
    pub accepted_at: SystemTime,
    /// The submission (tenant, key, the job, when it was accepted): written once.
    pub submission: Bytes,
    /// Where the job stands: replaced by every [`JobStore::save`].
    pub progress: StoredProgress,
}

/// Where a job stands, as a store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredProgress {
    /// Where the job is in its life (what [`JobQuery::status`] filters on, and
    /// [`JobStore::save_if`] checks).
    pub status: JobStatus,
    /// Nothing is left to do for the job: it finished, its children were submitted and
    /// every webhook delivery ended. An unsettled job is resumed at start.
    pub settled: bool,
    /// When the job finished, if it did ([`JobStore::sweep`] drops settled jobs finished
    /// longer ago than the retention).
    pub finished_at: Option<SystemTime>,
    /// The engine's progress document (status, attempts, answer, deliveries).
    pub document: Bytes,
}

impl std::fmt::Debug for StoredJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredJob")
            .field("id", &self.id)
            .field("host", &self.host)
            .field("submission_bytes", &self.submission.len())
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StoredProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredProgress")
            .field("status", &self.status)
            .field("settled", &self.settled)
            .field("finished_at", &self.finished_at)
            .field("document_bytes", &self.document.len())
            .finish()
    }
}

/// Which jobs [`JobStore::list`] answers: one tenant's, oldest id first, after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQuery {
    /// The tenant's key prefix (`tenant` followed by `\n`): only jobs whose key starts
    /// with it.
    pub key_prefix: String,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this host (`host:port`).
    pub host: Option<String>,
    /// Only jobs accepted in this range (start included, end excluded).
    pub accepted: std::ops::Range<SystemTime>,
    /// Only jobs whose id sorts after this one (the last id of the previous page).
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: usize,
}

impl JobQuery {
    /// Every job whose key starts with `key_prefix`, at most `limit`.
    pub fn new(key_prefix: impl Into<String>, limit: usize) -> Self {
        Self {
            key_prefix: key_prefix.into(),
            status: None,
            host: None,
            accepted: SystemTime::UNIX_EPOCH..far_future(),
            after_id: None,
            limit,
        }
    }

    /// Whether `job` is one the query asks for (the cursor and the limit aside): the
    /// reference every store's filter must agree with.
    pub fn matches(&self, job: &StoredJob) -> bool {
        job.key.starts_with(&self.key_prefix)
            && self.status.is_none_or(|status| status == job.progress.status)
            && self.host.as_ref().is_none_or(|host| *host == job.host)
            && self.accepted.contains(&job.accepted_at)
            && self.after_id.as_ref().is_none_or(|after| job.id.as_str() > after.as_str())
    }
}

/// A time later than any job's (the open end of [`JobQuery::accepted`]).
pub(crate) fn far_future() -> SystemTime {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(1 << 40)).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The answer of [`JobStore::insert_if_absent`].
#[derive(Debug, Clone)]
pub enum Insert {
    /// The key was free (or its binding expired): the job is stored and the key bound to it.
    Inserted,
    /// A live binding exists: this is the job the key is bound to. Nothing was stored.
    Duplicate(StoredJob),
}

/// Storage for jobs, their progress and their idempotency keys: the engine's one port.
///
/// The contract (checked by [`conformance::check`]):
/// - [`insert_if_absent`](Self::insert_if_absent) is atomic: of any number of concurrent
///   calls with the same key, exactly one stores its job, the others get it as
///   [`Insert::Duplicate`]. When it returns `Ok`, the job is as durable as the store
///   promises to be: the engine answers the submission only then.
/// - A binding is live for `ttl` after it was made; an expired one is replaced by the
///   next insert with its key (the old job stays, under its id).
/// - [`save`](Self::save) replaces a job's progress; [`get`](Self::get) returns the last
///   one saved.
/// - [`unsettled`](Self::unsettled) returns every job whose progress is not settled.
/// - [`webhook_secrets`](Self::webhook_secrets) returns the document last saved for the
///   tenant by [`save_webhook_secrets`](Self::save_webhook_secrets).
pub trait JobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Binds `job.key` to `job` and stores `job`, unless a binding made less than `ttl`
    /// before `now` exists.
    fn insert_if_absent<'a>(&'a self, job: &'a StoredJob, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Insert>;

    /// The job `key` is bound to, if the binding is less than `ttl` old at `now`.
    fn find<'a>(&'a self, key: &'a str, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Option<StoredJob>>;

    /// The job with this id.
    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<StoredJob>>;

    /// Replaces the progress of the job `job_id` (a job the store no longer has is
    /// ignored).
    fn save<'a>(&'a self, job_id: &'a str, progress: &'a StoredProgress) -> StoreFuture<'a, ()>;

    /// Replaces the progress of the job `job_id` only if its saved status is one of
    /// `only_from`; answers whether it did. Atomic against every other `save` and
    /// `save_if` of the job: of a cancel (`only_from` queued) and a dispatch (queued or
    /// running) racing, exactly one wins. A store shared by several engines releases a
    /// finished job this makes unsettled (a redelivery), for the engine running its host
    /// to [claim](Replication::claim) and settle.
    fn save_if<'a>(
        &'a self,
        job_id: &'a str,
        progress: &'a StoredProgress,
        only_from: &'a [JobStatus],
    ) -> StoreFuture<'a, bool>;

    /// The jobs `query` asks for, by id (ascending), at most `query.limit`.
    fn list<'a>(&'a self, query: &'a JobQuery) -> StoreFuture<'a, Vec<StoredJob>>;

    /// Every job whose progress is not settled: what the engine resumes at start.
    fn unsettled(&self) -> StoreFuture<'_, Vec<StoredJob>>;

    /// Drops bindings made more than `ttl` before `now` and settled jobs finished more
    /// than `retention` before `now`. Returns how many entries were removed.
    fn sweep(&self, now: SystemTime, ttl: Duration, retention: Duration) -> StoreFuture<'_, usize>;

    /// How many jobs are stored.
    fn count(&self) -> StoreFuture<'_, usize>;

    /// The webhook-secrets document last saved for `tenant`, if one was.
    fn webhook_secrets<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Option<Bytes>>;

    /// Replaces the webhook-secrets document of `tenant`: the secrets a tenant set through
    /// `/api/v1/webhook-secrets` (or that it deleted them), kept so that they survive a
    /// restart and every engine sharing the store signs with them. The document is opaque
    /// to the store, and holds secrets: keep it as private as the jobs.
    fn save_webhook_secrets<'a>(&'a self, tenant: &'a str, document: &'a Bytes) -> StoreFuture<'a, ()>;

    /// How engines sharing this store split the work, when several may ([`Replication`]);
    /// `None` (the default) for a store one engine owns, which runs every job it holds.
    fn replication(&self) -> Option<&dyn Replication> {
        None
    }
}

/// Whether a binding made at `bound_at` is still live at `now`: a clock that stepped
/// back counts as no time passed, so a binding never expires early.
pub(crate) fn binding_is_live(bound_at: SystemTime, now: SystemTime, ttl: Duration) -> bool {
    now.duration_since(bound_at).unwrap_or(Duration::ZERO) < ttl
}

/// `now - by`, or the epoch when that is not representable.
pub(crate) fn before(now: SystemTime, by: Duration) -> SystemTime {
    now.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A status column's text as a status (one this version does not know is `Unknown`).
pub(crate) fn status_from_column(text: &str) -> JobStatus {
    JobStatus::from_name(text)
}

/// `at` as a database's Unix-milliseconds column (saturating; before the epoch is 0).
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    let ms = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_millis());
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A database's Unix-milliseconds column as a time (a negative one is the epoch).
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    let ms = u64::try_from(ms).unwrap_or(0);
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)).unwrap_or(SystemTime::UNIX_EPOCH)
}
