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

// ---------------------------------------------------------------- sign and verify

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_prints_the_header_of_core_sign() {
    let run = ezthrottle(&["sign", "--secret", SECRET, "--timestamp", "1700000000"], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), sign(SECRET, 1_700_000_000, BODY));

    let run = ezthrottle(&["--json", "sign", "--secret", SECRET, "--timestamp", "-5"], BODY).await;
    run.expect_code(0);
    assert_eq!(run.json(), json!({ "signature": sign(SECRET, -5, BODY), "timestamp": -5 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_then_verify_round_trips() {
    let before = now();
    let signed = ezthrottle(&["sign", "--secret", SECRET], BODY).await;
    signed.expect_code(0);
    let header = signed.stdout.trim_end();
    let t: i64 = header.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
    assert!((before..=now()).contains(&t), "{header}");

    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", header], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), "valid_primary");

    // As pasted from a request dump, and through the environment.
    let pasted = format!("X-EZThrottle-Signature: {header}");
    let mut with_env = command();
    with_env.env("EZTHROTTLE_WEBHOOK_SECRET", SECRET);
    let run = ezthrottle_with(with_env, &["--json", "verify", "--header", &pasted], BODY).await;
    run.expect_code(0);
    assert_eq!(run.json(), json!({ "valid": true, "reason": "valid_primary", "timestamp": t }));

    // A changed body does not verify.
    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", header], b"{}").await;
    run.expect_code(1);
    assert_eq!(run.stdout.trim_end(), "signature_mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_the_wrong_secret_fails_with_the_reason() {
    let header = sign(OTHER_SECRET, now(), BODY);
    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", &header], BODY).await;
    run.expect_code(1);
    assert_eq!(run.stdout.trim_end(), "signature_mismatch");

    let run = ezthrottle(&["verify", "--json", "--secret", SECRET, "--header", &header], BODY).await;
    run.expect_code(1);
    assert_eq!(run.json(), json!({ "valid": false, "reason": "signature_mismatch" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_accepts_the_secondary_secret() {
    let header = sign(OTHER_SECRET, now(), BODY);
    let run = ezthrottle(&["verify", "--secret", SECRET, "--secondary", OTHER_SECRET, "--header", &header], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), "valid_secondary");

    // Both from the environment, spelled as the conformance app spells them.
    let mut with_env = command();
    with_env.env("EZTHROTTLE_WEBHOOK_SECRET", SECRET).env("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", OTHER_SECRET);
    let run = ezthrottle_with(with_env, &["verify", "--header", &header], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), "valid_secondary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_what_is_wrong_with_a_header() {
    let cases = [
        ("", "no_signature_header"),
        ("t=1700000000", "missing_v1_signature"),
        ("t=soon,v1=00", "invalid_timestamp"),
        ("v1=00,t=1,t=2", "invalid_timestamp"),
    ];
    for (header, reason) in cases {
        let run = ezthrottle(&["verify", "--secret", SECRET, "--header", header], BODY).await;
        run.expect_code(1);
        assert_eq!(run.stdout.trim_end(), reason, "{header:?}");
    }
    // Stale: refused at the default tolerance, accepted with --now or a wider --tolerance.
    let header = sign(SECRET, 1_700_000_000, BODY);
    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", &header, "--now", "1700000400"], BODY).await;
    run.expect_code(1);
    assert_eq!(run.stdout.trim_end(), "timestamp_expired (diff=400s, tolerance=300s)");
    let args = ["verify", "--secret", SECRET, "--header", &header, "--now", "1700000400", "--tolerance", "500"];
    ezthrottle(&args, BODY).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_a_short_secret_as_a_usage_error() {
    let header = sign("short", now(), BODY);
    for args in [
        vec!["verify", "--secret", "short", "--header", &header],
        vec!["verify", "--secret", SECRET, "--secondary", "short", "--header", &header],
    ] {
        let run = ezthrottle(&args, BODY).await;
        run.expect_code(2);
        assert!(run.stderr.contains("at least 16 characters; this one has 5"), "{run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_16_mib_is_refused_in_plain_words() {
    let body = vec![b'x'; 16 * 1024 * 1024 + 1];
    let run = ezthrottle(&["sign", "--secret", SECRET], &body).await;
    run.expect_code(2);
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.trim_end(), "ezthrottle: the body on stdin is larger than 16 MiB");
}

// ---------------------------------------------------------------- usage

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_help_documents_the_exit_codes() {
    let run = ezthrottle(&["--help"], b"").await;
    run.expect_code(0);
    assert!(run.stdout.contains("Exit codes:") && run.stdout.contains("4  timed out"), "{run:?}");
    for code in ["5  not found", "6  EZThrottle unreachable", "7  unauthorised"] {
        assert!(run.stdout.contains(code), "{code}: {run:?}");
    }

    let run = ezthrottle(&["submit", "--ezthrottle-url", "http://127.0.0.1:1"], b"").await;
    run.expect_code(2);
    assert!(run.stderr.contains("--url"), "{run:?}");

    let run = ezthrottle(&["--json", "submit", "--ezthrottle-url", "http://127.0.0.1:1"], b"").await;
    run.expect_code(2);
    let error = run.stderr_json();
    assert_eq!(error["exit_code"], 2);
    assert!(error["error"].as_str().unwrap().contains("--url"), "{error}");

    // No key and no URL: cloud mode needs a key; said before anything is sent.
    let run = ezthrottle(&["submit", "--url", "https://api.example.com/x"], b"").await;
    run.expect_code(2);
    assert!(
        run.stderr.starts_with("ezthrottle: an API key is required") && run.stderr.contains("--api-key"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_complete_every_subcommand() {
    let run = ezthrottle(&["completions", "bash"], b"").await;
    run.expect_code(0);
    assert!(run.stdout.contains("_ezthrottle()") && run.stderr.is_empty(), "{run:?}");
    for subcommand in ["local", "submit", "job", "secrets", "sign", "verify", "completions"] {
        assert!(run.stdout.contains(&format!("ezthrottle,{subcommand})")), "{subcommand}: {run:?}");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let run = ezthrottle(&["completions", shell], b"").await;
        assert!(run.expect_code(0).stdout.contains("submit"), "{shell}: {run:?}");
    }
    ezthrottle(&["completions", "tcsh"], b"").await.expect_code(2);
}

// ---------------------------------------------------------------- submit

/// The binary with `RUST_LOG` unset, so `-v` decides.
fn without_rust_log() -> tokio::process::Command {
    let mut command = command();
    command.env_remove("RUST_LOG");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_logs_to_stderr_and_rust_log_wins() {
    let (engine, url, base) = engine_and_echo().await;
    let submit = ["submit", "--ezthrottle-url", &base, "--url", &url];

    // Without -v: nothing on stderr.
    let quiet = ezthrottle_with(without_rust_log(), &submit, b"").await;
    assert!(quiet.expect_code(0).stderr.is_empty(), "{quiet:?}");
    let job_id = quiet.stdout.lines().next().unwrap().strip_prefix("job_id: ").unwrap().to_owned();

    // -v: the CLI's own steps at info, on stderr; stdout is the receipt alone.
    let info = ezthrottle_with(without_rust_log(), &[&["-v"], &submit[..]].concat(), b"").await;
    info.expect_code(0);
    assert_eq!(info.stdout.lines().count(), 4, "{info:?}");
    assert!(info.stderr.contains(" INFO ") && info.stderr.contains("job accepted"), "{info:?}");
    assert!(!info.stderr.contains("DEBUG"), "{info:?}");

    // -vv: the client's debug events too (core's `submitting job`); global, after the subcommand.
    let debug = ezthrottle_with(without_rust_log(), &[&submit[..], &["-vv"]].concat(), b"").await;
    assert!(debug.expect_code(0).stderr.contains("DEBUG") && debug.stderr.contains("submitting job"), "{debug:?}");
    let job = ezthrottle_with(without_rust_log(), &["job", &job_id, "--ezthrottle-url", &base, "-vv"], b"").await;
    assert!(job.expect_code(0).stderr.contains("job asked for"), "{job:?}");
    let secrets = ezthrottle_with(without_rust_log(), &["-v", "secrets", "get", "--ezthrottle-url", &base], b"").await;
    assert!(secrets.stderr.contains("talking to EZThrottle"), "{secrets:?}");

    // RUST_LOG, when set, decides.
    let mut off = command();
    off.env("RUST_LOG", "off");
    let run = ezthrottle_with(off, &[&["-vv"], &submit[..]].concat(), b"").await;
    assert!(run.expect_code(0).stderr.is_empty(), "{run:?}");
    let mut debug_env = command();
    debug_env.env("RUST_LOG", "ezthrottle=debug");
    let run = ezthrottle_with(debug_env, &submit, b"").await;
    assert!(run.expect_code(0).stderr.contains("submitting job"), "{run:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_from_flags_prints_the_receipt_and_detects_duplicates() {
    let (engine, url, base) = engine_and_echo().await;
    let args = ["submit", "--ezthrottle-url", &base, "--url", &url, "-X", "post", "-d", "{}", "--idempotent-key", "k1"];
    let first = ezthrottle(&args, b"").await;
    first.expect_code(0);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{first:?}");
    let job_id = lines[0].strip_prefix("job_id: ").unwrap();
    assert!(job_id.starts_with("job_"), "{first:?}");
    assert_eq!(lines[1..], ["status: queued", "idempotent_key: k1", "duplicate: false"]);

    let again = ezthrottle(&[&["--json"], &args[..]].concat(), b"").await;
    again.expect_code(0);
    assert_eq!(
        again.json(),
        json!({ "job_id": job_id, "status": "queued", "idempotent_key": "k1", "duplicate": true })
    );
    engine.shutdown().await;
}

// ---------------------------------------------------------------- job

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_wait_prints_the_finished_job_and_names_missing_and_unusable_ids() {
    let (engine, url, base) = engine_and_echo().await;
    let submitted =
        ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--url", &url, "-X", "POST"], b"").await;
    let job_id = submitted.expect_code(0).json()["job_id"].as_str().unwrap().to_owned();

    let json = ezthrottle(&["--json", "job", &job_id, "--ezthrottle-url", &base, "--wait"], b"").await;
    let job = json.expect_code(0).json();
    assert_eq!((job["job_id"].as_str(), job["status"].as_str()), (Some(job_id.as_str()), Some("success")));
    assert_eq!((job["method"].as_str(), job["url"].as_str()), (Some("POST"), Some(url.as_str())));
    assert_eq!(job["attempts"][0]["status_code"], 200, "{job:#}");
    assert_eq!(job["response"]["status_code"], 200);

    let text = ezthrottle(&["job", &job_id, "--ezthrottle-url", &base], b"").await;
    text.expect_code(0);
    assert!(text.stdout.starts_with(&format!("job {job_id}: success (POST {url})\n")), "{text:?}");
    assert!(text.stdout.lines().any(|l| l.trim_start().starts_with("1  primary") && l.contains("200")), "{text:?}");

    // --follow: every event of the job, its end last.
    let followed = ezthrottle(&["--json", "job", &job_id, "--ezthrottle-url", &base, "--follow"], b"").await;
    let events: Vec<serde_json::Value> =
        followed.expect_code(0).stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let names: Vec<&str> = events.iter().map(|event| event["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["queued", "dispatching", "completed"], "{followed:?}");
    assert_eq!((events[2]["id"].as_u64(), events[2]["status_code"].as_u64()), (Some(4), Some(200)));
    let text = ezthrottle(&["job", &job_id, "--ezthrottle-url", &base, "--follow"], b"").await;
    assert!(
        text.expect_code(0).stdout.lines().nth(1).is_some_and(|l| l.starts_with("dispatching  attempt 1")),
        "{text:?}"
    );

    let missing = ezthrottle(&["job", "job_0_0", "--ezthrottle-url", &base], b"").await;
    missing.expect_code(5);
    assert_eq!(missing.stderr.trim(), "ezthrottle: job job_0_0 not found");
    let unusable = ezthrottle(&["--json", "job", "job/../x", "--ezthrottle-url", &base], b"").await;
    assert_eq!(unusable.expect_code(2).stderr_json()["exit_code"], 2);
    assert!(unusable.stderr.contains("job_id"), "{unusable:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_through_a_pipe_prints_no_progress() {
    let (engine, url, base) = engine_and_echo().await;
    let run =
        ezthrottle(&["submit", "--ezthrottle-url", &base, "--url", &url, "--wait", "--webhook-secret", SECRET], b"")
            .await;
    run.expect_code(0);
    assert!(run.stderr.is_empty(), "{run:?}");
    let payload: Value = serde_json::from_str(&run.stdout[run.stdout.find('{').unwrap()..]).unwrap();
    let job_id = payload["job_id"].as_str().unwrap().to_owned();
    assert!(run.stdout.starts_with(&format!("job_id: {job_id}\nstatus: queued\n")), "{run:?}");

    let waited = ezthrottle(&["job", &job_id, "--ezthrottle-url", &base, "--wait"], b"").await;
    let once = ezthrottle(&["job", &job_id, "--ezthrottle-url", &base], b"").await;
    assert_eq!((waited.expect_code(0).stdout.as_str(), waited.stderr.as_str()), (once.stdout.as_str(), ""));
    let followed = ezthrottle(&["job", &job_id, "--ezthrottle-url", &base, "--follow"], b"").await;
    assert_eq!(followed.expect_code(0).stdout.lines().count(), 3, "{followed:?}");
    assert!(followed.stderr.is_empty(), "{followed:?}");
    // Timed out: the error alone.
    let later = (now() + 3600) * 1000;
    let file =
        temp_file("later-piped.json", &json!({"url": "http://127.0.0.1:9/piped", "retry_at": later}).to_string());
    let submitted = ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--file", &file], b"").await;
    let queued = submitted.expect_code(0).json()["job_id"].as_str().unwrap().to_owned();
    let run = ezthrottle(&["job", &queued, "--ezthrottle-url", &base, "--wait", "--timeout", "500ms"], b"").await;
    assert_eq!(run.expect_code(4).stderr, format!("ezthrottle: job {queued} is still queued after 500ms\n"));
    engine.shutdown().await;
}

/// `script` (util-linux) runs a command on a pseudo-terminal; `None` where it is missing.
fn on_a_terminal(args: &[&str]) -> Option<std::process::Command> {
    let found = std::process::Command::new("script").arg("--version").output().is_ok_and(|out| out.status.success());
    if !found {
        eprintln!("skipped: no `script` to give the binary a terminal");
        return None;
    }
    let line = std::iter::once(env!("CARGO_BIN_EXE_ezthrottle")).chain(args.iter().copied()).collect::<Vec<_>>();
    let mut command = std::process::Command::new("script");
    command.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]).env("RUST_LOG", "warn").stdin(Stdio::null());
    Some(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_terminal_shows_elapsed_time_and_state_in_place() {
    let (engine, _, base) = engine_and_echo().await;
    let later = (now() + 3600) * 1000;
    let file = temp_file("later-tty.json", &json!({"url": "http://127.0.0.1:9/never", "retry_at": later}).to_string());
    let submitted = ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--file", &file], b"").await;
    let job_id = submitted.expect_code(0).json()["job_id"].as_str().unwrap().to_owned();
    let Some(mut command) = on_a_terminal(&["job", &job_id, "--ezthrottle-url", &base, "--wait", "--timeout", "1s"])
    else {
        return;
    };
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(4), "{screen:?}");
    // Redrawn in place (carriage return, erase the line), with the state.
    let drawn = screen.matches(&format!("\r\x1b[2Kjob {job_id}  ")).count();
    assert!(drawn >= 2, "{screen:?}");
    assert!(screen.contains("s  queued"), "{screen:?}");
    // Cleared before the error, which has its line to itself.
    assert!(screen.contains(&format!("\r\x1b[2Kezthrottle: job {job_id} is still queued after 1s")), "{screen:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_past_what_the_clock_can_say_waits_without_panicking() {
    let (engine, url, base) = engine_and_echo().await;
    // 10^19 s: parsed fine, but `Instant::now() + timeout` would overflow.
    let huge = "10000000000000000000s";
    let submitted = ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--url", &url], b"").await;
    let job_id = submitted.expect_code(0).json()["job_id"].as_str().unwrap().to_owned();
    let waited =
        ezthrottle(&["--json", "job", &job_id, "--ezthrottle-url", &base, "--wait", "--timeout", huge], b"").await;
    assert_eq!(waited.expect_code(0).json()["status"], "success");
    let args =
        ["--json", "submit", "--ezthrottle-url", &base, "--url", &url, "--body", "2", "--wait", "--timeout", huge];
    let run = ezthrottle(&[&args[..], &["--webhook-secret", SECRET]].concat(), b"").await;
    assert_eq!(run.expect_code(0).json()["webhook"]["status"], "success", "{run:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_wait_times_out_with_exit_4_on_a_job_that_has_not_run() {
    let (engine, _, base) = engine_and_echo().await;
    let later = (now() + 3600) * 1000;
    let file = temp_file(
        "later.json",
        &json!({"url": "http://127.0.0.1:9/never", "method": "GET", "retry_at": later}).to_string(),
    );
    let submitted = ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--file", &file], b"").await;
    let job_id = submitted.expect_code(0).json()["job_id"].as_str().unwrap().to_owned();
    let waited = ezthrottle(&["job", &job_id, "--ezthrottle-url", &base, "--wait", "--timeout", "1s"], b"").await;
    waited.expect_code(4);
    assert_eq!(waited.stderr.trim(), format!("ezthrottle: job {job_id} is still queued after 1s"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_prints_the_delivered_payload() {
    let (engine, url, base) = engine_and_echo().await;
    let args = [
        "--json",
        "submit",
        "--ezthrottle-url",
        &base,
        "--url",
        &url,
        "--method",
        "POST",
        "--header",
        "Content-Type: text/plain",
        "--body",
        "hello",
        "--wait",
        "--timeout",
        "30s",
        "--webhook-secret",
        SECRET,
    ];
    let run = ezthrottle(&args, b"").await;
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out["receipt"]["duplicate"], false, "{out}");
    assert_eq!(out["webhook"]["job_id"], out["receipt"]["job_id"], "{out}");
    assert_eq!(out["webhook"]["status"], "success", "{out}");
    assert_eq!(echoed(&out["webhook"]), json!({ "method": "POST", "content_type": "text/plain", "body": "hello" }));

    // Text mode: the receipt, then the payload; the secret from the environment.
    let mut with_env = command();
    with_env.env("EZTHROTTLE_WEBHOOK_SECRET", SECRET).env("EZTHROTTLE_URL", &base);
    let run = ezthrottle_with(with_env, &["submit", "--url", &url, "--wait"], b"").await;
    run.expect_code(0);
    assert!(run.stdout.starts_with("job_id: job_"), "{run:?}");
    let payload: Value = serde_json::from_str(&run.stdout[run.stdout.find('{').unwrap()..]).unwrap();
    assert_eq!(payload["status"], "success", "{run:?}");
    assert_eq!(echoed(&payload)["method"], "GET");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_needs_a_secret_and_times_out_on_deliveries_it_cannot_verify() {
    let (engine, url, base) = engine_and_echo().await;

    let run = ezthrottle(&["submit", "--ezthrottle-url", &base, "--url", &url, "--wait"], b"").await;
    run.expect_code(2);
    assert!(run.stderr.contains("--webhook-secret"), "{run:?}");
    // A secret anyone could guess is refused before anything is submitted.
    let args = ["submit", "--ezthrottle-url", &base, "--url", &url, "--wait", "--webhook-secret", "short"];
    let run = ezthrottle(&args, b"").await;
    run.expect_code(2);
    assert!(run.stderr.contains("--webhook-secret: a webhook secret needs at least 16 characters"), "{run:?}");

    let args = ["submit", "--ezthrottle-url", &base, "--url", &url, "--wait", "--timeout", "5s"];
    let run = ezthrottle(&[&args[..], &["--webhook-secret", OTHER_SECRET]].concat(), b"").await;
    run.expect_code(4);
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains("was accepted but its webhook did not arrive within 5s"), "{run:?}");
    assert!(run.stderr.contains("signature did not verify: check --webhook-secret"), "{run:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_in_cloud_mode_is_refused_before_anything_is_sent() {
    // Cloud mode through a "proxy" on loopback that records every request it gets.
    let proxy = support::TestServer::always(|| support::Answer::status(400)).await;
    let url = proxy.url("");
    let args = ["submit", "--api-key", "ck_live_x", "--tracktags-url", &url, "--url", "https://api.example.com/x"];
    let run = ezthrottle(&[&args[..], &["--wait", "--webhook-secret", SECRET]].concat(), b"").await;
    run.expect_code(2);
    assert!(run.stdout.is_empty(), "{run:?}");
    for hint in
        ["cannot reach", "loopback", "Nothing was sent", "--ezthrottle-url", "--receiver-url https://", "tunnel"]
    {
        assert!(run.stderr.contains(hint), "{hint}: {run:?}");
    }
    let run = ezthrottle(&[&["--json"], &args[..], &["--wait", "--webhook-secret", SECRET]].concat(), b"").await;
    assert_eq!(run.expect_code(2).stderr_json()["exit_code"], 2);
    assert!(proxy.requests().is_empty(), "nothing may be sent: {:?}", proxy.requests());

    // A loopback --receiver-url is just as far out of reach.
    let wait = ["--wait", "--webhook-secret", SECRET, "--receiver-url", "http://localhost:8000/webhook"];
    let run = ezthrottle(&[&args[..], &wait].concat(), b"").await;
    assert!(run.expect_code(2).stderr.contains("cannot reach"), "{run:?}");
    assert!(proxy.requests().is_empty(), "nothing may be sent: {:?}", proxy.requests());

    // A public --receiver-url (a tunnel) is submitted as the job's webhook; the "proxy"
    // refuses it, and delivers nothing anywhere.
    let public = "https://tunnel.example.com/webhook";
    let wait = ["--wait", "--webhook-secret", SECRET, "--receiver-url", public];
    ezthrottle(&[&args[..], &wait].concat(), b"").await.expect_code(3);
    // The proxy's envelope carries the job as a string.
    let envelope = proxy.only_request().json();
    let job: Value = serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap();
    assert_eq!(job["webhooks"], json!([{ "url": public, "has_quorum_vote": true }]), "{envelope}");

    // Without --wait the same client submits (and the proxy sees it): the refusal is --wait's.
    ezthrottle(&args, b"").await.expect_code(3);
    assert_eq!(proxy.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_listens_where_asked_and_gives_the_receiver_url_to_the_engine() {
    let (engine, url, base) = engine_and_echo().await;
    // A free loopback port, as a tunnel would be told to forward to.
    let bind = support::refused_addr().await;
    // Another spelling of the same address: the engine delivers to the URL given, not to its own.
    let receiver = format!("http://localhost:{}/webhook", bind.port());
    let args = ["--json", "submit", "--ezthrottle-url", &base, "--url", &url, "--wait", "--webhook-secret", SECRET];
    let bind = bind.to_string();
    let run = ezthrottle(&[&args[..], &["--receiver-bind", &bind, "--receiver-url", &receiver]].concat(), b"").await;
    let out = run.expect_code(0).json();
    assert_eq!(out["webhook"]["status"], "success", "{out}");
    let job_id = out["receipt"]["job_id"].as_str().unwrap();
    let job = ezthrottle(&["--json", "job", job_id, "--ezthrottle-url", &base], b"").await;
    assert_eq!(job.expect_code(0).json()["webhooks"][0]["url"], receiver.as_str(), "{job:?}");

    let run = ezthrottle(&[&args[..], &["--receiver-url", "/relative"]].concat(), b"").await;
    assert!(run.expect_code(2).stderr_json()["error"].as_str().unwrap().starts_with("--receiver-url: "), "{run:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_from_a_json_file_and_from_stdin() {
    let (engine, url, base) = engine_and_echo().await;
    let job = json!({
        "url": url,
        "method": "put",
        "headers": { "Content-Type": "application/json" },
        "body": "{\"n\":1}",
        "idempotent_key": "from-file",
    });
    let path = temp_file("job.json", &job.to_string());
    let run = ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--file", &path], b"").await;
    run.expect_code(0);
    let receipt = run.json();
    assert_eq!(receipt["idempotent_key"], "from-file", "{receipt}");
    assert_eq!(receipt["duplicate"], false, "{receipt}");

    // The same job on stdin, with its key replaced, waited for.
    let args = ["--json", "submit", "--ezthrottle-url", &base, "-f", "-", "--idempotent-key", "from-stdin", "--wait"];
    let run = ezthrottle(&[&args[..], &["--webhook-secret", SECRET]].concat(), job.to_string().as_bytes()).await;
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out["receipt"]["idempotent_key"], "from-stdin", "{out}");
    assert_eq!(out["webhook"]["status"], "success", "{out}");
    let echo = echoed(&out["webhook"]);
    assert_eq!(echo, json!({ "method": "PUT", "content_type": "application/json", "body": "{\"n\":1}" }));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_job_is_refused_naming_the_field() {
    // Nothing listens there: an invalid job must be refused before any call.
    let base = format!("http://127.0.0.1:{}", closed_port().await);
    let run = ezthrottle(&["submit", "--ezthrottle-url", &base, "--url", "/relative/path"], b"").await;
    run.expect_code(2);
    assert!(run.stderr.starts_with("ezthrottle: invalid job: url: must be an absolute http(s) URL"), "{run:?}");

    let nested = json!({ "url": "https://api.example.com/a", "on_success": { "url": "ftp://api.example.com/b" } });
    let path = temp_file("nested.json", &nested.to_string());
    let run = ezthrottle(&["--json", "submit", "--ezthrottle-url", &base, "--file", &path], b"").await;
    run.expect_code(2);
    let error = run.stderr_json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("invalid job: on_success.url: "), "{error}");

    let path = temp_file("broken.json", r#"{"method": "GET"}"#);
    let run = ezthrottle(&["submit", "--ezthrottle-url", &base, "--file", &path], b"").await;
    run.expect_code(2);
    assert!(run.stderr.contains("is not a valid JSON job: missing field `url`"), "{run:?}");

    let missing = format!("{}/ezthrottle-cli-no-such-file.json", env!("CARGO_TARGET_TMPDIR"));
    let run = ezthrottle(&["submit", "--ezthrottle-url", &base, "--file", &missing], b"").await;
    run.expect_code(2);
    assert!(run.stderr.contains("cannot open"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_exits_6_in_plain_words() {
    let base = format!("http://127.0.0.1:{}", closed_port().await);
    let run = ezthrottle(&["submit", "--ezthrottle-url", &base, "--url", "https://api.example.com/x"], b"").await;
    run.expect_code(6);
    assert!(run.stdout.is_empty(), "{run:?}");
    let expected = format!("ezthrottle: EZThrottle unreachable at {base}/api/v1/jobs: ");
    assert!(run.stderr.starts_with(&expected), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");

    let run = ezthrottle(&["secrets", "get", "--json", "--ezthrottle-url", &base], b"").await;
    run.expect_code(6);
    let error = run.stderr_json();
    assert_eq!(error["exit_code"], 6);
    assert!(error["error"].as_str().unwrap().starts_with("EZThrottle unreachable at "), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_an_answer_times_out_with_exit_4() {
    // Accepts the connection, never answers: sent, and no answer within --request-timeout.
    let silent = support::BlackHole::start().await;
    for args in [
        vec!["job", "job_1_1", "--ezthrottle-url", &silent.url, "--request-timeout", "300ms"],
        vec!["secrets", "get", "--ezthrottle-url", &silent.url, "--request-timeout", "300ms"],
    ] {
        let run = ezthrottle(&args, b"").await;
        run.expect_code(4);
        assert!(run.stderr.starts_with(&format!("ezthrottle: request to {}/api/v1/", silent.url)), "{run:?}");
    }
}

// ---------------------------------------------------------------- secrets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_create_get_rotate_delete() {
    const KEY: &str = "ck_cli_test_key";
    const FIRST: &str = "first_secret_abcdefghij";
    const SECOND: &str = "second_secret_klmnopqrs";
    const THIRD: &str = "third_secret_tuvwxyz012";
    let engine = engine().api_key(KEY).start().await.expect("engine starts");
    let base = engine.base_url();
    let secrets = |args: &[&str]| {
        let mut all = vec!["secrets", "--ezthrottle-url", &base, "--api-key", KEY];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    // Runs ezthrottle with `stdin` and the variables `env`; no secret is ever printed.
    let run_with = |args: Vec<String>, stdin: &'static str, env: &'static [(&'static str, &'static str)]| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut with_env = command();
        with_env.envs(env.iter().copied());
        let run = ezthrottle_with(with_env, &args, stdin.as_bytes()).await;
        for secret in [FIRST, SECOND, THIRD] {
            assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{run:?}");
        }
        run
    };
    let run_secrets = |args: Vec<String>| run_with(args, "", &[]);

    let run = run_secrets(secrets(&["get"])).await;
    run.expect_code(5);
    assert!(run.stderr.contains("no webhook secrets configured"), "{run:?}");

    // A secret on the command line is refused, naming the other ways, and nothing is sent.
    for args in [&["create", "--primary", FIRST][..], &["rotate", "--new", THIRD, "--previous", "-"]] {
        let run = run_with(secrets(args), "", &[]).await;
        run.expect_code(2);
        assert!(run.stderr.contains("takes no secret on the command line"), "{run:?}");
        for way in [" -`", "--secret-stdin", "EZTHROTTLE_WEBHOOK_SECRET"] {
            assert!(run.stderr.contains(way), "{way}: {run:?}");
        }
    }
    run_secrets(secrets(&["get"])).await.expect_code(5);
    // None given at all: the message names where one comes from.
    let run = run_secrets(secrets(&["create"])).await;
    assert!(run.expect_code(2).stderr.contains("no primary secret: write it on stdin"), "{run:?}");

    // Both from stdin, one a line.
    const BOTH: &str = concat!("first_secret_abcdefghij", "\n", "second_secret_klmnopqrs", "\n");
    let run = run_with(secrets(&["create", "--secret-stdin"]), BOTH, &[]).await;
    run.expect_code(0);
    let (first, second, third) = (mask_secret(FIRST), mask_secret(SECOND), mask_secret(THIRD));
    assert_eq!(run.stdout.trim_end(), format!("webhook secrets set: primary {first}, secondary {second}"));

    let run = run_secrets(secrets(&["get"])).await;
    run.expect_code(0);
    assert!(run.stdout.contains(&format!("primary_secret: {first}\nsecondary_secret: {second}")), "{run:?}");

    // The new one from the environment, the previous from stdin with `-`.
    let env = &[("EZTHROTTLE_WEBHOOK_SECRET", THIRD), ("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", SECOND)];
    let run = run_with(secrets(&["rotate", "--previous", "-"]), "first_secret_abcdefghij\n", env).await;
    run.expect_code(0);
    let run = run_secrets(secrets(&["get", "--json"])).await;
    run.expect_code(0);
    let view = run.json();
    assert_eq!((&view["primary_secret"], &view["secondary_secret"]), (&json!(third), &json!(first)), "{view}");
    assert_eq!(view["has_secondary"], true);

    // The engine now signs with the rotated secret.
    let target = target().await;
    let url = format!("http://{target}/echo");
    let mut args = secrets(&[]);
    args[0] = "submit".into();
    args.extend(["--url", &url, "--wait", "--webhook-secret", THIRD].map(str::to_owned));
    run_secrets(args).await.expect_code(0);

    run_secrets(secrets(&["delete"])).await.expect_code(0);
    run_secrets(secrets(&["get"])).await.expect_code(5);
    // Both from the environment.
    let env = &[("EZTHROTTLE_WEBHOOK_SECRET", FIRST), ("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", SECOND)];
    run_with(secrets(&["create"]), "", env).await.expect_code(0);
    let run = run_secrets(secrets(&["--json", "get"])).await;
    assert_eq!(run.expect_code(0).json()["secondary_secret"], json!(second), "{run:?}");

    // Refused before sending: too short.
    let run = run_with(secrets(&["create", "--primary", "-"]), "short\n", &[]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("primary_secret") && run.stderr.contains("at least 16"), "{run:?}");

    // A wrong key is the server's refusal, exit 7; the key comes from the environment too.
    let mut with_env = command();
    with_env.env("EZTHROTTLE_URL", &base).env("EZTHROTTLE_API_KEY", "ck_wrong");
    let run = ezthrottle_with(with_env, &["secrets", "get"], b"").await;
    run.expect_code(7);
    assert!(run.stderr.starts_with("ezthrottle: invalid API key"), "{run:?}");
    engine.shutdown().await;
}

// ---------------------------------------------------------------- local

/// Starts `ezthrottle ARGS` (a long-running `local`); answers it, its stdout and the first line.
async fn spawn_local(args: &[&str]) -> (tokio::process::Child, Lines<BufReader<ChildStdout>>, String) {
    let mut child = spawn(command(), args, Stdio::null(), Stdio::null());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(DEADLINE, lines.next_line()).await.expect("first line in time").unwrap().unwrap();
    (child, lines, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_prints_its_address_serves_and_stops_on_sigterm() {
    let (mut child, mut lines, line) =
        spawn_local(&["local", "--bind", "127.0.0.1:0", "--open", "--webhook-secret", SECRET]).await;
    let base = line.strip_prefix("listening on ").expect("first line").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    // It serves: a job goes through and its webhook is signed with --webhook-secret.
    let target = target().await;
    let url = format!("http://{target}/echo");
    let args = ["--json", "submit", "--ezthrottle-url", &base, "--url", &url, "--wait", "--webhook-secret", SECRET];
    let run = ezthrottle(&args, b"").await;
    run.expect_code(0);
    assert_eq!(run.json()["webhook"]["status"], "success", "{run:?}");

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait()).await.expect("exits in time").unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(tokio::time::timeout(DEADLINE, lines.next_line()).await.unwrap().unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_json_and_a_failed_start() {
    let (mut child, _lines, line) =
        spawn_local(&["local", "--json", "--bind", "127.0.0.1:0", "--api-key", "ck_local"]).await;
    let first: Value = serde_json::from_str(&line).unwrap();
    let base = first["listening_on"].as_str().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    // The port is taken now: a second engine on it cannot start.
    let bind = base.strip_prefix("http://").unwrap();
    let run = ezthrottle(&["local", "--bind", bind, "--open"], b"").await;
    run.expect_code(3);
    assert!(run.stderr.starts_with(&format!("ezthrottle: the engine did not start: could not bind {bind}")), "{run:?}");
    // Neither an API key nor --open.
    let run = ezthrottle(&["local", "--bind", "127.0.0.1:0"], b"").await;
    run.expect_code(3);
    assert!(run.stderr.contains("no API key given"), "{run:?}");
    // Open beyond loopback without --open-on-network: a usage error, nothing is bound.
    let run = ezthrottle(&["local", "--bind", "0.0.0.0:0", "--open"], b"").await;
    run.expect_code(2);
    assert!(run.stderr.contains("--open-on-network"), "{run:?}");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let exit = tokio::time::timeout(DEADLINE, child.wait()).await.expect("exits in time").unwrap();
    assert!(exit.success(), "{exit:?}");
}
