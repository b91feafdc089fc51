//! Loopback targets, webhook receivers, and an API client for the engine tests.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use ezthrottle_core::webhook::Verifier;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use ezthrottle_local::{EngineBuilder, RunningEngine};
use ezthrottle_test_support::{Answer, Recorded, RoutedServer, Routes};
pub use ezthrottle_test_support::{DEADLINE, Recorded as Hit};
use serde_json::{Value, json};
use tokio::time::Instant;

pub const KEY: &str = "ck_live_test_key";

/// The key that shows the per-host series of `/metrics` ([`fast_engine`] sets it).
pub const METRICS_KEY: &str = "mk_operator_metrics_key";

/// A builder with fast timings and pacing lifted; tests override what they measure.
pub fn fast_engine() -> EngineBuilder {
    ezthrottle_test_support::engine::fast().api_key(KEY).metrics_key(METRICS_KEY)
}

pub async fn start(builder: EngineBuilder) -> (RunningEngine, Api) {
    let engine = builder.start().await.expect("engine starts");
    let api = Api::new(&engine.base_url(), KEY);
    (engine, api)
}

/// A recording target ([`Server`]), and the engine `builder` makes with a client of its API.
pub async fn target_and(builder: EngineBuilder) -> (Server, RunningEngine, Api) {
    let target = Server::start().await;
    let (engine, api) = start(builder).await;
    (target, engine, api)
}

/// The region an attempt was made from.
pub trait Region {
    fn region(&self) -> Option<String>;
}

impl Region for Hit {
    fn region(&self) -> Option<String> {
        self.header("x-ezthrottle-region").map(str::to_owned)
    }
}

/// A loopback HTTP server recording every request (the shared test server).
///
/// Routes (any method): `/ok`, `/status/{code}`, `/flaky/{n}` (the first `n` hits answer
/// 429 with `Retry-After: 1`), `/fail-in/{region}` (500 from that region, 200 elsewhere),
/// `/busy-then-fail-in/{region}` (503 the first time, then as `/fail-in/{region}`),
/// `/slow/{ms}`, `/fast-in/{region}` (200 at once from that region, after [`SLOW_REGION`]
/// elsewhere),
/// `/pace/{rps}/{max}` (200 with `X-EZTHROTTLE-*` pacing headers), `/aqueduct` (both header
/// families), `/hook` and `/hook/{n}` (webhook receivers: `/hook/{n}` answers 503 to the
/// first `n` deliveries), `/redirect/{code}/{rest}` (`code` to `/{rest}` on the same
/// server) and `/away/{code}/{port}/{rest}` (`code` to `http://127.0.0.1:{port}/{rest}`).
pub type Server = RoutedServer<EngineTests>;

/// How long `/fast-in/{region}` keeps the other regions waiting: far longer than any run
/// of the suite takes to finish a raced job, however loaded the machine.
pub const SLOW_REGION: Duration = Duration::from_secs(60);

pub struct EngineTests;

impl Routes for EngineTests {
    fn answer(hit: &Recorded) -> Answer {
        route(hit)
    }
}

