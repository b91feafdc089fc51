//! What goes to stderr: `-v` logs and the progress line while waiting.

use super::*;

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

    // -vv: the client's debug events too (in core's `submit` span); global, after the subcommand.
    let debug = ezthrottle_with(without_rust_log(), &[&submit[..], &["-vv"]].concat(), b"").await;
    assert!(debug.expect_code(0).stderr.contains("DEBUG") && debug.stderr.contains("submit{method="), "{debug:?}");
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
    assert!(run.expect_code(0).stderr.contains("submit{method="), "{run:?}");
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
