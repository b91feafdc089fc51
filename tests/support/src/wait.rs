//! Bounded waits: a test never hangs, and never sleeps where it can check.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Every wait in the tests gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often [`eventually`] and [`poll`] look again.
const INTERVAL: Duration = Duration::from_millis(10);

/// Waits until `done` holds, looking again every few milliseconds.
///
/// For state with no event to await (a store, a counter); a server's requests are awaited
/// with [`TestServer::wait`](crate::TestServer::wait) instead.
///
/// # Panics
/// After [`DEADLINE`], naming `what`.
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Calls `check` until it answers `Some`, and answers that.
///
/// # Panics
/// After [`DEADLINE`], naming `what`.
pub async fn poll<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(INTERVAL).await;
    }
}
