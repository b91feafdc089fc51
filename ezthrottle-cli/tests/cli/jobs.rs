//! `jobs list | cancel | redeliver`: the admin API from the command line.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_by_page_and_status_and_a_job_cancelled_or_redelivered() {
    let (engine, url, base) = engine_and_echo().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let run = ezthrottle(
            &[
                "--json",
                "submit",
                "--ezthrottle-url",
                &base,
                "--url",
                &format!("{url}?n={n}"),
                "--wait",
                "--webhook-secret",
                SECRET,
            ],
            b"",
        )
        .await;
        ids.push(run.expect_code(0).json()["receipt"]["job_id"].as_str().unwrap().to_owned());
    }
    let page = ezthrottle(&["--json", "jobs", "list", "--ezthrottle-url", &base, "--limit", "2"], b"").await;
    let page = page.expect_code(0).json();
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(2), "{page:#}");
    let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
    let rest = ezthrottle(&["--json", "jobs", "list", "--ezthrottle-url", &base, "--cursor", &cursor], b"").await;
    assert_eq!(rest.expect_code(0).json()["jobs"].as_array().map(Vec::len), Some(1));
    let all = ezthrottle(&["--json", "jobs", "list", "--ezthrottle-url", &base, "--limit", "1", "--all"], b"").await;
    let listed: Vec<String> = all.expect_code(0).json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().into())
        .collect();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "every page, oldest first");
    let text = ezthrottle(&["jobs", "list", "--ezthrottle-url", &base, "--status", "success"], b"").await;
    assert_eq!(text.expect_code(0).stdout.lines().filter(|l| l.contains("success")).count(), 3, "{text:?}");
    let none = ezthrottle(&["jobs", "list", "--ezthrottle-url", &base, "--status", "queued"], b"").await;
    assert_eq!(none.expect_code(0).stdout, "no jobs\n");

    // A finished job is not cancelled (409, exit 3) but its webhooks are delivered again.
    let refused = ezthrottle(&["jobs", "cancel", &ids[0], "--ezthrottle-url", &base], b"").await;
    refused.expect_code(3);
    assert!(refused.stderr.contains("only a queued job"), "{refused:?}");
    let again = ezthrottle(&["jobs", "redeliver", &ids[0], "--ezthrottle-url", &base], b"").await;
    assert_eq!(again.expect_code(0).stdout, format!("job {}: webhooks delivered again\n", ids[0]));
    let missing = ezthrottle(&["jobs", "redeliver", "job_0_0", "--ezthrottle-url", &base], b"").await;
    missing.expect_code(5);
    engine.shutdown().await;
}
