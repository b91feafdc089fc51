//! Loopback targets, the local engine as EZThrottle, a verifying webhook receiver, and
//! the clients under test.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use ezthrottle_core::webhook::Verifier;
use ezthrottle_core::{EZThrottle, WebhookPayload};
use ezthrottle_local::RunningEngine;
use ezthrottle_local::store::JobStore;
use ezthrottle_local::store::{MemoryStore, StoreFuture};
use ezthrottle_test_support::{Answer, TestServer};
pub use ezthrottle_test_support::{DEADLINE, Recorded as Hit, eventually, refused_addr};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, watch};

pub const SECRET: &str = "whsec_tower_forward_tests";

/// Header the engine sets on every attempt it makes.
const ENGINE_HEADER: &str = "x-ezthrottle-job-id";

/// Whether EZThrottle (the engine) made a request, not the client under test.
pub trait FromEngine {
    fn is_from_engine(&self) -> bool;
}

impl FromEngine for Hit {
    fn is_from_engine(&self) -> bool {
        self.headers.contains_key(ENGINE_HEADER)
    }
}

/// A loopback API recording every request (the shared test server; it derefs to it).
///
/// Routes (any method): `/echo…` (200; the body is the request body, byte for byte;
/// headers `x-target: echo` and `x-echo-method`), `/limited/{secs}` (429 with
/// `Retry-After: secs` and the body `slow down`), `/limited_until/{year}` (the same with
/// `Retry-After: Fri, 31 Dec {year} 23:59:59 GMT`), `/unavailable` (503), `/me` (429 with `Retry-After: 0`), `/switch` (the
/// status set with [`Target::set_switch`], waiting while the gate is closed). Requests
/// made by the engine (they carry `X-EZThrottle-Job-Id`) always get 200 with the echo.
#[derive(Clone)]
pub struct Target {
    server: TestServer,
    /// Status of `/switch` for direct calls.
    switch: Arc<AtomicU16>,
    /// While `false`, direct calls to `/switch` wait.
    gate: Arc<watch::Sender<bool>>,
}

impl Deref for Target {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Target {
    pub async fn start() -> Self {
        let switch = Arc::new(AtomicU16::new(200));
        let gate = Arc::new(watch::channel(true).0);
        let (status, open) = (Arc::clone(&switch), Arc::clone(&gate));
        let server = TestServer::start_async(move |hit| answer(hit, Arc::clone(&status), open.subscribe())).await;
        Self { server, switch, gate }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.requests()
    }

    /// Requests made by the client under test (not by the engine).
    pub fn direct_hits(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(|hit| !hit.is_from_engine()).collect()
    }

    /// Waits for the engine's attempt for `job_id`.
    pub async fn wait_engine_hit(&self, job_id: &str) -> Hit {
        self.wait_for(|hit| hit.header(ENGINE_HEADER) == Some(job_id)).await
    }

    pub fn set_switch(&self, status: u16) {
        self.switch.store(status, Ordering::SeqCst);
    }

    /// Opens or closes the gate of `/switch`.
    pub fn set_gate(&self, open: bool) {
        self.gate.send_replace(open);
    }
}

async fn answer(hit: Hit, switch: Arc<AtomicU16>, mut open: watch::Receiver<bool>) -> Answer {
    let echo = Answer::status(200).header("x-target", "echo").header("x-echo-method", hit.method.as_str());
    let echo = echo.body(hit.body.clone());
    if hit.is_from_engine() {
        return echo;
    }
    let segments: Vec<&str> = hit.path_only().trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["limited", secs] => Answer::text(429, "slow down").header("retry-after", *secs),
        ["limited_until", year] => {
            Answer::text(429, "slow down").header("retry-after", format!("Fri, 31 Dec {year} 23:59:59 GMT"))
        }
        ["unavailable"] => Answer::text(503, "down"),
        ["me"] => Answer::text(429, "slow down").header("retry-after", "0"),
        ["switch"] => {
            let _ = open.wait_for(|open| *open).await;
            let status = Some(switch.load(Ordering::SeqCst)).filter(|s| (100..1000).contains(s)).unwrap_or(200);
            Answer::text(status, &format!("switch {}", StatusCode::from_u16(status).unwrap_or(StatusCode::OK)))
        }
        _ => echo,
    }
}