fn route(hit: &Recorded) -> Answer {
    let region = hit.region().unwrap_or_default();
    let parts: Vec<&str> = hit.path_only().trim_start_matches('/').split('/').collect();
    let ok = || Answer::json(200, json!({"result": "data"}));
    let first = |n: &str| hit.nth <= n.parse::<usize>().unwrap_or(0);
    match parts.as_slice() {
        ["status", code] => {
            let code = code.parse::<u16>().ok().filter(|c| (100..1000).contains(c)).unwrap_or(200);
            Answer::text(code, &format!("status {code}"))
        }
        ["flaky", n] if first(n) => Answer::text(429, "slow down").header("retry-after", "1"),
        ["fail-in", bad] if region == *bad => Answer::text(500, "region broken"),
        ["busy-then-fail-in", _] if hit.nth == 1 => Answer::text(503, "busy"),
        ["busy-then-fail-in", bad] if region == *bad => Answer::text(500, "region broken"),
        ["fast-in", fast, ..] => {
            let answer = Answer::text(200, &format!("from {region}"));
            if region == *fast { answer } else { answer.after(SLOW_REGION) }
        }
        ["slow", ms, ..] => ok().after(Duration::from_millis(ms.parse().unwrap_or(0))),
        ["pace", rps, max, ..] => {
            Answer::text(200, "paced").header("x-ezthrottle-rps", *rps).header("x-ezthrottle-max-concurrent", *max)
        }
        ["aqueduct"] => Answer::text(200, "paced")
            .header("x-ezthrottle-rps", "3")
            .header("x-aqueduct-rps", "7")
            .header("x-ezthrottle-max-concurrent", "3")
            .header("x-aqueduct-max-concurrent", "4"),
        ["redirect", code, rest @ ..] => {
            Answer::status(code.parse().unwrap_or(302)).header("location", format!("/{}", rest.join("/")))
        }
        ["away", code, port, rest @ ..] => Answer::status(code.parse().unwrap_or(302))
            .header("location", format!("http://127.0.0.1:{port}/{}", rest.join("/"))),
        ["hook"] => Answer::status(200),
        ["hook", n, ..] if first(n) => Answer::status(503),
        ["hook", ..] => Answer::status(200),
        _ => ok(),
    }
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
        let response = self.submit_response(body).await;
        let status = response.status().as_u16();
        (status, response.json_value().await)
    }

    /// Submits `body` as it is; answers the response as it came.
    pub async fn submit_response(&self, body: String) -> reqwest::Response {
        let request = self.http.post(format!("{}/api/v1/jobs", self.base)).bearer_auth(&self.key);
        request.header("content-type", "application/json").body(body).send().await.expect("submit")
    }

    /// Submits and expects 201; returns the job id.
    pub async fn submit_ok(&self, job: &Value) -> String {
        let (status, body) = self.submit(job).await;
        assert_eq!(status, 201, "{body}");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Submits a plain GET job to each URL (each expecting 201); answers the ids in order.
    pub async fn submit_all(&self, urls: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut ids = Vec::new();
        for url in urls {
            ids.push(self.submit_ok(&job(&url, json!({}))).await);
        }
        ids
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

    /// Polls each job until it is terminal; answers the jobs in order.
    pub async fn wait_all_terminal(&self, ids: &[String]) -> Vec<Value> {
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(self.wait_terminal(id).await);
        }
        jobs
    }

    /// Submits a plain GET job to each URL and waits until every one succeeded; answers how
    /// long that took from the first submission.
    pub async fn time_all_succeeding(&self, urls: impl IntoIterator<Item = String>) -> Duration {
        let started = Instant::now();
        let ids = self.submit_all(urls).await;
        for done in self.wait_all_terminal(&ids).await {
            assert_eq!(done["status"], "success", "{done:#}");
        }
        started.elapsed()
    }

    /// Polls the job until it is terminal and every webhook delivery is settled.
    pub async fn wait_delivered(&self, id: &str) -> Value {
        self.wait_job(id, |job| !job["webhook_quorum"]["met"].is_null()).await
    }

    /// `method path` with `authorization` as the whole header (`None`: no header) and
    /// `body`; answers the HTTP status.
    pub async fn status_of(&self, method: &str, path: &str, authorization: Option<&str>, body: String) -> u16 {
        let mut request = self.http.request(method.parse().expect("a method"), format!("{}{path}", self.base));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.body(body).send().await.expect("an answer").status().as_u16()
    }

    /// `/metrics` without a key (the totals only).
    pub async fn metrics(&self) -> String {
        self.metrics_as(None).await
    }

    /// `/metrics` with [`METRICS_KEY`] (the per-host series too).
    pub async fn operator_metrics(&self) -> String {
        self.metrics_as(Some(METRICS_KEY)).await
    }

    /// `/metrics` with `key` as bearer token, if any.
    pub async fn metrics_as(&self, key: Option<&str>) -> String {
        let mut request = self.http.get(format!("{}/metrics", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("metrics").text().await.expect("text")
    }

    /// Asserts that `/metrics` shows the pace of `host` as `rps` requests a second and `max`
    /// in flight.
    pub async fn assert_pace(&self, host: &str, rps: u32, max: u32) {
        let metrics = self.operator_metrics().await;
        let shown = metrics.contains(&format!("ezthrottle_host_pace_rps{{host=\"{host}\"}} {rps}"))
            && metrics.contains(&format!("ezthrottle_host_max_concurrent{{host=\"{host}\"}} {max}"));
        assert!(shown, "{host} not paced at {rps} RPS, {max} in flight: {metrics}");
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

// The real binary.

/// The webhook secret of [`binary`].
pub const SECRET: &str = "whsec_crash_test_secret";

/// Starts the real binary on the store at `store` (a `--store` value) with the test key
/// and [`SECRET`]; answers the process and a client of its API.
pub async fn binary(store: &str, extra: &[&str]) -> (Child, Api) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezthrottle-local"))
        .args(["--bind", "127.0.0.1:0", "--api-key", KEY, "--webhook-secret", SECRET, "--store", store])
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the binary");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(DEADLINE, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the address in time")
        .expect("read stdout")
        .expect("a first line");
    let base = line.strip_prefix("listening on ").expect("the first line names the address").to_owned();
    (child, Api::new(&base, KEY))
}

/// Sends `name` (`-KILL`, `-TERM`) to the process.
pub fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args([name, &pid]).status().expect("run kill");
    assert!(sent.success());
}

/// The job ids of the verified deliveries `/hook` of `target` received.
pub fn delivered(target: &Server) -> HashSet<String> {
    let verifier = Verifier::new(SECRET).unwrap();
    target
        .hits("/hook")
        .iter()
        .filter_map(|hit| {
            let header = hit.header("x-ezthrottle-signature")?;
            verifier.verify(&hit.body, header).ok()?;
            hit.json()["job_id"].as_str().map(str::to_owned)
        })
        .collect()
}
