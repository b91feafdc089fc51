//! The command-line options of the `ezthrottle-local` binary, reusable by other CLIs
//! (`#[command(flatten)]`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::engine::{Engine, EngineBuilder};
use crate::store::StoreLocation;
use ezthrottle_core::protocol::{InvalidPace, Pace};

/// Options of `ezthrottle-local`; each has an `EZTHROTTLE_LOCAL_*` environment variable.
#[derive(Clone, clap::Parser)]
#[command(name = "ezthrottle-local", version, about = "An EZThrottle-compatible engine on your machine.")]
pub struct LocalArgs {
    /// Address to listen on. Beyond loopback the engine refuses targets and webhooks in
    /// loopback, private, link-local and other special ranges unless --allowed-host names
    /// them (the SSRF guard); use API keys.
    #[arg(long, env = "EZTHROTTLE_LOCAL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Accepted API key (repeatable; each key is a tenant). The variable takes a
    /// comma-separated list.
    #[arg(long = "api-key", env = "EZTHROTTLE_LOCAL_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,

    /// No authentication (quick local use only): requests without an Authorization header
    /// are accepted; an unknown key is still 401. Refused beyond loopback without
    /// --open-on-network.
    #[arg(long, env = "EZTHROTTLE_LOCAL_OPEN")]
    pub open: bool,

    /// Allow --open on a bind beyond loopback: anyone who reaches the port can submit jobs.
    #[arg(long, env = "EZTHROTTLE_LOCAL_OPEN_ON_NETWORK")]
    pub open_on_network: bool,

    /// Apply the SSRF guard even on a loopback bind (it always applies beyond loopback).
    #[arg(long, env = "EZTHROTTLE_LOCAL_GUARD_PRIVATE_ADDRESSES")]
    pub guard_private_addresses: bool,

    /// Initial primary webhook secret of every tenant (at least 16 characters).
    #[arg(long, env = "EZTHROTTLE_LOCAL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Key that shows the per-host series of /metrics (as `Authorization: Bearer <key>`);
    /// without it they are shown only in open mode.
    #[arg(long, env = "EZTHROTTLE_LOCAL_METRICS_KEY", hide_env_values = true)]
    pub metrics_key: Option<String>,

    /// A region (named lane); repeatable. The first one up runs jobs naming no region.
    #[arg(long = "region", env = "EZTHROTTLE_LOCAL_REGIONS", value_delimiter = ',')]
    pub regions: Vec<String>,

    /// A region treated as down; repeatable.
    #[arg(long = "down-region", env = "EZTHROTTLE_LOCAL_DOWN_REGIONS", value_delimiter = ',')]
    pub down_regions: Vec<String>,

    /// Default pace per target host, requests per second.
    #[arg(long, env = "EZTHROTTLE_LOCAL_DEFAULT_RPS", default_value_t = 2.0)]
    pub default_rps: f64,

    /// Default requests in flight per target host.
    #[arg(long, env = "EZTHROTTLE_LOCAL_DEFAULT_MAX_CONCURRENT", default_value_t = 2)]
    pub default_max_concurrent: u32,

    /// Only dispatch to (and deliver webhooks to) these hosts (`host`: any port,
    /// `host:port`: that port); repeatable. An entry that is an address also lets a guarded
    /// engine reach that address.
    #[arg(long = "allowed-host", env = "EZTHROTTLE_LOCAL_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Largest request body, bytes.
    #[arg(long, env = "EZTHROTTLE_LOCAL_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most jobs waiting to start before submissions get 429.
    #[arg(long, env = "EZTHROTTLE_LOCAL_MAX_QUEUED_JOBS", default_value_t = 1_000_000)]
    pub max_queued_jobs: usize,

    /// Most jobs one tenant may have waiting to start (default: the whole queue with one
    /// tenant, half of it with more).
    #[arg(long, env = "EZTHROTTLE_LOCAL_MAX_QUEUED_JOBS_PER_TENANT")]
    pub max_queued_jobs_per_tenant: Option<usize>,

    /// How long an idle target host's lane (and its announced pace) is kept, seconds.
    #[arg(long, env = "EZTHROTTLE_LOCAL_LANE_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub lane_idle_timeout_secs: u64,

    /// Lifetime of an idempotency key, seconds.
    #[arg(long, env = "EZTHROTTLE_LOCAL_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400)]
    pub idempotency_ttl_secs: u64,

