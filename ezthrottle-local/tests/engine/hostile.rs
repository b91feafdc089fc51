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
use serde_json::{Map, Value, json};

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

/// The field names of a job (ours and the peers' spellings), of its parts, of an envelope
/// and of the secrets API, and some that are none of them.
const KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "webhooks",
    "has_quorum_vote",
    "hasQuorumVote",
    "webhook_quorum",
    "retry_policy",
    "RetryPolicy",
    "max_retries",
    "retry_codes",
    "max_reroutes",
    "reroute_codes",
    "fallback_job",
    "fallbackJob",
    "trigger",
    "on_error",
    "on_timeout",
    "timeout_ms",
    "on_success",
    "onSuccess",
    "on_failure",
    "on_failure_timeout_ms",
    "regions",
    "region_policy",
    "execution_mode",
    "retry_at",
    "idempotent_key",
    "idempotentKey",
    "metadata",
    "scope",
    "metric_name",
    "target_url",
    "primary_secret",
    "secondary_secret",
    "x",
    "",
];

fn text(target: &str) -> impl Strategy<Value = String> + use<> {
    prop_oneof![
        Just(format!("{target}/ok")),
        Just(format!("{target}/status/500")),
        Just(format!("{target}/hook")),
        Just("https://ezthrottle.fly.dev/api/v1/jobs".to_owned()),
        Just("/api/v1/webhook-secrets".to_owned()),
        Just("/api/v1/jobs/job_1_1".to_owned()),
        prop::sample::select(vec![
            "GET",
            "POST",
            "DELETE",
            "PUT",
            "get",
            "G E T",
            "race",
            "fanout",
            "fallback",
            "strict",
            "Host",
            "Content-Length",
            "X-EZThrottle-Region",
            "\u{0}",
            "",
            "18446744073709551615",
            "-1",
            "1e400",
            "http://",
            "http://[::1",
            "ftp://127.0.0.1/",
            "customer",
            "a-long-enough-secret-0123456789"
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,24}",
        any::<String>(),
    ]
}

fn json_value(target: &str) -> impl Strategy<Value = Value> + use<> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|float| serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number)),
        text(target).prop_map(Value::String),
    ];
    let key = prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "[a-z_]{0,12}"];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Values a job field could plausibly hold, valid or just off.
fn plausible(target: &str) -> impl Strategy<Value = Value> + use<> {
    let ok = format!("{target}/ok");
    let hook = format!("{target}/hook");
    prop_oneof![
        (0u64..20).prop_map(Value::from),
        prop::collection::vec(prop::sample::select(vec![200u16, 404, 429, 500, 502, 503, 999, 0]), 0..4)
            .prop_map(|codes| json!(codes)),
        Just(json!({})),
        Just(json!({"on_error": [500]})),
        Just(json!({"on_timeout": 50, "timeout_ms": 50})),
        Just(json!({"max_retries": 1, "retry_codes": [500]})),
        Just(json!({"url": ok.clone(), "trigger": {}})),
        Just(json!({"url": ok.clone(), "trigger": {}, "fallback_job": {"url": ok, "trigger": {"on_error": [500]}}})),
        Just(json!([{"url": hook.clone(), "has_quorum_vote": true}, {"url": hook}])),
        Just(json!(["local", "iad"])),
        Just(json!({"accept": "text/plain", "x-custom": "1"})),
        text(target).prop_map(Value::String),
    ]
}

/// A job-shaped object: a valid job with known fields set to plausible or arbitrary values.
fn job_like(target: &str) -> impl Strategy<Value = Value> + use<> {
    let target = target.to_owned();
    let value = prop_oneof![3 => plausible(&target), 1 => json_value(&target)];
    let fields = prop::collection::vec((prop::sample::select(KEYS), value), 0..4);
    (any::<u32>(), fields).prop_map(move |(nonce, fields)| {
        // A new URL each time: a new job rather than a duplicate of the last one.
        let mut job = json!({"url": format!("{target}/ok?n={nonce}"), "method": "GET"});
        if nonce % 2 == 0 {
            job["webhooks"] = json!([{"url": format!("{target}/hook"), "has_quorum_vote": true}, {"url": format!("{target}/hook/1")}]);
        }
        if let Value::Object(object) = &mut job {
            object.extend(fields.into_iter().map(|(key, value)| (key.to_owned(), value)));
        }
        job
    })
}

