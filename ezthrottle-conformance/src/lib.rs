//! The EZThrottle conformance app: an axum app with the same HTTP surface as the official
//! SDKs' integration test apps (Python `test-app/app.py`, Node `test-app/app.js`), built
//! on the Rust SDK. Their hurl suites can run against it unchanged, and its own test
//! drives every scenario against an in-process `ezthrottle-local` engine.
//!
//! Each scenario submits a job and answers at once with the receipt; EZThrottle runs the
//! job and POSTs the result to `{APP_URL}/webhook`; the caller then polls
//! `GET /webhooks/{job_id}`.
//!
//! # Endpoints
//!
//! | endpoint | answer |
//! |---|---|
//! | `POST /webhook` | stores the delivery under its `job_id`: `{"status":"received","job_id"}`; verified first when a secret is configured (400/401 `{"status":"rejected","error"}`); 422 without a string `job_id` |
//! | `GET /webhooks/{job_id}` | `{"found":true,"job_id","webhook":{"received_at","data":<payload>,"deliveries","verified"}}`, or 404 `{"found":false,"job_id"}`; an `idempotent_key` works too (as the Go test app queries; the answer then adds `"idempotent_key"`) |
//! | `GET /webhooks` | `{"count","webhooks":{<job_id>: <webhook>}}` |
//! | `POST /webhooks/reset` | `{"status":"cleared"}` |
//! | `POST /test/performance/basic` | `{"test":"performance_basic","idempotent_key":"performance_basic_<uuid>","result":<receipt>}` |
//! | `POST /test/performance/racing` | `{"test":"performance_racing","idempotent_key":"performance_racing_<uuid>","result":<receipt, status racing>}` |
//! | `POST /test/performance/fallback-chain` | `{"test":"performance_fallback_chain","idempotent_key":"fallback_chain_<uuid>","result":<receipt>}` |
//! | `POST /test/workflow/on-success` | `{"test":"workflow_on_success","parent_key":"on_success_parent_<uuid>","child_key":"on_success_child_<uuid>","result":<receipt>}` |
//! | `POST /test/idempotent/hash` | `{"test":"idempotent_hash","result1","result2","idempotent_key":<server key>,"expected":"Same job_id (deduped)","deduped":true}` |
//! | `POST /test/idempotent/unique` | `{"test":"idempotent_unique","key1","key2","result1","result2","expected":"Different job_ids","different":true}` |
//! | `POST /test/decorator/auto-forward` | `{"test":"decorator_auto_forward","idempotent_key":"decorator_forward_<uuid>","result":<receipt>,"message":"Auto-forwarded!"}` |
//! | `POST /test/frugal/local` | `{"test":"frugal_local","result":{"status":"success","executed_locally":true,"status_code":200,"response":".."}}` |
//! | `GET /`, `GET /health` | what is served and how it is configured; `{"status":"healthy"}` |
//!
//! `<receipt>` is the submission answer: `{"job_id","status":"queued"|"racing","idempotent_key"?,"duplicate"?}`.
//! A scenario whose submission fails answers **502** `{"test":"<name>","error":"<message>"}`.
//!
//! # Configuration (environment)
//!
//! | variable | meaning |
//! |---|---|
//! | `PORT` | port to listen on (default 8000) |
//! | `HOST` | address to listen on (default `127.0.0.1`; `0.0.0.0` in a container) |
//! | `APP_URL` | public base URL of this app; webhook URLs are `{APP_URL}/webhook` (default `http://127.0.0.1:$PORT`) |
//! | `EZTHROTTLE_URL` | a direct engine (`ezthrottle-local`, self-hosted); with `EZTHROTTLE_TRACKTAGS_URL`, the EZThrottle URL behind the proxy |
//! | `EZTHROTTLE_API_KEY` | the API key: alone, EZThrottle cloud; optional for a direct engine |
//! | `EZTHROTTLE_TRACKTAGS_URL` | cloud mode through this proxy |
//! | `UPSTREAM_URL` | an httpbin-compatible base URL the scenarios target (default: a built-in one, see [`upstream`]) |
//! | `EZTHROTTLE_WEBHOOK_SECRET` | verify every delivery's `X-EZThrottle-Signature` with it (and `EZTHROTTLE_WEBHOOK_SECONDARY_SECRET`) |
//!
//! **Webhook verification.** The official test apps store deliveries without verifying
//! them. This app does the same when no secret is configured (`verified: false` in the
//! stored entry), and refuses unsigned or badly signed deliveries when one is.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ezthrottle_conformance::{Config, start};
//!
//! let app = start(Config::new().port(0).ezthrottle_url("http://127.0.0.1:4000")).await?;
//! println!("listening on {}", app.base_url());
//! app.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
pub mod config;
pub mod deliveries;
pub mod scenarios;
pub mod upstream;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ezthrottle::webhook::Verifier;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use app::{AppState, router};
pub use config::{Config, ConfigError};
pub use deliveries::{Deliveries, Delivery};
pub use upstream::Upstream;