    /// Longest wait for a request's head, seconds (idle keep-alive connections included).
    #[arg(long, env = "EZTHROTTLE_LOCAL_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Longest wait for a whole request body, seconds (then 408).
    #[arg(long, env = "EZTHROTTLE_LOCAL_BODY_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub body_read_timeout_secs: u64,

    /// Most connections served at once; more wait in the listen backlog.
    #[arg(long, env = "EZTHROTTLE_LOCAL_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Refuse (400) a job naming a field the protocol does not know, instead of ignoring it
    /// with a warning that names its path.
    #[arg(long, env = "EZTHROTTLE_LOCAL_REJECT_UNKNOWN_FIELDS")]
    pub reject_unknown_fields: bool,

    /// Where jobs are kept: `sqlite:PATH` (durable: jobs survive a crash or a restart),
    /// `postgres://user:password@host:port/dbname` (PostgreSQL: every engine started on one
    /// database is a replica, sharing its jobs) or `memory:` (throwaway runs).
    #[arg(long, env = "EZTHROTTLE_LOCAL_STORE", default_value_t = StoreLocation::binary_default())]
    pub store: StoreLocation,

    /// On SIGTERM or SIGINT, how long running attempts and webhook deliveries may finish
    /// (`30s`, `500ms`, `2m`); what is left is kept in the store for the next start.
    #[arg(long, env = "EZTHROTTLE_LOCAL_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_grace)]
    pub shutdown_grace: Duration,

    /// With a PostgreSQL store, how long this replica's claims last without renewal
    /// (`10s`; from 1s to 10m): a replica that dies has its jobs taken over this long
    /// after its last renewal, and one that cannot renew in time stops itself.
    #[arg(long, env = "EZTHROTTLE_LOCAL_REPLICA_LEASE", default_value = "10s", value_parser = parse_lease)]
    pub replica_lease: Duration,

    /// Most job event streams (`GET /api/v1/jobs/{id}/events`) open at once; past it a new
    /// one is answered 503.
    #[arg(long, env = "EZTHROTTLE_LOCAL_MAX_EVENT_STREAMS", default_value_t = 1_000)]
    pub max_event_streams: usize,

    /// How long one job event stream stays open (`1h`; from 1s to 24h); the client then
    /// resumes with `Last-Event-ID`.
    #[arg(long, env = "EZTHROTTLE_LOCAL_EVENT_STREAM_LIFETIME", default_value = "1h", value_parser = parse_stream_lifetime)]
    pub event_stream_lifetime: Duration,
}

/// A duration flag: `30s`, `2m`, `500ms` (humantime), or bare seconds (`30`). The one
/// parser of every duration flag of `ezthrottle-local` and `ezthrottle`.
///
/// # Errors
///
/// A message naming the expected form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|err| format!("{err} (expected e.g. 30s, 2m, 500ms)"))
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    let grace = parse_duration(text)?;
    if grace > MAX_SHUTDOWN_GRACE {
        return Err(format!("{text:?} is longer than the most allowed, 1h"));
    }
    Ok(grace)
}

fn parse_lease(text: &str) -> Result<Duration, String> {
    parse_within(text, &crate::replicas::LEASE_BOUNDS, "1s to 10m")
}

fn parse_stream_lifetime(text: &str) -> Result<Duration, String> {
    parse_within(text, &crate::http::events::LIFETIME_BOUNDS, "1s to 24h")
}

/// A duration flag that must lie within `bounds` (shown as `range`).
fn parse_within(text: &str, bounds: &std::ops::RangeInclusive<Duration>, range: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if !bounds.contains(&duration) {
        return Err(format!("{text:?} is outside the range allowed, {range}"));
    }
    Ok(duration)
}

/// The longest `--shutdown-grace`.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(3_600);

impl std::fmt::Debug for LocalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalArgs")
            .field("bind", &self.bind)
            .field("api_keys", &format_args!("[{} redacted]", self.api_keys.len()))
            .field("open", &self.open)
            .field("open_on_network", &self.open_on_network)
            .field("guard_private_addresses", &self.guard_private_addresses)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "[redacted]"))
            .field("metrics_key", &self.metrics_key.as_ref().map(|_| "[redacted]"))
            .field("regions", &self.regions)
            .field("down_regions", &self.down_regions)
            .field("default_rps", &self.default_rps)
            .field("default_max_concurrent", &self.default_max_concurrent)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_queued_jobs", &self.max_queued_jobs)
            .field("max_queued_jobs_per_tenant", &self.max_queued_jobs_per_tenant)
            .field("idempotency_ttl_secs", &self.idempotency_ttl_secs)
            .field("reject_unknown_fields", &self.reject_unknown_fields)
            .field("store", &self.store)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("replica_lease", &self.replica_lease)
            .field("max_event_streams", &self.max_event_streams)
            .field("event_stream_lifetime", &self.event_stream_lifetime)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("body_read_timeout_secs", &self.body_read_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("lane_idle_timeout_secs", &self.lane_idle_timeout_secs)
            .finish()
    }
}