/// Valid bodies to mutate.
fn seeds(target: &str) -> Vec<String> {
    let hook = format!("{target}/hook");
    vec![
        json!({"url": format!("{target}/ok"), "method": "POST", "body": "a=1", "headers": {"accept": "text/plain"}}),
        json!({"url": format!("{target}/status/500"), "retry_policy": {"max_retries": 1, "retry_codes": [500]},
            "webhooks": [{"url": hook, "has_quorum_vote": true}], "webhook_quorum": 1,
            "fallback_job": {"url": format!("{target}/ok"), "trigger": {"on_error": [500]},
                "fallback_job": {"url": format!("{target}/ok"), "trigger": {}}},
            "on_success": {"url": format!("{target}/ok"), "idempotent_key": "child"}}),
        json!({"scope": "customer", "metric_name": "", "target_url": "https://ezthrottle.fly.dev/api/v1/jobs",
            "method": "POST", "headers": {}, "body": json!({"url": format!("{target}/ok")}).to_string()}),
        json!({"primary_secret": "a-long-enough-secret-0123456789", "secondary_secret": "another-long-secret-98765"}),
    ]
    .into_iter()
    .map(|value| value.to_string())
    .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
        (any::<usize>(), prop::sample::select(b"{}[]\":,\\0-9eE.nt \x00\xff".to_vec()))
            .prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    (prop::sample::select(seeds(target)), prop::collection::vec(edit, 1..6)).prop_map(|(seed, edits)| {
        let mut bytes = seed.into_bytes();
        for edit in edits {
            let len = bytes.len().max(1);
            match edit {
                Edit::Flip(at, byte) => {
                    if let Some(slot) = bytes.get_mut(at % len) {
                        *slot ^= byte | 1;
                    }
                }
                Edit::Insert(at, byte) => bytes.insert((at % len).min(bytes.len()), byte),
                Edit::Remove(at) => {
                    if at % len < bytes.len() {
                        bytes.remove(at % len);
                    }
                }
                Edit::Truncate(at) => bytes.truncate(at % len),
            }
        }
        bytes
    })
}

/// A body: arbitrary JSON, a job-shaped object, or mutated bytes.
fn body(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    prop_oneof![
        1 => json_value(target).prop_map(|value| value.to_string().into_bytes()),
        4 => job_like(target).prop_map(|value| value.to_string().into_bytes()),
        2 => mutated(target),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A proxy envelope: arbitrary fields around an inner body of any of the kinds above.
fn envelope(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let target_url = prop_oneof![
        Just("https://ezthrottle.fly.dev/api/v1/jobs".to_owned()),
        Just("https://ezthrottle.fly.dev/api/v1/jobs".to_owned()),
        Just("https://ezthrottle.fly.dev/api/v1/webhook-secrets".to_owned()),
        Just("/api/v1/jobs/job_1_1".to_owned()),
        Just("/api/v1/proxy".to_owned()),
        Just("/health".to_owned()),
        text(target),
    ];
    let method = prop_oneof![
        3 => prop::sample::select(vec!["POST", "GET", "DELETE", "post", ""]).prop_map(str::to_owned),
        1 => text(target),
    ];
    let inner = body(target).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let headers = prop_oneof![3 => Just(json!({})), 1 => json_value(target)];
    let extra = prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec((prop::sample::select(KEYS), json_value(target)), 0..3)];
    let fields = (target_url, method, inner, headers, extra);
    prop_oneof![
        4 => fields.prop_map(|(target_url, method, inner, headers, extra)| {
            let mut envelope = Map::new();
            envelope.insert("scope".into(), json!("customer"));
            envelope.insert("metric_name".into(), json!(""));
            envelope.insert("target_url".into(), json!(target_url));
            envelope.insert("method".into(), json!(method));
            envelope.insert("headers".into(), headers);
            envelope.insert("body".into(), json!(inner));
            envelope.extend(extra.into_iter().map(|(key, value)| (key.to_owned(), value)));
            Value::Object(envelope).to_string().into_bytes()
        }),
        1 => body(target),
    ]
}

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
