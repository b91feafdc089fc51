//! The names the SDK's telemetry uses, in one place: `tracing` targets (filter with
//! `RUST_LOG=ezthrottle::forward=debug`) and the metrics it records through the
//! [`metrics`](https://docs.rs/metrics) facade (install any recorder: Prometheus,
//! OpenTelemetry, ...; without one, recording costs a relaxed load).
//!
//! No span or event field ever holds a credential: URLs are logged by host (or redacted
//! with [`RedactedUrl`](crate::protocol::redact::RedactedUrl)), headers by name, bodies
//! not at all.

/// Submissions and the client's calls to EZThrottle.
pub const TARGET_CLIENT: &str = "ezthrottle::client";
/// The forward decision of `ForwardLayer`, `ForwardMiddleware` and `#[auto_forward]`.
pub const TARGET_FORWARD: &str = "ezthrottle::forward";
/// Webhook verification.
pub const TARGET_WEBHOOK: &str = "ezthrottle::webhook";
/// Idempotency decisions (replays, conflicts).
pub const TARGET_IDEMPOTENCY: &str = "ezthrottle::idempotency";
/// Rate-limit decisions.
pub const TARGET_RATE_LIMIT: &str = "ezthrottle::rate_limit";
/// The local engine: each job's lifecycle (at `debug`).
pub const TARGET_ENGINE: &str = "ezthrottle::engine";
/// The local engine's access log: one event per request (at `info`).
pub const TARGET_ACCESS: &str = "ezthrottle::engine::access";

/// Counter: submissions by `outcome` (`accepted`, `duplicate`, `refused`, `not_sent`,
/// `unknown`: sent, answer unknown).
pub const SUBMISSIONS_TOTAL: &str = "ezthrottle_submissions_total";
/// Histogram: how long a submission took, retries included, in seconds.
pub const SUBMISSION_SECONDS: &str = "ezthrottle_submission_seconds";
/// Counter: calls handed to EZThrottle, by `reason` (a status code, `transport`,
/// `circuit_open`, `performance`, ...).
pub const FORWARDS_TOTAL: &str = "ezthrottle_forwards_total";
/// Counter: requests a rate limit refused (the name the rate-limiting design uses).
pub const RATE_LIMIT_EXCEEDED_TOTAL: &str = "rate_limit_exceeded_total";
/// Counter: answers replayed for a repeated idempotency key (the design's name).
pub const IDEMPOTENT_REPLAYS_TOTAL: &str = "idempotent_replays_total";
/// Counter: requests refused because the same key was being processed (the design's name).
pub const CONCURRENT_CONFLICTS_TOTAL: &str = "concurrent_conflicts_total";

/// The host of `url` for a field (a URL may carry credentials; its host does not).
pub fn host_of(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_else(|| "invalid".into())
}