/// Why the app did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The settings do not make an EZThrottle client (e.g. no API key and no engine URL).
    #[error("cannot build the EZThrottle client: {0}")]
    Client(#[from] ezthrottle::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The built-in upstream could not start.
    #[error("cannot start the built-in upstream: {0}")]
    Upstream(std::io::Error),
    /// A webhook secret is too short to verify anything.
    #[error("the webhook secret is refused: {0}")]
    WeakWebhookSecret(#[from] ezthrottle::protocol::WeakSecret),
}

/// A running app. Stop it with [`shutdown`](Self::shutdown); dropping it leaves it
/// running until the runtime ends.
#[derive(Debug)]
pub struct RunningApp {
    addr: SocketAddr,
    state: AppState,
    upstream: Option<Upstream>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Starts the app as `config` says: builds the client, starts the built-in upstream when
/// no `upstream_url` is set, binds and serves.
///
/// # Errors
///
/// [`StartError`]: no usable client configuration, the address cannot be bound.
pub async fn start(config: Config) -> Result<RunningApp, StartError> {
    let client = config.client()?;
    let listener =
        TcpListener::bind(config.bind).await.map_err(|source| StartError::Bind { addr: config.bind, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.bind, source })?;
    let (upstream, upstream_url) = match &config.upstream_url {
        Some(url) => (None, url.clone()),
        None => {
            let upstream = Upstream::start().await.map_err(StartError::Upstream)?;
            let url = upstream.base_url();
            (Some(upstream), url)
        }
    };
    let app_url = config.app_url.clone().unwrap_or_else(|| format!("http://{}", reachable(addr)));
    let mut state = AppState::new(client, app_url, upstream_url);
    if let Some(primary) = &config.webhook_secret {
        let mut verifier = Verifier::new(primary)?;
        if let Some(secondary) = &config.webhook_secret_secondary {
            verifier = verifier.with_secondary(secondary)?;
        }
        state = state.with_verifier(verifier);
    }
    let (shutdown, stop) = oneshot::channel::<()>();
    let router = router(state.clone());
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stop.await;
        });
        if let Err(error) = served.await {
            tracing::error!(%error, "the conformance app stopped");
        }
    });
    Ok(RunningApp { addr, state, upstream, shutdown: Some(shutdown), task })
}

/// The address to reach a listener bound to `addr` (loopback for an unspecified address).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

impl RunningApp {
    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (loopback when listening on every address).
    pub fn base_url(&self) -> String {
        format!("http://{}", reachable(self.addr))
    }

    /// The public base URL (`APP_URL`, or [`base_url`](Self::base_url)).
    pub fn app_url(&self) -> &str {
        &self.state.app_url
    }

    /// `{app_url}/webhook`: where the scenarios' jobs deliver.
    pub fn webhook_url(&self) -> String {
        self.state.webhook_url()
    }

    /// The httpbin-compatible base URL the scenarios target.
    pub fn upstream_url(&self) -> &str {
        &self.state.upstream_url
    }

    /// Whether deliveries are verified (a webhook secret is configured).
    pub fn verifies_webhooks(&self) -> bool {
        self.state.verifier.is_some()
    }

    /// The received deliveries, awaitable.
    pub fn deliveries(&self) -> &Deliveries {
        &self.state.deliveries
    }

    /// Stops serving (and the built-in upstream), waiting at most 5 s for requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
        if let Some(upstream) = self.upstream.take() {
            upstream.shutdown().await;
        }
    }
}
