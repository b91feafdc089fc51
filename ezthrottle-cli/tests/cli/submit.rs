//! `submit`, with and without `--wait`.

use super::*;

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
    let bind = support::free_addr().await;
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
