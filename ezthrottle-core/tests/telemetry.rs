//! The client's telemetry, in a process of its own: the test sets a thread's default
//! subscriber, and the other tests' calls, in the same process, would race it for
//! tracing's callsite cache.
#![allow(missing_docs, dead_code, unused_imports)]

#[path = "client/support.rs"]
mod support;

#[path = "client/telemetry.rs"]
mod telemetry;
