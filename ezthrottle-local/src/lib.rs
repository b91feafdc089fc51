//! `ezthrottle-local`: an EZThrottle-compatible job engine, in-process or as a binary.
//!
//! It speaks both surfaces of EZThrottle (see the wire contract,
//! [`docs/protocol.md`][protocol]): the TrackTags proxy envelope at `POST /api/v1/proxy`
//! (so the official SDKs work unchanged when their `tracktags_url` points here) and the
//! direct API (`POST /api/v1/jobs`,
//! `GET /api/v1/jobs/{id}`, `GET /api/v1/jobs/{id}/events` (the job's events as
//! server-sent events), `POST|GET|DELETE /api/v1/webhook-secrets`), plus `GET /health`
//! (liveness), `GET /ready` (readiness: 503 while draining or while the store does not
//! answer) and `GET /metrics` (Prometheus text). Every `/api/v1` route needs
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
//! The engine makes HTTP requests to the URLs callers give (and POSTs webhooks to the URLs
//! jobs name): whoever can submit a job can make the engine reach what it can reach
//! (server-side request forgery). What it protects:
//!
//! - **Authentication.** Every `/api/v1` route needs `Authorization: Bearer <key>` naming a
//!   configured key ([`EngineBuilder::api_key`]; each key is a tenant). In open mode
//!   ([`EngineBuilder::open`], `--open`) a request *without* an `Authorization` header is
//!   the open tenant, but a presented unknown key (or another scheme) is still 401. Open
//!   mode on a bind beyond loopback needs [`EngineBuilder::open_on_network`]
//!   (`--open-on-network`); without it [`EngineBuilder::start`] fails with
//!   [`StartError::OpenOnNetwork`] and the binary exits with status 2 (a usage error).
//! - **The SSRF guard.** An engine bound beyond loopback (any address but `127.0.0.0/8`
//!   and `::1`, `0.0.0.0` included), or told to with
//!   [`EngineBuilder::guard_private_addresses`] (`--guard-private-addresses`), reaches no
//!   address that is loopback, private (`10/8`, `172.16/12`, `192.168/16`), link-local
//!   (`169.254/16`, where cloud metadata lives, `fe80::/10`), unique-local (`fc00::/7`),
//!   carrier-grade NAT (`100.64/10`), unspecified (`0/8`, `::`), multicast, broadcast,
//!   documentation, benchmarking or reserved, in any spelling (IPv4-mapped `::ffff:a.b.c.d`,
//!   NAT64 and 6to4 forms are judged by the IPv4 address they carry), unless the allow-list
//!   names that address. A host written as an address is checked at submission (403 naming
//!   the field: `url`, `webhooks[0].url`, `fallback_job.url`, ...), on each redirect hop
//!   (the hop is not followed: the 3xx is the job's answer) and before each webhook
//!   delivery (a failed delivery). A name is accepted at submission and checked where it
//!   is resolved, inside the engine's HTTP client, at every new connection: the answers in
//!   those ranges are dropped and a name left with none fails to connect with an error
//!   naming the address, its range and the rule (the job fails like any unreachable
//!   target). DNS rebinding (a harmless answer at submission, `169.254.169.254` at connect
//!   time) therefore fails. [`EngineBuilder::resolver`] replaces the system resolver (the
//!   rule applies to its answers too).
//! - **Loopback-bound engines** (the default, `127.0.0.1`) are not guarded: only processes
//!   on the same machine can submit to them, and those can reach every address the engine
//!   can; they reach everything, as they always have, within the allow-list if one is set.
//! - **The allow-list** ([`EngineBuilder::allowed_hosts`], `--allowed-host`), when set, is
//!   the only set of targets, redirect hops and webhooks the engine requests. An entry is
//!   `host` (any port) or `host:port` (that port only; the scheme's default port when the
//!   URL has none); IPv6 addresses bare or bracketed; hosts case-insensitive, IP addresses
//!   compared by value. An entry that is an address (`127.0.0.2:8080`, `10.0.0.5`) also
//!   lets a guarded engine connect to that address, whatever name resolved to it: to let
//!   `internal.example:8080` reach `10.0.0.5`, name both. (A resolved address is judged
//!   before its port is known: the port is checked on the URL.)
//! - **Headers and redirects.** A job may not set `Host`, `Content-Length`,
//!   `Transfer-Encoding`, `Connection` or `X-EZThrottle-*`; credential headers never follow
//!   a redirect to another origin; webhooks follow no redirect.
//!
//! API keys and webhook secrets never appear in `Debug` output, logs, ids or answers
//! (tenants are named `cust_<sha256 prefix>`; secrets are answered masked). Target answers
//! are buffered up to 1 MiB ([`EngineBuilder::max_response_bytes`]). `/health` and
//! `/metrics` need no key, but `/metrics` names target hosts (other tenants' targets) only
//! to a request carrying the metrics key ([`EngineBuilder::metrics_key`], `--metrics-key`)
//! as `Authorization: Bearer`; everyone else sees totals. Without a metrics key no one
//! sees per-host series, except in open mode, where everyone does.
//!
//! # Durability
//!
//! Every job lives in a [`store::JobStore`]: a submission is answered only once the store
//! has it, and every change of its progress (each attempt before it is sent, each outcome,
//! each webhook delivery) is saved. The binary keeps jobs in a SQLite file by default
//! (`--store sqlite:PATH`, default `sqlite:ezthrottle-local.sqlite3` in its working
//! directory; `--store postgres://user:password@host/dbname` for PostgreSQL
//! ([`store::PostgresStore`], the store several engines share: see "Replicas");
//! `--store memory:` for throwaway runs; `EZTHROTTLE_LOCAL_STORE`); the builder
//! keeps them in memory unless given [`EngineBuilder::store`] or
//! [`EngineBuilder::store_at`]. The file holds the jobs as submitted, credentials
//! included, and is created readable by its owner only.
//!
//! - **Recovery.** At start, every job the store holds unsettled goes on: a queued job is
//!   queued again (not before its `retry_at`); a job that was running runs again from its
//!   first step (not before the backoff it was waiting for, and within the `on_timeout`
//!   windows its fallbacks started before the stop), its interrupted attempt recorded as
//!   `interrupted` and the attempts made before counted against its retry policy (**at-least-once**: a target may see the
//!   interrupted request twice, so give jobs with side effects an `Idempotency-Key`
//!   header the target honours); a finished job submits the children and delivers the
//!   webhooks its saved progress does not show as done (not before the retry that was
//!   due). Idempotency keys survive: a
//!   duplicate after a restart answers the original job.
//! - **Drain.** SIGTERM, SIGINT and [`RunningEngine::shutdown`] stop admission
//!   (`503` with `Retry-After: 5`), start no queued job, let running attempts and webhook
//!   deliveries finish within the grace period ([`EngineBuilder::shutdown_grace`],
//!   `--shutdown-grace`, default 30 s), then stop; what was left is resumed at the next
//!   start (with a durable store).
//! - **Webhook secrets** set through `/api/v1/webhook-secrets` are kept in the store too:
//!   they survive a restart.
//!
//! # Replicas
//!
//! Every engine started on one PostgreSQL database is a replica: they share the jobs,
//! idempotency keys, webhook secrets, schedules and results, and any of them answers for
//! any job. The rules ([`store::Replication`]):
//!
//! - **One replica runs each job**, and each host: the replica that takes a host claims
//!   its jobs (`FOR UPDATE SKIP LOCKED`) and paces it, so a target sees its pace however
//!   many replicas run. A pace the target announces is shared with every replica.
//! - **Leases.** Each replica renews its lease every third of `--replica-lease`
//!   (default 10 s). When a replica dies, another releases its hosts and jobs once the
//!   lease has expired and resumes them as a restarted engine would (at-least-once for
//!   the attempt in flight). A replica that cannot renew in time stops itself (the binary
//!   exits with status 1), so a job never runs on two live replicas.
//! - **Submissions** go to any replica: the key is bound in the same statement that
//!   stores the job, so concurrent identical submissions spread over replicas make one
//!   job. A job submitted to another replica than the one running its host starts at the
//!   runner's next poll (every 100 ms, no `LISTEN/NOTIFY` on the hot path).
//! - **Limits are per replica**: `--max-queued-jobs` and the tenant shares count the jobs
//!   queued on each replica.
//! - The schema (`ezt_*` tables) is created and migrated at start under an advisory lock,
//!   so replicas may start at once.
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
mod guard;
mod http;
mod limits;
mod live;
mod metrics;
mod pacing;
mod recovery;
mod redirect;
mod replicas;
mod secrets;
pub mod store;
mod submit;
mod tenancy;
mod util;
mod workflow;

pub use config::Secret;
pub use engine::{Engine, EngineBuilder, RunningEngine, StartError};
pub use limits::JobLimits;