impl LocalArgs {
    /// The engine builder these options describe.
    ///
    /// # Errors
    ///
    /// [`InvalidPace`]: `--default-rps` is not a finite number above 0, or
    /// `--default-max-concurrent` is 0.
    pub fn to_builder(&self) -> Result<EngineBuilder, InvalidPace> {
        let mut builder = Engine::builder()
            .bind(self.bind)
            .default_pace(Pace::new(self.default_rps, self.default_max_concurrent)?)
            .max_body_bytes(self.max_body_bytes)
            .max_queued_jobs(self.max_queued_jobs)
            .idempotency_ttl(Duration::from_secs(self.idempotency_ttl_secs))
            .store_at(self.store.clone())
            .shutdown_grace(self.shutdown_grace)
            .replica_lease(self.replica_lease)
            .header_read_timeout(Duration::from_secs(self.header_read_timeout_secs))
            .body_read_timeout(Duration::from_secs(self.body_read_timeout_secs))
            .max_connections(self.max_connections)
            .max_event_streams(self.max_event_streams)
            .event_stream_lifetime(self.event_stream_lifetime)
            .lane_idle_timeout(Duration::from_secs(self.lane_idle_timeout_secs));
        for key in self.api_keys.iter().filter(|key| !key.trim().is_empty()) {
            builder = builder.api_key(key.trim());
        }
        if let Some(jobs) = self.max_queued_jobs_per_tenant {
            builder = builder.max_queued_jobs_per_tenant(jobs);
        }
        if self.open {
            builder = builder.open();
        }
        if self.open_on_network {
            builder = builder.open_on_network();
        }
        if self.guard_private_addresses {
            builder = builder.guard_private_addresses();
        }
        if self.reject_unknown_fields {
            builder = builder.reject_unknown_fields();
        }
        if let Some(key) = self.metrics_key.as_deref().map(str::trim).filter(|key| !key.is_empty()) {
            builder = builder.metrics_key(key);
        }
        if let Some(secret) = &self.webhook_secret {
            builder = builder.webhook_secret(secret.as_str());
        }
        for region in &self.regions {
            builder = builder.region(region.as_str());
        }
        for region in &self.down_regions {
            builder = builder.down_region(region.as_str());
        }
        if !self.allowed_hosts.is_empty() {
            builder = builder.allowed_hosts(self.allowed_hosts.iter().cloned());
        }
        Ok(builder)
    }
}

/// SIGINT and SIGTERM, listened for from creation on: create it *before* announcing the
/// address, so a signal sent as soon as that line is read is neither lost nor fatal (the
/// default action would kill the process without a clean shutdown).
///
/// ```no_run
/// # async fn run() {
/// let signals = ezthrottle_local::cli::ShutdownSignals::install();
/// // ... start, print `listening on ...`
/// signals.recv().await; // then shut down
/// # }
/// ```
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    /// Starts listening (inside a tokio runtime).
    #[must_use]
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { handlers: signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()) }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
    pub async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut interrupt, mut terminate)) = self.handlers {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_lease_is_refused_outside_one_second_to_ten_minutes() {
        assert_eq!(parse_lease("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_lease("10m"), Ok(Duration::from_secs(600)));
        for outside in ["999ms", "601s", "0s"] {
            let refused = parse_lease(outside).unwrap_err();
            assert!(refused.contains("outside the range allowed, 1s to 10m"), "{outside}: {refused}");
        }
    }

    #[test]
    fn the_event_stream_lifetime_is_refused_outside_one_second_to_a_day() {
        assert_eq!(parse_stream_lifetime("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_stream_lifetime("24h"), Ok(Duration::from_secs(86_400)));
        for outside in ["999ms", "25h", "0s"] {
            let refused = parse_stream_lifetime(outside).unwrap_err();
            assert!(refused.contains("outside the range allowed, 1s to 24h"), "{outside}: {refused}");
        }
    }
}
