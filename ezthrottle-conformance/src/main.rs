//! `ezthrottle-conformance`: runs the conformance app, configured by the environment
//! (see the library docs), until SIGINT or SIGTERM.

use std::process::ExitCode;

use ezthrottle_conformance::{Config, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ezthrottle-conformance: {error}");
            return ExitCode::FAILURE;
        }
    };
    let app = match start(config).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("ezthrottle-conformance: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", app.addr());
    tracing::info!(
        app_url = app.app_url(),
        webhook_url = %app.webhook_url(),
        upstream_url = app.upstream_url(),
        verifies_webhooks = app.verifies_webhooks(),
        "conformance app ready"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    app.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
