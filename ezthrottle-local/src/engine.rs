//! The engine: its builder, its shared state and the running server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use ezthrottle_core::protocol::{JobStatus, Pace};

use crate::config::{Config, Secret};
use crate::http::auth::Tenants;
use crate::live::LiveJobs;
use crate::metrics::Metrics;
use crate::pacing::Lanes;
use crate::secrets::SecretsStore;
use crate::store::{JobRecord, JobStore, StoreError, StoreLocation};

/// State shared by the HTTP handlers, the dispatchers and the job tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) lanes: Lanes,
    pub(crate) metrics: Metrics,
    pub(crate) secrets: SecretsStore,
    pub(crate) tenants: Tenants,
    pub(crate) live: LiveJobs,
    pub(crate) queue_shares: crate::tenancy::QueueShares,
    pub(crate) http: reqwest::Client,
    pub(crate) rejections: AtomicU32,
    seq: AtomicU64,
    instance: u32,
    closed: AtomicBool,
    /// Cancelled when the drain starts: every wait of a job (a permit, a backoff, a
    /// delivery retry) ends, and the job stops where its saved progress says.
    stopping: CancellationToken,
    /// Cancelled when the grace period is over: what still runs is dropped.
    killed: CancellationToken,
    /// The job tasks, awaited by the drain.
    tasks: TaskTracker,
    /// The open event streams (`GET /api/v1/jobs/{id}/events`).
    pub(crate) event_streams: crate::http::events::Streams,
    /// Wakes a replica's claiming: a submission for a host it runs arrived here.
    pub(crate) claims_due: tokio::sync::Notify,
    /// Cancelled when a replica lost its lease and stopped itself.
    lease_lost: CancellationToken,
}

impl Shared {
    /// A new job id: `job_<unix ms>_<sequence>_<instance>`. The instance (random per
    /// engine) keeps the ids of replicas sharing a store apart.
    pub(crate) fn next_job_id(&self, now_ms: u64) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        format!("job_{now_ms}_{seq}_{:08x}", self.instance)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stopping.cancel();
        self.lanes.wake_all();
    }

    /// Resolves when the drain starts.
    pub(crate) async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    /// Runs `task` (a job, a delivery) as work the drain waits for, dropped if it
    /// outlives the grace period.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let killed = self.killed.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                () = killed.cancelled() => {}
            }
        });
    }

    /// A replica whose lease is gone stops at once, as a dropped engine does: submissions
    /// are refused and running work is dropped, for another replica to take over.
    pub(crate) fn lose_lease(&self, why: &str) {
        tracing::error!(reason = why, "this replica lost its lease and stops");
        self.close();
        self.killed.cancel();
        self.lease_lost.cancel();
    }

    /// Saves the progress of `record` if its saved status is one of `only_from`; answers
    /// whether the job may go on: `false` only when the store says its status is another
    /// (a failure is logged and counts as saved, as in [`persist`](Self::persist)).
    pub(crate) async fn persist_if(&self, record: &JobRecord, only_from: &[JobStatus]) -> bool {
        let saved = match record.progress() {
            Ok(progress) => self.store.save_if(record.id(), &progress, only_from).await,
            Err(err) => Err(err),
        };
        saved.unwrap_or_else(|err| {
            self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(job_id = record.id(), error = %ezthrottle_core::ErrorChain(&err), "saving a job's progress failed");
            true
        })
    }

    /// Saves the progress of `record`. A failure is logged: the job goes on, and at worst
    /// runs again after a restart from the last progress saved (at-least-once).
    pub(crate) async fn persist(&self, record: &JobRecord) {
        let saved = match record.progress() {
            Ok(progress) => self.store.save(record.id(), &progress).await,
            Err(err) => Err(err),
        };
        if let Err(err) = saved {
            self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(job_id = record.id(), error = %ezthrottle_core::ErrorChain(&err), "saving a job's progress failed");
        }
    }
}

/// Entry point: `Engine::builder()`.
///
/// ```no_run
/// # async fn demo() -> Result<(), ezthrottle_local::StartError> {
/// let engine = ezthrottle_local::Engine::builder().api_key("ck_test").start().await?;
/// println!("{}", engine.base_url());
/// engine.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Engine;

impl Engine {
    /// A builder with the defaults: bind `127.0.0.1:0`, 2 RPS and 2 in flight per host,
    /// 1 MiB bodies, 24 h idempotency keys.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }
}

