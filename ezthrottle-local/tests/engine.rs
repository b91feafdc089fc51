//! Integration tests of `ezthrottle-local` against real loopback servers.
#![allow(missing_docs, unreachable_pub)]

#[path = "engine/support.rs"]
mod support;

#[path = "engine/admin.rs"]
mod admin;
#[path = "engine/auth.rs"]
mod auth;
#[path = "engine/binary.rs"]
mod binary;
#[path = "engine/bounds.rs"]
mod bounds;
#[path = "engine/crash.rs"]
mod crash;
#[path = "engine/events.rs"]
mod events;
#[path = "engine/execution.rs"]
mod execution;
#[path = "engine/fallbacks.rs"]
mod fallbacks;
#[path = "engine/hostile.rs"]
mod hostile;
#[path = "engine/idempotency.rs"]
mod idempotency;
#[path = "engine/job_status.rs"]
mod job_status;
#[path = "engine/pacing.rs"]
mod pacing;
#[path = "engine/peer_spellings.rs"]
mod peer_spellings;
#[path = "engine/postgres.rs"]
mod postgres;
#[path = "engine/proxy.rs"]
mod proxy;
#[path = "engine/redirects.rs"]
mod redirects;
#[path = "engine/replicas.rs"]
mod replicas;
#[path = "engine/slow_clients.rs"]
mod slow_clients;
#[path = "engine/ssrf.rs"]
mod ssrf;
#[path = "engine/store.rs"]
mod store;
#[path = "engine/validation.rs"]
mod validation;
#[path = "engine/webhooks.rs"]
mod webhooks;
#[path = "engine/workflow.rs"]
mod workflow;
