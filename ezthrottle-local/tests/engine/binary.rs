use crate::support::ResponseJson as _;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_address_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezthrottle-local"))
        .args(["--bind", "127.0.0.1:0", "--store", "memory:", "--api-key", "ck_bin"])
        .args(["--webhook-secret", "binary_secret_0123456"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the binary");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line).await.expect("first line in time").unwrap().unwrap();
    let base = line.trim_end().strip_prefix("listening on ").expect("first line").to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let http = reqwest::Client::new();
    let secrets: serde_json::Value = http
        .get(format!("{base}/api/v1/webhook-secrets"))
        .bearer_auth("ck_bin")
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(secrets["primary_secret"], "bina****3456");
    assert_eq!(http.get(format!("{base}/api/v1/webhook-secrets")).send().await.unwrap().status(), 401);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait());
    let exit = tokio::time::timeout(Duration::from_secs(20), exit).await.expect("exits in time").unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn a_short_webhook_secret_is_refused_at_start() {
    for weak in ["", "short_secret"] {
        let refused = ezthrottle_local::Engine::builder().open().webhook_secret(weak).start().await;
        match refused {
            Err(err @ ezthrottle_local::StartError::WeakWebhookSecret(_)) => {
                let message = err.to_string();
                assert!(message.contains("--webhook-secret") && message.contains("16"), "{message}");
                assert!(weak.is_empty() || !message.contains(weak), "the secret leaked: {message}");
            }
            other => panic!("{weak:?} was not refused: {other:?}"),
        }
    }
    let output = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_ezthrottle-local"))
            .args(["--bind", "127.0.0.1:0", "--open", "--webhook-secret", "short_secret"])
            .stdin(Stdio::null())
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(20), output).await.expect("exits in time").unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}
