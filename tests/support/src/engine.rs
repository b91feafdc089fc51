//! The in-process engine (`ezthrottle-local`) as EZThrottle, and clients aimed at it.

use std::time::Duration;

use ezthrottle_core::{EZThrottle, Pace};
use ezthrottle_local::{Engine, EngineBuilder, RunningEngine};

/// An engine builder with fast timings and pacing lifted: retries 10 ms to 200 ms apart,
/// webhook retries from 20 ms (5 tries), a 10 s target timeout. Tests override what they
/// measure, and choose `open()` or `api_key(..)` and a webhook secret.
pub fn fast() -> EngineBuilder {
    Engine::builder()
        .default_pace(Pace::UNLIMITED)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .webhook_retry(Duration::from_millis(20), 5)
        .target_timeout(Duration::from_secs(10))
}

/// Starts an open [`fast`] engine signing its webhooks with `secret`, and a direct client to it.
///
/// # Panics
/// If the engine does not start.
pub async fn start_open(secret: &str) -> (RunningEngine, EZThrottle) {
    let engine = fast().open().webhook_secret(secret).start().await.expect("the engine starts");
    let client = client(&engine);
    (engine, client)
}

/// A direct-mode client to `engine` (no API key: the engine is open).
///
/// # Panics
/// If the client cannot be built.
pub fn client(engine: &RunningEngine) -> EZThrottle {
    EZThrottle::builder().direct(engine.base_url()).build().expect("a direct client")
}

/// A client aimed at a loopback port nothing listens on: every call is `Unreachable`.
///
/// # Panics
/// If no loopback port can be bound.
pub fn unreachable_client() -> EZThrottle {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    EZThrottle::builder()
        .direct(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a direct client")
}
