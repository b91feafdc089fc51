//! The engine's bounds on what clients, tenants and targets control: the setters of
//! [`EngineBuilder`] for the server's timeouts and connection limit, each tenant's share of
//! the queue, idle lanes and who sees the per-host metrics. (What a job may ask for is
//! [`JobLimits`](crate::JobLimits).)

use std::time::Duration;

use crate::config::Secret;
use crate::engine::EngineBuilder;

impl EngineBuilder {
    /// The key that shows the per-host series of `GET /metrics` (queue depth, in flight
    /// and pace per target `host:port`) to a request carrying it as
    /// `Authorization: Bearer <key>`. Everyone else (tenants included: the hosts are other
    /// tenants' targets) sees the totals only. Without a metrics key the per-host series are
    /// shown to nobody, except in open mode where they are shown to everyone.
    #[must_use]
    pub fn metrics_key(mut self, key: impl Into<Secret>) -> Self {
        self.config.metrics_key = Some(key.into());
        self
    }

    /// Longest wait for a request's head, from when the server starts waiting for it (the
    /// connection accepted, or the previous answer on it sent) (default 10 s); past it the
    /// connection is closed, idle keep-alive connections included.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.server.header_read_timeout = timeout;
        self
    }

    /// Longest wait for a whole request body, from the end of its head (default 30 s);
    /// past it the request is answered `408` naming the timeout.
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.server.body_read_timeout = timeout;
        self
    }

    /// Most connections served at once (default 10,000; at least 1). Beyond it new
    /// connections wait in the listen backlog until one closes.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.server.max_connections = connections.max(1);
        self
    }

    /// Most jobs one tenant may have waiting to start: its share of
    /// [`max_queued_jobs`](Self::max_queued_jobs). Default: the whole queue when the engine
    /// has one tenant (one API key, or open mode without keys), half of it (rounded up)
    /// otherwise. Beyond it that tenant's submissions get 429 naming
    /// `max_queued_jobs_per_tenant` while the other tenants still get in.
    #[must_use]
    pub fn max_queued_jobs_per_tenant(mut self, jobs: usize) -> Self {
        self.config.max_queued_jobs_per_tenant = Some(jobs);
        self
    }

    /// Most job event streams (`GET /api/v1/jobs/{id}/events`) open at once on this engine
    /// (default 1,000; at least 1). Past it a new stream is answered 503 naming
    /// `max_event_streams`, with `Retry-After: 5`.
    #[must_use]
    pub fn max_event_streams(mut self, streams: usize) -> Self {
        self.config.event_streams.max_open = streams.max(1);
        self
    }

    /// How long one job event stream stays open (default 1 hour, within 1 s and 24 h). Then
    /// the engine ends it, and the client resumes with `Last-Event-ID` where it left off
    /// (`EZThrottle::job_events` does so by itself).
    #[must_use]
    pub fn event_stream_lifetime(mut self, lifetime: Duration) -> Self {
        let bounds = crate::http::events::LIFETIME_BOUNDS;
        self.config.event_streams.lifetime = lifetime.clamp(*bounds.start(), *bounds.end());
        self
    }

    /// How long a target host's lane (its queue and its announced pace) is kept once it has
    /// nothing queued and nothing in flight (default 5 minutes). A busy lane is never
    /// dropped; a dropped one comes back at the configured pace.
    #[must_use]
    pub fn lane_idle_timeout(mut self, idle: Duration) -> Self {
        self.config.lane_idle_timeout = idle;
        self
    }
}
