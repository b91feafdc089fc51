//! `ezthrottle local`: the engine of `ezthrottle-local`, started as its binary does.

use serde_json::json;

use crate::args::LocalCommand;
use crate::output::{CliError, Output, Status};

/// Starts the engine, prints `listening on http://<addr>` first, serves until SIGINT or
/// SIGTERM, then shuts down gracefully.
pub(crate) async fn run(command: &LocalCommand, out: Output) -> Result<Status, CliError> {
    let signals = Signals::install();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let engine = command
        .args
        .to_builder()
        .start()
        .await
        .map_err(|err| CliError::failed_with("the engine did not start", &err))?;
    let url = engine.base_url();
    out.print(&format!("listening on {url}"), &json!({ "listening_on": url }));
    signals.recv().await;
    tracing::info!("stopping");
    engine.shutdown().await;
    Ok(Status::Ok)
}

/// SIGINT and SIGTERM, listened for from creation on.
///
/// Adapted from the `ezthrottle-local` binary's `wait_for_signal` (its `main.rs` is not a
/// library module), with one difference: the Unix handlers are installed before the
/// engine prints its address, so a signal sent as soon as that line is read is not lost
/// (nor kills the process by the default action).
struct Signals {
    #[cfg(unix)]
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { handlers: signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()) }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
    async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut interrupt, mut terminate)) = self.handlers {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
