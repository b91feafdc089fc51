//! The `ezthrottle` binary, run as a user would, against real in-process engines and a
//! loopback target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, Method};
use axum::routing::any;
use ezthrottle_core::protocol::mask_secret;
use ezthrottle_core::webhook::sign;
use ezthrottle_local::{EngineBuilder, RunningEngine};
use ezthrottle_test_support as support;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::ChildStdout;

mod job;
mod jobs;
mod local;
mod logs_and_progress;
mod secrets;
mod signatures;
mod submit;
mod usage;

/// Every wait in these tests gives up after this long.
const DEADLINE: Duration = Duration::from_secs(60);

const SECRET: &str = "cli_test_secret_0123456789";

const OTHER_SECRET: &str = "cli_other_secret_9876543210";

const BODY: &[u8] = br#"{"job_id":"job_1","status":"success"}"#;

/// What a run of the binary produced.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }

    fn stderr_json(&self) -> Value {
        serde_json::from_str(self.stderr.trim()).unwrap_or_else(|err| panic!("stderr is not JSON ({err}): {self:?}"))
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self:?}");
        self
    }
}

/// The binary with no `EZTHROTTLE*` variable inherited from the test's environment.
fn command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ezthrottle"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EZTHROTTLE") {
            command.env_remove(name);
        }
    }
    // `ezthrottle local` keeps its jobs in memory here: its default is a SQLite file in
    // the working directory, which would outlive the test.
    command.env("RUST_LOG", "warn").env("EZTHROTTLE_LOCAL_STORE", "memory:").kill_on_drop(true);
    command
}

/// Spawns `command ARGS` with its stdout piped.
fn spawn(mut command: tokio::process::Command, args: &[&str], stdin: Stdio, stderr: Stdio) -> tokio::process::Child {
    command.args(args).stdin(stdin).stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn the binary")
}

async fn ezthrottle_with(command: tokio::process::Command, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = spawn(command, args, Stdio::piped(), Stdio::piped());
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // The binary may exit before reading everything (e.g. an oversized body): ignore EPIPE.
    tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
    });
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ezthrottle {args:?} did not finish in time"))
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn ezthrottle(args: &[&str], stdin: &[u8]) -> Run {
    ezthrottle_with(command(), args, stdin).await
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn engine() -> EngineBuilder {
    support::engine::fast().webhook_retry(Duration::from_millis(20), 3)
}

/// A loopback target whose `/echo` answers 200 with the request it saw, as JSON.
async fn target() -> SocketAddr {
    async fn echo(method: Method, headers: HeaderMap, body: String) -> axum::Json<Value> {
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        axum::Json(json!({ "method": method.as_str(), "content_type": content_type, "body": body }))
    }
    support::serve(Router::new().route("/echo", any(echo))).await
}

/// An open engine signing with `SECRET`, the URL of the echo target, and the engine's URL.
async fn engine_and_echo() -> (RunningEngine, String, String) {
    let engine = engine().open().webhook_secret(SECRET).start().await.expect("engine starts");
    let url = format!("http://{}/echo", target().await);
    let base = engine.base_url();
    (engine, url, base)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    support::refused_addr().await.port()
}

fn temp_file(name: &str, contents: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ezthrottle-cli-{name}"));
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

/// The target's echo, from a delivered payload.
fn echoed(webhook: &Value) -> Value {
    assert_eq!(webhook["response"]["status_code"], 200, "{webhook}");
    serde_json::from_str(webhook["response"]["body"].as_str().unwrap()).unwrap()
}
