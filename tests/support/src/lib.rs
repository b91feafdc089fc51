//! What the workspace's tests, benches and end-to-end stories share: real servers on
//! 127.0.0.1, never mocks.
//!
//! - [`TestServer`]: a scripted HTTP server that answers per route and records every
//!   request (a target API, a proxy, a webhook receiver); [`RoutedServer`] for a test
//!   binary's fixed route table;
//! - [`serve`] (an axum app on a free loopback port), [`refused_addr`] (a port that
//!   refuses every connection) and [`free_addr`] (a port to bind later);
//! - [`RedisServer`]: a real `redis-server` on a free port, skipped (or failed, where it is
//!   required) with a clear message when it is not installed, never a hang;
//! - [`EndlessChunks`] behind a [`Gate`]: an answer that never ends, to prove a
//!   middleware streams it;
//! - [`post_unending`]: a request whose body never ends, to prove an answer came first;
//! - [`PostgresServer`]: a real PostgreSQL on a free port, run as an unprivileged user
//!   when the tests run as root;
//! - [`TempDir`]: a scratch directory (a store file) removed when dropped;
//! - [`eventually`] and [`poll`]: waits with a bounded [`DEADLINE`] instead of sleeps;
//! - [`webhook`]: signing secrets, the signing clock and payloads for webhook receivers;
//! - with the `engine` feature, [`engine`]: the in-process engine (`ezthrottle-local`) and
//!   clients aimed at it.
//!
//! Outside `engine` it depends on no workspace crate and speaks plain types (`SocketAddr`,
//! `String`, `http` types, `Bytes`): core's tests use it without pulling the crate under
//! test in again. An integration test links the same build of a crate as this one, so the
//! engine's own integration tests use `engine` too; a crate's `#[cfg(test)]` unit tests
//! are a second copy of it and must not mix their types with this crate's.

mod endless;
mod net;
mod postgres;
mod redis;
mod server;
mod telemetry;
mod temp;
mod unending;
mod wait;

#[cfg(feature = "engine")]
pub mod engine;
pub mod webhook;

pub use endless::{EndlessChunks, Gate};
pub use net::{BlackHole, CountingResolver, HangUp, free_addr, refused_addr, refused_url, serve, serve_with_peer_addr};
pub use postgres::{PG_USER, PostgresServer};
pub use redis::{REQUIRE_REDIS_ENV, RedisServer};
pub use server::{Answer, Recorded, RoutedServer, Routes, TestServer};
pub use telemetry::{Observed, TraceLog, observe};
pub use temp::TempDir;
pub use unending::{ANSWER_WITHIN, post_unending};
pub use wait::{DEADLINE, eventually, poll};
