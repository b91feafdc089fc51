//! `ezthrottle local`: the engine of `ezthrottle-local`, started as its binary does.

use ezthrottle_local::cli::ShutdownSignals;
use serde_json::json;

use crate::args::LocalCommand;
use crate::output::{CliError, Output, Status};

/// Starts the engine, prints `listening on http://<addr>` first, serves until SIGINT or
/// SIGTERM, then shuts down gracefully.
pub(crate) async fn run(command: &LocalCommand, out: Output) -> Result<Status, CliError> {
    let signals = ShutdownSignals::install();
    let engine = command
        .args
        .to_builder()
        .map_err(|err| CliError::failed_with("the engine did not start", &err))?
        .start()
        .await
        .map_err(|err| match err {
            // A combination of flags the engine refuses: nothing started, a usage error.
            ezthrottle_local::StartError::OpenOnNetwork { .. } => CliError::usage(&err),
            err => CliError::failed_with("the engine did not start", &err),
        })?;
    let url = engine.base_url();
    out.print(&format!("listening on {url}"), &json!({ "listening_on": url }));
    signals.recv().await;
    tracing::info!("stopping");
    engine.shutdown().await;
    Ok(Status::Ok)
}
