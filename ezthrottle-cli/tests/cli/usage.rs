//! Usage errors, `--help`, completions, and the exit codes of a failed call.

use super::*;

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
