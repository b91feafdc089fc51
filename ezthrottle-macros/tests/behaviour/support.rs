//! A loopback target, an engine, and a refused port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use ezthrottle::EZThrottle;
use ezthrottle_core::Pace;
use ezthrottle_local::{Engine, RunningEngine};

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    /// Whether the engine made it (rather than the code under test).
    pub fn by_engine(&self) -> bool {
        self.headers.contains_key("x-ezthrottle-job-id")
    }
}

#[derive(Default)]
struct TargetState {
    received: Vec<Received>,
    calls: HashMap<String, u32>,
}

/// The loopback target. Routes (by path):
/// - `/limited/..`: 429 to the code under test, 200 to the engine (which sends `X-EZThrottle-Job-Id`);
/// - `/missing`: 404;
/// - `/flaky`: 429 on the first call, then 200;
/// - `/refuses`: 429 on the first call, then 400;
/// - `/webhook`: 200 (records the payload).
pub struct Target {
    pub addr: SocketAddr,
    state: Arc<Mutex<TargetState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Target {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(TargetState::default()));
        let app = Router::new().route("/{*path}", any(answer)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, state, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, TargetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    /// Waits (bounded) until a request matching `wanted` arrives.
    pub async fn wait_for(&self, wanted: impl Fn(&Received) -> bool) -> Received {
        for _ in 0..200 {
            if let Some(found) = self.received().into_iter().find(&wanted) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the target never received the expected request; it got {:#?}", self.received());
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(state): State<Arc<Mutex<TargetState>>>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let path = format!("/{path}");
    let received = Received { method, path: path.clone(), headers, body: String::from_utf8_lossy(&body).into_owned() };
    let by_engine = received.by_engine();
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    state.received.push(received);
    let calls = {
        let calls = state.calls.entry(path.clone()).or_insert(0);
        *calls += 1;
        *calls
    };
    match path.as_str() {
        "/webhook" => (StatusCode::OK, "thanks"),
        "/missing" => (StatusCode::NOT_FOUND, "no such thing"),
        "/flaky" if calls == 1 => (StatusCode::TOO_MANY_REQUESTS, "slow down"),
        "/flaky" => (StatusCode::OK, "fine now"),
        "/refuses" if calls == 1 => (StatusCode::TOO_MANY_REQUESTS, "slow down"),
        "/refuses" => (StatusCode::BAD_REQUEST, "bad request"),
        _ if by_engine => (StatusCode::OK, r#"{"ok":true}"#),
        _ => (StatusCode::TOO_MANY_REQUESTS, "slow down"),
    }
}

/// An open engine with no pacing, and a direct client to it.
pub async fn engine() -> (RunningEngine, EZThrottle) {
    let engine = Engine::builder().open().default_pace(Pace::UNLIMITED).start().await.unwrap();
    let client = EZThrottle::builder().direct(engine.base_url()).build().unwrap();
    (engine, client)
}

/// A client aimed at a loopback port nothing listens on.
pub fn unreachable_client() -> EZThrottle {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    EZThrottle::builder().direct(format!("http://127.0.0.1:{port}")).timeout(Duration::from_secs(5)).build().unwrap()
}

/// `GET /api/v1/jobs/{id}` until the job ends (bounded).
pub async fn finished_job(engine: &RunningEngine, job_id: &str) -> serde_json::Value {
    let url = format!("{}/api/v1/jobs/{job_id}", engine.base_url());
    for _ in 0..200 {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let job: serde_json::Value = serde_json::from_str(&text).unwrap();
        if job["status"] == "success" || job["status"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {job_id} did not finish");
}
