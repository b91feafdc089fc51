//! Hostile input, generated: arbitrary and mutated job JSON, proxy envelopes and webhook
//! secret bodies against a real in-process engine. Whatever a caller sends, the engine
//! answers below 500 (for a proxy envelope, the forwarded answer too), keeps serving, and
//! panics nowhere (a panic hook counts them, spawned job tasks included).
//!
//! Case counts are bounded ([`CASES`] per property) so the whole file runs in seconds. The
//! engine is guarded and its allow-list names only the loopback target of this file, its
//! resolver answers `127.0.0.1` to every name and its connections start from `127.0.0.1`:
//! a generated job that is accepted reaches that target or nothing (never the network).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::Value;

use crate::support::*;

/// Cases per property.
const CASES: u32 = 96;

/// Longest wait for the accepted jobs to finish.
const SETTLE: Duration = Duration::from_secs(10);

/// The thread names of the panics seen since the hook was installed (each harness names
/// its runtime's threads, so it counts only its own).
static PANICKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or_default().to_owned();
            PANICKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(thread);
            previous(info);
        }));
    });
}

fn panics_on(threads: &str) -> usize {
    PANICKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().filter(|name| *name == threads).count()
}

/// Every name is `127.0.0.1`: nothing generated makes the engine ask a real DNS server.
struct LoopbackDns;

impl Resolve for LoopbackDns {
    fn resolve(&self, _: Name) -> Resolving {
        Box::pin(async { Ok(Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0)))) as Addrs) })
    }
}

#[path = "hostile_strategies.rs"]
mod strategies;

use strategies::{body, envelope, json_value, text};

/// An engine for hostile input, its target, and a blocking way to call it.
struct Harness {
    runtime: tokio::runtime::Runtime,
    engine: Option<ezthrottle_local::RunningEngine>,
    target: Server,
    http: reqwest::Client,
    base: String,
    threads: String,
    accepted: Mutex<Vec<String>>,
}

impl Harness {
    fn start(name: &str) -> Self {
        record_panics();
        let threads = format!("hostile-{name}");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(threads.clone())
            .enable_all()
            .build()
            .unwrap();
        let (engine, target) = runtime.block_on(async {
            let target = Server::start().await;
            let engine = fast_engine()
                .guard_private_addresses()
                .allowed_hosts([target.host()])
                .resolver(Arc::new(LoopbackDns))
                .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .start()
                .await
                .expect("engine starts");
            (engine, target)
        });
        let base = engine.base_url();
        Self {
            runtime,
            engine: Some(engine),
            target,
            http: reqwest::Client::new(),
            base,
            threads,
            accepted: Mutex::default(),
        }
    }

    fn target(&self) -> String {
        self.target.url("")
    }

    /// `POST path` with `body`; the status, and the forwarded status of a proxy answer.
    fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, Option<u64>), TestCaseError> {
        self.runtime.block_on(async {
            let response = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|err| TestCaseError::fail(format!("no answer: {err}")))?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let forwarded = &answer["forwarded_response"];
            let receipt = match forwarded["body"].as_str() {
                Some(inner) => serde_json::from_str(inner).unwrap_or(Value::Null),
                None => answer.clone(),
            };
            if let Some(id) = receipt["job_id"].as_str() {
                self.accepted.lock().unwrap().push(id.to_owned());
            }
            Ok((status, forwarded["status_code"].as_u64()))
        })
    }

    /// Waits until every accepted job is finished and its webhooks delivered or given up
    /// (a job scheduled ahead, `retry_at`, is left waiting once [`SETTLE`] has passed), so
    /// a panic in a job's task happens before the count.
    fn settle(&self) {
        let ids = self.accepted.lock().unwrap().clone();
        let deadline = tokio::time::Instant::now() + SETTLE;
        let api = Api::new(&self.base, KEY);
        self.runtime.block_on(async {
            for id in ids {
                while tokio::time::Instant::now() < deadline {
                    let job = api.job(&id).await;
                    let finished = job["status"] == "success" || job["status"] == "failed";
                    let delivered = job["webhooks"]
                        .as_array()
                        .is_none_or(|hooks| hooks.iter().all(|hook| hook["outcome"] != "pending"));
                    if finished && delivered {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
    }

    /// Runs `property` on [`CASES`] bodies from `strategy`, each POSTed to `path`.
    fn check(&self, path: &str, strategy: impl Strategy<Value = Vec<u8>>) {
        let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        let outcome = runner.run(&strategy, |body| {
            let shown = String::from_utf8_lossy(&body).into_owned();
            let (status, forwarded) = self.post(path, body)?;
            prop_assert!(status < 500, "{path} answered {status} to {shown}");
            prop_assert!(forwarded.is_none_or(|code| code < 500), "{path} forwarded {forwarded:?} for {shown}");
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{path}: {failure}");
        }
        let health = self.runtime.block_on(async {
            self.http.get(format!("{}/health", self.base)).send().await.map(|response| response.status().as_u16())
        });
        assert_eq!(health.ok(), Some(200), "the engine stopped answering");
        self.settle();
        assert_eq!(panics_on(&self.threads), 0, "the engine panicked while {path} was fed hostile input");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            self.runtime.block_on(engine.shutdown());
        }
    }
}

#[test]
fn arbitrary_and_mutated_jobs_never_get_a_5xx() {
    let harness = Harness::start("jobs");
    harness.check("/api/v1/jobs", body(&harness.target()));
}

#[test]
fn arbitrary_and_mutated_proxy_envelopes_never_get_a_5xx() {
    let harness = Harness::start("proxy");
    harness.check("/api/v1/proxy", envelope(&harness.target()));
}

#[test]
fn arbitrary_webhook_secret_bodies_never_get_a_5xx() {
    let harness = Harness::start("secrets");
    let target = harness.target();
    let secrets = prop::collection::vec(
        (
            prop::sample::select(vec!["primary_secret", "secondary_secret", "primary", "x"]),
            prop_oneof![3 => text(&target).prop_map(Value::String), 1 => json_value(&target)],
        ),
        0..4,
    )
    .prop_map(|fields| {
        Value::Object(fields.into_iter().map(|(key, value)| (key.to_owned(), value)).collect()).to_string().into_bytes()
    });
    harness.check("/api/v1/webhook-secrets", prop_oneof![3 => secrets, 1 => body(&target)]);
}
