//! The `ezthrottle-local` binary: an EZThrottle-compatible engine on a loopback port.
//!
//! Prints `listening on http://<addr>` as its first line on stdout, then serves until
//! SIGINT or SIGTERM.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use ezthrottle_local::StartError;
use ezthrottle_local::cli::{LocalArgs, ShutdownSignals};

#[tokio::main]
async fn main() -> ExitCode {
    let args = LocalArgs::parse();
    let signals = ShutdownSignals::install();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let builder = match args.to_builder() {
        Ok(builder) => builder,
        Err(err) => {
            eprintln!("ezthrottle-local: {err}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match builder.start().await {
        Ok(engine) => engine,
        // A combination of flags that is refused: a usage error, like clap's.
        Err(err @ StartError::OpenOnNetwork { .. }) => {
            eprintln!("ezthrottle-local: {err}");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("ezthrottle-local: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", engine.base_url());
    let _ = stdout.flush();
    drop(stdout);
    tokio::select! {
        () = signals.recv() => {}
        () = engine.lease_lost() => {
            eprintln!("ezthrottle-local: this replica lost its lease and stopped");
            return ExitCode::FAILURE;
        }
    }
    tracing::info!("stopping");
    engine.shutdown().await;
    ExitCode::SUCCESS
}
