//! Loopback targets, webhook receivers, and an API client for the engine tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use ezthrottle_core::Pace;
use ezthrottle_local::{Engine, EngineBuilder, RunningEngine};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

pub const KEY: &str = "ck_live_test_key";
/// Every wait in these tests gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A builder with fast timings and pacing lifted; tests override what they measure.
pub fn fast_engine() -> EngineBuilder {
    Engine::builder()
        .api_key(KEY)
        .default_pace(Pace::UNLIMITED)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .webhook_retry(Duration::from_millis(20), 5)
        .target_timeout(Duration::from_secs(10))
}

pub async fn start(builder: EngineBuilder) -> (RunningEngine, Api) {
    let engine = builder.start().await.expect("engine starts");
    let api = Api::new(&engine.base_url(), KEY);
    (engine, api)
}

/// One request a target or receiver saw.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hit {
    pub fn region(&self) -> Option<String> {
        self.headers.get("x-ezthrottle-region").and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

#[derive(Default)]
struct Log {
    hits: Mutex<Vec<Hit>>,
    notify: Notify,
}

/// A loopback HTTP server recording every request.
///
/// Routes (any method): `/ok`, `/status/{code}`, `/flaky/{n}` (the first `n` hits answer
/// 429 with `Retry-After: 1`), `/fail-in/{region}` (500 from that region, 200 elsewhere),
/// `/slow/{ms}`, `/fast-in/{region}` (200 at once from that region, after 3 s elsewhere),
/// `/pace/{rps}/{max}` (200 with `X-EZTHROTTLE-*` pacing headers), `/aqueduct` (both header
/// families), `/hook` and `/hook/{n}` (webhook receivers: `/hook/{n}` answers 503 to the
/// first `n` deliveries).
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    log: Arc<Log>,
}

impl Server {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener).await
    }

    /// Serves on `addr` (a port picked earlier, e.g. for a receiver that is down at first).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
        Self::serve(listener).await
    }

    async fn serve(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Log::default());
        let router =
            Router::new().route("/{*path}", any(handle)).route("/hook", post(hook)).with_state(Arc::clone(&log));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    pub fn hits(&self, prefix: &str) -> Vec<Hit> {
        self.log.hits.lock().expect("lock").iter().filter(|h| h.path.starts_with(prefix)).cloned().collect()
    }

    /// Waits until at least `count` requests whose path starts with `prefix` arrived.
    pub async fn wait_hits(&self, prefix: &str, count: usize) -> Vec<Hit> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let notified = self.log.notify.notified();
            let hits = self.hits(prefix);
            if hits.len() >= count {
                return hits;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "timed out waiting for {count} hits on {prefix}, got {}",
                hits.len()
            );
        }
    }
}

fn record(log: &Log, path: String, headers: HeaderMap, body: Bytes) -> usize {
    let mut hits = log.hits.lock().expect("lock");
    hits.push(Hit { path: path.clone(), at: Instant::now(), headers, body });
    let seen = hits.iter().filter(|h| h.path == path).count();
    drop(hits);
    log.notify.notify_waiters();
    seen
}

async fn hook(State(log): State<Arc<Log>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&log, "/hook".into(), headers, body);
    StatusCode::OK.into_response()
}

async fn handle(State(log): State<Arc<Log>>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let path = format!("/{path}");
    let region = headers.get("x-ezthrottle-region").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let seen = record(&log, path.clone(), headers, body);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ok = || (StatusCode::OK, [("content-type", "application/json")], r#"{"result":"data"}"#).into_response();
    match parts.as_slice() {
        ["ok"] => ok(),
        ["status", code] => {
            let code = code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
            (code, format!("status {code}")).into_response()
        }
        ["flaky", n] => {
            if seen <= n.parse::<usize>().unwrap_or(0) {
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()
            } else {
                ok()
            }
        }
        ["fail-in", bad] => {
            if region == *bad {
                (StatusCode::INTERNAL_SERVER_ERROR, "region broken").into_response()
            } else {
                ok()
            }
        }
        ["fast-in", fast, ..] => {
            if region != *fast {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            (StatusCode::OK, format!("from {region}")).into_response()
        }
        ["slow", ms, ..] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            ok()
        }
        ["pace", rps, max, ..] => (
            StatusCode::OK,
            [("x-ezthrottle-rps", rps.to_string()), ("x-ezthrottle-max-concurrent", max.to_string())],
            "paced",
        )
            .into_response(),
        ["aqueduct"] => (
            StatusCode::OK,
            [
                ("x-ezthrottle-rps", "3"),
                ("x-aqueduct-rps", "7"),
                ("x-ezthrottle-max-concurrent", "3"),
                ("x-aqueduct-max-concurrent", "4"),
            ],
            "paced",
        )
            .into_response(),
        ["hook", n, ..] => {
            if seen <= n.parse::<usize>().unwrap_or(0) {
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
        _ => ok(),
    }
}

/// A port with nothing listening on it (bound, then released).
pub async fn free_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// A client of the engine's direct API.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned(), key: key.to_owned() }
    }

    pub fn with_key(&self, key: &str) -> Self {
        Self { key: key.to_owned(), ..self.clone() }
    }

    pub async fn submit(&self, job: &Value) -> (u16, Value) {
        self.submit_raw(job.to_string()).await
    }

    pub async fn submit_raw(&self, body: String) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/jobs", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("submit");
        let status = response.status().as_u16();
        (status, response.json_value().await)
    }

    /// Submits and expects 201; returns the job id.
    pub async fn submit_ok(&self, job: &Value) -> String {
        let (status, body) = self.submit(job).await;
        assert_eq!(status, 201, "{body}");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    pub async fn job(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/api/v1/jobs/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("get job")
            .json_value()
            .await
    }

    /// Polls the job until `done` holds (bounded by [`DEADLINE`]).
    pub async fn wait_job(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never reached the expected state: {job:#}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls the job until it is `success` or `failed`.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        self.wait_job(id, |job| job["status"] == "success" || job["status"] == "failed").await
    }

    /// Polls the job until it is terminal and every webhook delivery is settled.
    pub async fn wait_delivered(&self, id: &str) -> Value {
        self.wait_job(id, |job| !job["webhook_quorum"]["met"].is_null()).await
    }

    pub async fn metrics(&self) -> String {
        self.http.get(format!("{}/metrics", self.base)).send().await.expect("metrics").text().await.expect("text")
    }

    /// Sends a proxy envelope; returns the HTTP status and the parsed answer.
    pub async fn proxy(&self, envelope: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/proxy", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(envelope.to_string())
            .send()
            .await
            .expect("proxy");
        (response.status().as_u16(), response.json_value().await)
    }
}

/// A job JSON for `url` with extra fields merged in.
pub fn job(url: &str, extra: Value) -> Value {
    let mut job = json!({"url": url, "method": "GET"});
    if let (Some(job), Value::Object(extra)) = (job.as_object_mut(), extra) {
        job.extend(extra);
    }
    job
}

/// Counts of the values of `field` over `items`.
pub fn count_by(items: &[Value], field: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item[field].as_str().unwrap_or("").to_owned()).or_default() += 1;
    }
    counts
}

/// `Response::json` without reqwest's `json` feature.
pub trait ResponseJson {
    fn json_value(self) -> impl std::future::Future<Output = Value> + Send;
}

impl ResponseJson for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap_or_default()).unwrap_or(Value::Null)
    }
}
