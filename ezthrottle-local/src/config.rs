//! Engine configuration: what the builder collects and the engine reads.

use ezthrottle_core::protocol::{AnnouncedPace, Pace};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A secret string (API key or webhook secret) that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The secret in clear. Keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// Lowest pace a target can ask for (one request every 100 s).
pub(crate) const MIN_RPS: f64 = 0.01;

/// Highest rate a target can announce: past it the engine would stop spacing requests
/// at all (an interval under a millisecond).
pub(crate) const MAX_ANNOUNCED_RPS: f64 = 1000.0;

/// Most requests in flight a target can announce: each one is a socket and a task.
pub(crate) const MAX_ANNOUNCED_CONCURRENT: u32 = 256;

/// The pace a target announced, applied to `pace`: each announced half replaces its
/// counterpart. A rate is clamped into [`MIN_RPS`]..=[`MAX_ANNOUNCED_RPS`], a concurrency
/// into 1..=[`MAX_ANNOUNCED_CONCURRENT`]; what is not a number above zero (`NaN`, `inf`,
/// `-1`, `0`) was already dropped by [`AnnouncedPace::from_headers`], so the pace stays.
pub(crate) fn announced(pace: Pace, announced: AnnouncedPace) -> Pace {
    let rps =
        announced.rps.filter(|rps| rps.is_finite()).map_or(pace.rps(), |rps| rps.clamp(MIN_RPS, MAX_ANNOUNCED_RPS));
    let max_concurrent =
        announced.max_concurrent.map_or(pace.max_concurrent(), |max| max.clamp(1, MAX_ANNOUNCED_CONCURRENT));
    Pace::new(rps, max_concurrent).unwrap_or(pace)
}

/// Everything the engine is configured with. Built by [`EngineBuilder`](crate::EngineBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) bind: SocketAddr,
    pub(crate) api_keys: Vec<Secret>,
    pub(crate) open: bool,
    pub(crate) webhook_secret: Option<Secret>,
    pub(crate) metrics_key: Option<Secret>,
    pub(crate) regions: Vec<String>,
    pub(crate) down_regions: Vec<String>,
    pub(crate) default_pace: Pace,
    pub(crate) pace_overrides: HashMap<String, Pace>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_queued_jobs: usize,
    pub(crate) max_queued_jobs_per_tenant: Option<usize>,
    pub(crate) lane_idle_timeout: Duration,
    pub(crate) idempotency_ttl: Duration,
    pub(crate) job_retention: Duration,
    pub(crate) allowed_hosts: Option<Vec<String>>,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) target_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) webhook_retry_base: Duration,
    pub(crate) webhook_attempts: u32,
    pub(crate) webhook_timeout: Duration,
    pub(crate) admission_retry_after: Duration,
    pub(crate) shutdown_grace: Duration,
    /// A replica's lease on a shared store (see `store::Replication`).
    pub(crate) replica_lease: Duration,
    /// How often a replica looks for jobs received by the others.
    pub(crate) replica_poll: Duration,
    pub(crate) reject_unknown_fields: bool,
    pub(crate) job_limits: crate::JobLimits,
    /// The SSRF rule even on a loopback bind (`crate::guard`).
    pub(crate) guard_private_addresses: bool,
    /// `open` accepted on a bind beyond loopback.
    pub(crate) open_on_network: bool,
    pub(crate) resolver: Option<crate::guard::CustomResolver>,
    pub(crate) local_address: Option<IpAddr>,
    pub(crate) server: crate::http::serve::ServerLimits,
    pub(crate) event_streams: crate::http::events::StreamLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_keys: Vec::new(),
            open: false,
            webhook_secret: None,
            metrics_key: None,
            regions: Vec::new(),
            down_regions: Vec::new(),
            default_pace: Pace::default(),
            pace_overrides: HashMap::new(),
            max_body_bytes: 1024 * 1024,
            max_queued_jobs: 1_000_000,
            max_queued_jobs_per_tenant: None,
            lane_idle_timeout: Duration::from_secs(300),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            job_retention: Duration::from_secs(24 * 3600),
            allowed_hosts: None,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            reject_unknown_fields: false,
            job_limits: crate::JobLimits::default(),
            server: crate::http::serve::ServerLimits::default(),
            event_streams: crate::http::events::StreamLimits::default(),
            target_timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            webhook_retry_base: Duration::from_secs(1),
            webhook_attempts: 5,
            webhook_timeout: Duration::from_secs(10),
            admission_retry_after: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            replica_lease: Duration::from_secs(10),
            replica_poll: Duration::from_millis(100),
            guard_private_addresses: false,
            open_on_network: false,
            resolver: None,
            local_address: None,
        }
    }
}

impl Config {
    /// The region used when a job names none.
    pub(crate) fn default_region(&self) -> &str {
        self.regions.iter().find(|r| !self.is_down(r)).map_or("local", String::as_str)
    }

    pub(crate) fn is_down(&self, region: &str) -> bool {
        self.down_regions.iter().any(|down| down == region)
    }

    /// Whether the allow-list (if any) admits `url`'s host and port: the one place an
    /// allow-list entry is matched (`guard::allow`).
    pub(crate) fn host_allowed(&self, url: &url::Url) -> bool {
        self.allowed_hosts.as_deref().is_none_or(|entries| crate::guard::allow::names_url(entries, url))
    }
}
