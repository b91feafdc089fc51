//! The engine's telemetry, in a process of its own (see `Cargo.toml`).
#![allow(missing_docs, unreachable_pub, dead_code, unused_imports)]

#[path = "engine/support.rs"]
mod support;

#[path = "engine/telemetry.rs"]
mod telemetry;