/// Why an engine did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The address could not be bound.
    #[error("could not bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// Neither an API key nor open mode was configured: every request would be refused.
    #[error("no API key given: add one (--api-key) or run open (--open)")]
    NoApiKey,
    /// The webhook secret is too short to protect anything (an empty one included).
    #[error("the webhook secret (--webhook-secret) is refused: {0}")]
    WeakWebhookSecret(#[from] ezthrottle_core::protocol::WeakSecret),
    /// The job store could not be opened, or the jobs it holds could not be read back.
    #[error("the job store (--store) cannot be used: {0}")]
    Store(#[from] StoreError),
    /// Open mode on a bind beyond loopback without
    /// [`EngineBuilder::open_on_network`]: anyone who reaches the port could submit jobs.
    #[error(
        "--open on {addr}, beyond loopback, lets anyone who reaches it submit jobs: add --open-on-network to mean it, or use --api-key"
    )]
    OpenOnNetwork {
        /// The bind address.
        addr: SocketAddr,
    },
}

/// Configures and starts an engine. Every knob has a production-sensible default; the
/// timing knobs exist so tests stay fast.
#[derive(Debug, Default)]
pub struct EngineBuilder {
    pub(crate) config: Config,
    store: Option<StoreChoice>,
}

#[derive(Debug)]
enum StoreChoice {
    Open(Arc<dyn JobStore>),
    At(StoreLocation),
}

