//! `local`: the engine, started and stopped as a user would.

use super::*;

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
