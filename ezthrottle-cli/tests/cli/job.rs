//! `job`: `--wait` and `--follow`.

use super::*;

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