/// A server that accepts connections and drops them at once (a reset).
pub struct Resetter {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Resetter {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Self { addr, accepted }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Most tests' servers: the scripted target and the engine as EZThrottle.
pub async fn target_and_ezthrottle() -> (Target, Ezt) {
    tokio::join!(Target::start(), Ezt::start())
}

/// The local engine as EZThrottle, with its store open for inspection.
pub struct Ezt {
    pub engine: RunningEngine,
    pub store: Jobs,
    pub client: EZThrottle,
}

/// The engine's [`MemoryStore`], read synchronously (its answers are ready at once).
pub struct Jobs(Arc<MemoryStore>);

fn at_once<T>(mut answer: StoreFuture<'_, T>) -> T {
    match answer.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(answer) => answer.expect("the memory store answers"),
        std::task::Poll::Pending => panic!("the memory store answers at once"),
    }
}

impl Jobs {
    /// How many jobs the engine holds.
    pub fn len(&self) -> usize {
        at_once(self.0.count())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A job as the engine stored it.
pub struct Submitted(ezthrottle_core::Job);

impl Submitted {
    /// The job as submitted.
    pub fn job(&self) -> &ezthrottle_core::Job {
        &self.0
    }
}

impl Ezt {
    pub async fn start() -> Self {
        let store = Arc::new(MemoryStore::new());
        let engine = ezthrottle_test_support::engine::fast()
            .open()
            .webhook_secret(SECRET)
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
            .webhook_retry(Duration::from_millis(20), 3)
            .store(Arc::clone(&store) as Arc<dyn JobStore>)
            .start()
            .await
            .expect("engine starts");
        let client = ezthrottle_test_support::engine::client(&engine);
        Self { engine, store: Jobs(store), client }
    }

    /// The job as the engine stored it.
    pub fn job(&self, job_id: &str) -> Submitted {
        let stored = at_once(self.store.0.get(job_id)).unwrap_or_else(|| panic!("no job {job_id} in the engine"));
        Submitted(stored.job().expect("a submission the engine wrote"))
    }

    pub async fn shutdown(self) {
        self.engine.shutdown().await;
    }
}

/// An EZThrottle client whose engine cannot be reached.
pub async fn unreachable_ezthrottle() -> EZThrottle {
    let addr = refused_addr().await;
    EZThrottle::builder().direct(format!("http://{addr}")).build().expect("client")
}

/// A webhook receiver verifying every delivery's signature.
pub struct Receiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<WebhookPayload>,
    pub rejected: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start() -> Self {
        #[derive(Clone)]
        struct Hook {
            verifier: Arc<Verifier>,
            tx: mpsc::UnboundedSender<WebhookPayload>,
            rejected: Arc<AtomicUsize>,
        }
        async fn receive(State(hook): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let header = headers.get("x-ezthrottle-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if hook.verifier.verify(&body, header).is_err() {
                hook.rejected.fetch_add(1, Ordering::SeqCst);
                return StatusCode::UNAUTHORIZED;
            }
            match serde_json::from_slice::<WebhookPayload>(&body) {
                Ok(payload) => {
                    let _ = hook.tx.send(payload);
                    StatusCode::OK
                }
                Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let rejected = Arc::new(AtomicUsize::new(0));
        let hook = Hook { verifier: Arc::new(Verifier::new(SECRET).unwrap()), tx, rejected: Arc::clone(&rejected) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/hook", post(receive)).with_state(hook);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url: format!("http://{addr}/hook"), rx, rejected }
    }

    /// The next verified delivery.
    pub async fn next(&mut self) -> WebhookPayload {
        tokio::time::timeout(DEADLINE, self.rx.recv()).await.expect("a webhook in time").expect("receiver open")
    }
}

/// A request body: buffered (exact size), or streamed from a channel with no size hint
/// or with an announced exact size.
#[derive(Debug)]
pub enum TestBody {
    Full(Full<Bytes>),
    Channel(mpsc::Receiver<Bytes>),
    Sized(mpsc::Receiver<Bytes>, u64),
}

impl TestBody {
    /// A streamed body and the sender of its chunks (dropping the sender ends it).
    pub fn channel() -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Self::Channel(rx))
    }

    /// A streamed body announcing exactly `len` bytes: captured, but only once they arrive.
    pub fn sized_channel(len: u64) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Self::Sized(rx, len))
    }
}

impl From<Bytes> for TestBody {
    fn from(bytes: Bytes) -> Self {
        Self::Full(Full::new(bytes))
    }
}

impl From<&'static str> for TestBody {
    fn from(text: &'static str) -> Self {
        Self::Full(Full::new(Bytes::from_static(text.as_bytes())))
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(full) => Pin::new(full).poll_frame(cx),
            Self::Channel(rx) | Self::Sized(rx, _) => {
                rx.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(full) => full.size_hint(),
            Self::Channel(_) => SizeHint::default(),
            Self::Sized(_, len) => SizeHint::with_exact(*len),
        }
    }
}

pub type HyperClient = Client<HttpConnector, TestBody>;

/// hyper-util's legacy client: a `tower::Service<http::Request<TestBody>>`.
pub fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http::<TestBody>()
}

/// Reads a whole body.
pub async fn bytes_of<B>(body: B) -> Bytes
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    body.collect().await.expect("body").to_bytes()
}

/// 1 KiB of bytes that are not UTF-8 text.
pub fn binary_kib() -> Bytes {
    (0..1024u32).map(|i| (i * 7 % 256) as u8).collect::<Vec<u8>>().into()
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