impl EngineBuilder {
    /// Address to listen on (default `127.0.0.1:0`: loopback, any free port).
    ///
    /// Bound anything but loopback, the engine applies the SSRF guard (no target or
    /// webhook in a loopback, private, link-local or other special range unless the
    /// allow-list names it) and refuses [`open`](Self::open) without
    /// [`open_on_network`](Self::open_on_network): see the crate docs, "Security".
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }

    /// Accepts `key` as a bearer token. Each key is a tenant with its own idempotency
    /// keys, jobs and webhook secrets. Repeatable.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<Secret>) -> Self {
        self.config.api_keys.push(key.into());
        self
    }

    /// No authentication: a request without an `Authorization` header is accepted (as one
    /// shared tenant); a presented key must still be a configured one (an unknown key is
    /// 401). For quick local use only: on a bind beyond loopback it also needs
    /// [`open_on_network`](Self::open_on_network).
    #[must_use]
    pub fn open(mut self) -> Self {
        self.config.open = true;
        self
    }

    /// The bounds every submitted job is checked against, at every depth
    /// ([`JobLimits`](crate::JobLimits); its `Default` documents the defaults). A job past
    /// one is refused with a 400 naming the field.
    #[must_use]
    pub fn job_limits(mut self, limits: crate::JobLimits) -> Self {
        self.config.job_limits = limits;
        self
    }

    /// Refuses a job naming a field the protocol does not know with a 400 naming its path
    /// (`fallback_job.fallback_job.retryPolcy`); by default such a field is ignored and
    /// logged at `warn` with its path. The other SDKs' spellings (`fallbackJob`,
    /// `hasQuorumVote`, ...) are known fields either way.
    #[must_use]
    pub fn reject_unknown_fields(mut self) -> Self {
        self.config.reject_unknown_fields = true;
        self
    }

    /// The primary webhook secret every tenant starts with (until it sets or deletes its
    /// own through `/api/v1/webhook-secrets`). At least
    /// [`MIN_SECRET_LEN`](ezthrottle_core::protocol::MIN_SECRET_LEN) characters, as the
    /// secrets API requires: [`start`](Self::start) refuses a shorter one.
    #[must_use]
    pub fn webhook_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.config.webhook_secret = Some(secret.into());
        self
    }

    /// Declares a region (a named lane). The first one that is up is where jobs naming no
    /// region run; the others are where rerouted attempts go. Default: one region, `local`.
    #[must_use]
    pub fn region(mut self, name: impl Into<String>) -> Self {
        self.config.regions.push(name.into());
        self
    }

    /// Declares a region that is down: skipped under `region_policy: fallback`, failing
    /// the job under `strict`.
    #[must_use]
    pub fn down_region(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.config.regions.contains(&name) {
            self.config.regions.push(name.clone());
        }
        self.config.down_regions.push(name);
        self
    }

    /// The pace of `host` (`host` or `host:port`), until the target's headers change it.
    #[must_use]
    pub fn pace(mut self, host: impl Into<String>, pace: Pace) -> Self {
        self.config.pace_overrides.insert(host.into(), pace);
        self
    }

    /// The pace of every host without an override (default 2 RPS, 2 in flight).
    /// [`Pace::UNLIMITED`] lifts pacing.
    #[must_use]
    pub fn default_pace(mut self, pace: Pace) -> Self {
        self.config.default_pace = pace;
        self
    }

    /// Largest request body accepted (default 1 MiB); larger ones get 413.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// Most jobs waiting to start (default 1,000,000); beyond it submissions get 429 with
    /// `Retry-After`.
    #[must_use]
    pub fn max_queued_jobs(mut self, jobs: usize) -> Self {
        self.config.max_queued_jobs = jobs;
        self
    }

    /// How long an idempotency key stays bound to its job (default 24 h).
    #[must_use]
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.config.idempotency_ttl = ttl;
        self
    }

    /// How long a finished job stays visible at `GET /api/v1/jobs/{id}` (default 24 h).
    #[must_use]
    pub fn job_retention(mut self, retention: Duration) -> Self {
        self.config.job_retention = retention;
        self
    }

    /// Only dispatch to (and deliver webhooks to) these hosts: `host` (any port) or
    /// `host:port` (that port only). An entry that is an address also lets a guarded
    /// engine reach that address (see "Security" in the crate docs). Without it the engine
    /// requests whatever URL a caller gives, within the SSRF guard when it applies.
    #[must_use]
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allowed_hosts = Some(hosts.into_iter().map(Into::into).collect());
        self
    }

    /// Backoff between retries in a region: `base * 2^n` ±20 %, at most `max`
    /// (default 500 ms, 30 s). A longer `Retry-After` from the target wins.
    #[must_use]
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.retry_base = base;
        self.config.retry_max = max;
        self
    }

    /// Longest `Retry-After` honoured (default 5 minutes).
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.config.max_retry_after = max;
        self
    }

    /// Timeout of one request to a target (default 30 s).
    #[must_use]
    pub fn target_timeout(mut self, timeout: Duration) -> Self {
        self.config.target_timeout = timeout;
        self
    }

    /// How much of a target's answer body is kept (default 1 MiB; the rest is dropped).
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.config.max_response_bytes = bytes;
        self
    }

    /// Webhook delivery: `attempts` tries per webhook, waiting `base * 2^n` between them
    /// (default 5 attempts, 1 s: 1, 2, 4, 8 s).
    #[must_use]
    pub fn webhook_retry(mut self, base: Duration, attempts: u32) -> Self {
        self.config.webhook_retry_base = base;
        self.config.webhook_attempts = attempts.max(1);
        self
    }

    /// Timeout of one webhook POST (default 10 s).
    #[must_use]
    pub fn webhook_timeout(mut self, timeout: Duration) -> Self {
        self.config.webhook_timeout = timeout;
        self
    }

    /// First `Retry-After` of a queue-full 429 (default 5 s); it doubles on each
    /// consecutive refusal up to 60 s and resets once a job is accepted.
    #[must_use]
    pub fn admission_retry_after(mut self, wait: Duration) -> Self {
        self.config.admission_retry_after = wait;
        self
    }

    /// Keeps jobs in `store` instead of a fresh [`MemoryStore`](crate::store::MemoryStore)
    /// (the default: nothing survives the process). At start the engine resumes every job
    /// the store holds unsettled.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(StoreChoice::Open(store));
        self
    }

    /// Keeps jobs in the store at `location`, opened by [`start`](Self::start) (what
    /// `--store sqlite:PATH` does).
    #[must_use]
    pub fn store_at(mut self, location: StoreLocation) -> Self {
        self.store = Some(StoreChoice::At(location));
        self
    }

    /// How long [`RunningEngine::shutdown`] (and SIGTERM for the binary) lets running
    /// attempts and webhook deliveries finish before it drops them (default 30 s). What
    /// is dropped stays in the store as it was last saved, and a durable store resumes it
    /// at the next start.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// On a store several engines share ([`Replication`](crate::store::Replication)), how
    /// long this replica's claims last without renewal (default 10 s, within 1 s and
    /// 10 min): it renews every third of it, its jobs are taken over this long after a
    /// crash, and it stops itself when it cannot renew in time.
    #[must_use]
    pub fn replica_lease(mut self, lease: Duration) -> Self {
        let bounds = crate::replicas::LEASE_BOUNDS;
        self.config.replica_lease = lease.clamp(*bounds.start(), *bounds.end());
        self
    }

    /// On a shared store, how often this replica looks for jobs the others received for
    /// the hosts it runs (default 100 ms, at least 10 ms). A job received by the replica
    /// that runs its host is claimed at once.
    #[must_use]
    pub fn replica_poll(mut self, interval: Duration) -> Self {
        self.config.replica_poll = interval.max(Duration::from_millis(10));
        self
    }

    /// Binds, starts serving, and returns the running engine.
    ///
    /// # Errors
    ///
    /// [`StartError`]: the address cannot be bound, no API key and not open, a webhook
    /// secret under 16 characters, open beyond loopback without
    /// [`open_on_network`](Self::open_on_network).
    pub async fn start(self) -> Result<RunningEngine, StartError> {
        let config = self.config;
        if config.api_keys.is_empty() && !config.open {
            return Err(StartError::NoApiKey);
        }
        if let Some(secret) = &config.webhook_secret {
            ezthrottle_core::protocol::check_secret(secret.expose())?;
        }
        crate::guard::check_start(&config)?;
        let http = crate::guard::http_client(&config)?;
        let store = match self.store {
            Some(StoreChoice::Open(store)) => store,
            Some(StoreChoice::At(location)) => location.open().await?,
            None => StoreLocation::Memory.open().await?,
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind { addr: config.bind, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.bind, source })?;
        let shared = Arc::new(Shared {
            lanes: Lanes::new(config.default_pace, config.pace_overrides.clone()),
            metrics: Metrics::default(),
            secrets: SecretsStore::new(config.webhook_secret.clone()),
            tenants: Tenants::new(&config.api_keys, config.open),
            queue_shares: crate::tenancy::QueueShares::new(&config),
            store,
            http,
            rejections: AtomicU32::new(0),
            seq: AtomicU64::new(0),
            instance: fastrand::u32(..),
            closed: AtomicBool::new(false),
            live: LiveJobs::default(),
            stopping: CancellationToken::new(),
            killed: CancellationToken::new(),
            tasks: TaskTracker::new(),
            claims_due: tokio::sync::Notify::new(),
            event_streams: crate::http::events::Streams::default(),
            lease_lost: CancellationToken::new(),
            config,
        });
        // A replica takes up the jobs of the hosts it claims; a lone engine all of them.
        let replica = crate::replicas::join(&shared).await?;
        if replica.is_none() {
            let resumed = crate::recovery::resume(&shared).await?;
            if resumed > 0 {
                tracing::info!(resumed, "resumed the unsettled jobs of the store");
            }
        }
        let router = crate::http::router(Arc::clone(&shared));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(crate::http::serve::serve(listener, router, shared.config.server, stop_rx));
        let sweeper = tokio::spawn(sweep(Arc::clone(&shared)));
        tracing::info!(%addr, "ezthrottle-local listening");
        Ok(RunningEngine { addr, shared, stop: Some(stop_tx), server: Some(server), sweeper, replica })
    }
}

