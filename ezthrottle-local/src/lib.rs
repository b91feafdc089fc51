//! `ezthrottle-local`: an EZThrottle-compatible job engine, in-process or as a binary.
//!
//! It speaks both surfaces of EZThrottle (see the wire contract,
//! [`docs/protocol.md`][protocol]): the TrackTags proxy envelope at `POST /api/v1/proxy`
//! (so the official SDKs work unchanged when their `tracktags_url` points here) and the
//! direct API (`POST /api/v1/jobs`,
//! `GET /api/v1/jobs/{id}`, `POST|GET|DELETE /api/v1/webhook-secrets`), plus
//! `GET /health` and `GET /metrics` (Prometheus text). Every `/api/v1` route needs
//! `Authorization: Bearer <key>` unless the engine is open.
//!
//! ```sh
//! cargo add --dev ezthrottle-local               # in-process, for tests
//! cargo add --dev ezthrottle --features local    # the same, as `ezthrottle::local`
//! cargo install --path ezthrottle-local          # the binary, from a checkout of the repository
//! ```
//!
//! (Nothing is on crates.io yet: until the first release, add
//! `--git https://github.com/ezthrottle/ezthrottle-rs` to `cargo add`.) The crate has no
//! Cargo features.
//!
//! # Example
//!
//! Start an engine in-process, submit a job (here aimed at the engine's own `/health`)
//! with the `ezthrottle-core` client, and wait until it has run:
//!
//! ```
//! use ezthrottle_core::protocol::JobStatus;
//! use ezthrottle_core::{EZThrottle, Job, SubmissionStatus};
//! use ezthrottle_core::Pace;
//! use ezthrottle_local::Engine;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder().api_key("ck_test").default_pace(Pace::UNLIMITED).start().await?;
//! let client = EZThrottle::builder().direct(engine.base_url()).api_key("ck_test").build()?;
//! let receipt = client.submit_job(&Job::new(format!("{}/health", engine.base_url()))).await?;
//! assert_eq!(receipt.status, SubmissionStatus::Queued);
//! let mut succeeded = false;
//! for _ in 0..200 {
//!     let job = client.get_job(&receipt.job_id).await?;
//!     if job.status == JobStatus::Success {
//!         assert_eq!(job.attempts.first().and_then(|attempt| attempt.status_code), Some(200));
//!         succeeded = true;
//!         break;
//!     }
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! assert!(succeeded);
//! engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Execution
//!
//! - **Pacing** per target host (`host:port`): a token bucket, default 2 requests per
//!   second and 2 in flight, hosts independent, ±10 % jitter on the spacing.
//!   `X-EZTHROTTLE-RPS` / `X-EZTHROTTLE-MAX-CONCURRENT` (and `X-Aqueduct-Rps` /
//!   `X-Aqueduct-Max-Concurrent`, which win when both are present) in a target's answer
//!   change the pace from the next dispatch on.
//! - **`retry_at`** (Unix ms): the job waits in its lane until then.
//! - **Retries.** `retry_codes` retry in the same region with exponential backoff
//!   (`base * 2^n`, ±20 %, see [`EngineBuilder::retry_backoff`]); a longer `Retry-After`
//!   from the target wins. `reroute_codes` move the attempt to the next region (the
//!   job's next region, then the engine's other regions). A target that cannot be reached
//!   counts as `502`, one that does not answer in time as `504`.
//!   **Default policy** when a job has none: `429`, `502`, `503` and `504` are retried up
//!   to **3** times in the same region; nothing is rerouted. A policy without
//!   `max_retries` retries 3 times; without `max_reroutes` it may visit every region once.
//! - **Regions** are named lanes ([`EngineBuilder::region`]). Several regions with
//!   `execution_mode: race` run at once (the submission answers `racing`); the first 2xx
//!   wins and the others are cancelled. `fanout` runs them all; the job succeeds if any
//!   did. Regions marked down ([`EngineBuilder::down_region`]) are skipped under
//!   `region_policy: fallback` and fail the job under `strict`. Each attempt carries an
//!   `X-EZThrottle-Region` header (and `X-EZThrottle-Job-Id`).
//! - **Fallbacks.** `on_error` runs the `fallback_job` when the previous job ended with one
//!   of its codes (after its retries); `on_timeout` runs it when the previous job has not
//!   answered within `timeout_ms` (the previous job is cancelled); an empty trigger `{}`
//!   (what the Python SDK sends for a fallback without a condition) runs it on any
//!   failure. Chains nest.
//! - **Children.** `on_success` / `on_failure` are submitted as new jobs (their own
//!   idempotency keys and webhooks) when the parent ends; `on_failure_timeout_ms` submits
//!   `on_failure` early if the parent has not succeeded by then (once). Children are never
//!   refused for queue space.
//! - **Webhooks.** Every webhook of a finished job gets the payload of
//!   [`docs/protocol.md`][protocol] §3, signed (`X-EZThrottle-Signature`) with the
//!   tenant's primary secret when one is set. Each delivery is retried with exponential backoff (default 5 attempts: 1, 2, 4, 8 s);
//!   the quorum counts the voting webhooks that answered 2xx. Everything is recorded on the
//!   job (`GET /api/v1/jobs/{id}`).
//! - **Idempotency.** An explicit `idempotent_key`, or a HASH key (`hash_` + SHA-256 of
//!   the tenant, method, URL and body) when none is given. Keys are per tenant, bound
//!   atomically (one insert-if-absent under a shard lock) and expire after the TTL
//!   ([`EngineBuilder::idempotency_ttl`]). A duplicate answers 200 with the original
//!   `job_id` and `"duplicate": true`, even when the queue is full.
//! - **Limits.** Every bound a peer could push, with its default and its knob (the
//!   binary's flag in parentheses):
//!   - request bodies: 1 MiB, declared or streamed, then 413
//!     ([`EngineBuilder::max_body_bytes`], `--max-body-bytes`);
//!   - a request's head: 10 s, then the connection is closed, idle keep-alive connections
//!     included ([`EngineBuilder::header_read_timeout`], `--header-read-timeout-secs`);
//!     its body: 30 s, then 408 naming the timeout ([`EngineBuilder::body_read_timeout`],
//!     `--body-read-timeout-secs`);
//!   - connections served at once: 10,000; more wait in the listen backlog
//!     ([`EngineBuilder::max_connections`], `--max-connections`);
//!   - jobs waiting to start: 1,000,000, then 429 with `Retry-After` (5 s doubling to 60 s
//!     on consecutive refusals) ([`EngineBuilder::max_queued_jobs`], `--max-queued-jobs`);
//!     per tenant: the whole queue with one tenant, half of it with more, then 429 naming
//!     `max_queued_jobs_per_tenant` while the other tenants still get in
//!     ([`EngineBuilder::max_queued_jobs_per_tenant`], `--max-queued-jobs-per-tenant`);
//!   - what a job asks for, at every depth ([`JobLimits`], [`EngineBuilder::job_limits`]):
//!     `retry_at` at most 7 days ahead, a fallback's `timeout_ms` at most 1 hour,
//!     `on_failure_timeout_ms` at most 7 days, `max_retries`/`max_reroutes` at most 10, at
//!     most 10 webhooks per job, at most 32 jobs nested in one (`fallback_job`,
//!     `on_success`, `on_failure`), nesting at most
//!     [`MAX_JOB_DEPTH`](ezthrottle_core::protocol::MAX_JOB_DEPTH) levels; past one, a 400
//!     names the field;
//!   - a target's answer: 1 MiB kept ([`EngineBuilder::max_response_bytes`]); a webhook
//!     receiver's answer: 4 KiB read, then the connection is dropped (the delivery counts by
//!     its status);
//!   - a target's announced pace (`X-EZTHROTTLE-*`, `X-Aqueduct-*`): what is not a number
//!     above zero (`NaN`, `inf`, `-1`, `0`) is ignored, a rate is clamped into
//!     0.01..=1000 per second and a concurrency into 1..=256; `Retry-After` is honoured up
//!     to 5 minutes ([`EngineBuilder::max_retry_after`]);
//!   - lanes: one per target `host:port`, dropped once idle (nothing queued or in flight)
//!     for 5 minutes, announced pace with it ([`EngineBuilder::lane_idle_timeout`],
//!     `--lane-idle-timeout-secs`).
//!
//!   A job may not set `Host`, `Content-Length`, `Transfer-Encoding`, `Connection` or
//!   `X-EZThrottle-*`. Every accepted job reaches `success` or `failed`.
//! - **Redirects.** A webhook delivery follows none (a 3xx is a failed delivery). A job
//!   follows at most 5: `307`/`308` for every method, `301`/`302`/`303` only for `GET` and
//!   `HEAD` (for any other method the 3xx is the answer, never a bodiless `GET`), each hop
//!   inside the allow-list, and credential headers (`Authorization`, `Proxy-Authorization`,
//!   `Cookie`, `X-Api-Key`) are dropped on a hop to another origin.
//!
//! # Security
//!
//! The engine makes HTTP requests to **whatever URL a caller gives** (and POSTs webhooks
//! to whatever URL a job names): anyone who can submit a job can make it reach any host it
//! can reach, including internal services (server-side request forgery). It therefore binds
//! loopback by default and requires an API key unless told to run open. Before exposing it,
//! restrict it with [`EngineBuilder::allowed_hosts`] (checked at submission and on every
//! redirect). API keys and webhook secrets never appear in `Debug` output, logs, ids or
//! answers (tenants are named `cust_<sha256 prefix>`; secrets are answered masked).
//! Target answers are buffered up to 1 MiB ([`EngineBuilder::max_response_bytes`]).
//! `/health` and `/metrics` need no key, but `/metrics` names target hosts (other tenants'
//! targets) only to a request carrying the metrics key ([`EngineBuilder::metrics_key`],
//! `--metrics-key`) as `Authorization: Bearer`; everyone else sees totals. Without a metrics
//! key no one sees per-host series, except in open mode, where everyone does.
//!
//! The store is in memory ([`store::MemoryStore`]): jobs do not survive a restart.
//!
//! [protocol]: https://github.com/ezthrottle/ezthrottle-rs/blob/main/docs/protocol.md
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

mod bounds;
pub mod cli;
mod config;
mod delivery;
mod drain;
mod engine;
mod executor;
mod fallback;
mod http;
mod limits;
mod metrics;
mod pacing;
mod redirect;
mod secrets;
pub mod store;
mod submit;
mod tenancy;
mod util;
mod workflow;

pub use config::Secret;
pub use engine::{Engine, EngineBuilder, RunningEngine, StartError};
pub use limits::JobLimits;
