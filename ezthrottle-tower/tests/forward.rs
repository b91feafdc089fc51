//! Integration tests of `ezthrottle-tower` against real servers on 127.0.0.1: loopback
//! targets, the local engine as EZThrottle and a verifying webhook receiver.
#![allow(missing_docs, unreachable_pub)]

#[path = "forward/support.rs"]
mod support;

#[path = "forward/bounds.rs"]
mod bounds;
#[path = "forward/breaker.rs"]
mod breaker;
#[path = "forward/ezthrottle_down.rs"]
mod ezthrottle_down;
#[path = "forward/hyper.rs"]
mod hyper;
#[path = "forward/mock.rs"]
mod mock;
#[path = "forward/pace.rs"]
mod pace;
#[path = "forward/replay.rs"]
mod replay;
#[cfg(feature = "reqwest-middleware")]
#[path = "forward/reqwest.rs"]
mod reqwest;
#[path = "forward/stack.rs"]
mod stack;