async fn sweep(shared: Arc<Shared>) {
    let config = &shared.config;
    let period = config
        .idempotency_ttl
        .min(config.lane_idle_timeout)
        .min(Duration::from_secs(30))
        .max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        shared.live.prune();
        let swept = shared
            .store
            .sweep(std::time::SystemTime::now(), shared.config.idempotency_ttl, shared.config.job_retention)
            .await;
        match swept {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "swept expired keys and jobs"),
            Err(err) => tracing::warn!(error = %ezthrottle_core::ErrorChain(&err), "sweeping the store failed"),
        }
        shared.lanes.evict_idle(shared.config.lane_idle_timeout);
    }
}

/// A started engine. Dropping it stops the server too; [`RunningEngine::shutdown`] also
/// waits for open connections to finish.
#[derive(Debug)]
pub struct RunningEngine {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    replica: Option<crate::replicas::Replica>,
}

impl RunningEngine {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: what an SDK's `tracktags_url` (or a direct client's base URL)
    /// points at.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resolves when the engine stopped itself: a replica of a shared store that could
    /// not renew its lease in time (see [`Replication`](crate::store::Replication)). It
    /// then refuses submissions and runs nothing: the binary exits with an error, for its
    /// supervisor to start it again as a new replica.
    pub async fn lease_lost(&self) {
        self.shared.lease_lost.cancelled().await;
    }

    /// Drains the engine: submissions get `503` with `Retry-After`, no queued job starts,
    /// running attempts and webhook deliveries finish within the grace period
    /// ([`EngineBuilder::shutdown_grace`], default 30 s), then what is left is dropped and
    /// the server stops. Every job keeps the progress last saved: a durable store resumes
    /// the queued, interrupted and undelivered ones at the next start; a
    /// [`MemoryStore`](crate::store::MemoryStore) loses them with the process.
    ///
    /// Returns within the grace period plus the time open connections take to close
    /// (at most 10 s more).
    pub async fn shutdown(mut self) {
        self.shared.close();
        self.sweeper.abort();
        let tasks = &self.shared.tasks;
        tasks.close();
        if tokio::time::timeout(self.shared.config.shutdown_grace, tasks.wait()).await.is_err() {
            tracing::warn!(left = tasks.len(), "the grace period is over: dropping what still runs");
            self.shared.killed.cancel();
            tasks.wait().await;
        }
        if let Some(replica) = self.replica.take() {
            replica.leave(&self.shared).await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }
}

impl Drop for RunningEngine {
    /// Stops at once: no grace period (use [`RunningEngine::shutdown`] for the drain).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.shared.close();
        self.shared.killed.cancel();
        self.sweeper.abort();
        if let Some(replica) = self.replica.take() {
            replica.abandon(&self.shared);
        }
    }
}
