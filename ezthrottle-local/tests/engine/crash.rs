//! The real binary on a SQLite store: killed with SIGKILL mid-run, and drained by SIGTERM.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::time::Instant;

use crate::support::*;

async fn sqlite_binary(path: &Path, extra: &[&str]) -> (Child, Api) {
    binary(&format!("sqlite:{}", path.display()), extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_survive_a_kill_9() {
    const JOBS: usize = 1000;
    let dir = ezthrottle_test_support::TempDir::new("kill9");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    let pace = ["--default-rps", "2000", "--default-max-concurrent", "64"];
    let (mut child, api) = sqlite_binary(&path, &pace).await;
    let jobs: Vec<Value> = (0..JOBS)
        .map(|n| {
            job(
                &target.url(&format!("/slow/100?n={n}")),
                json!({"idempotent_key": format!("kill9-{n}"), "webhooks": [{"url": target.url("/hook")}]}),
            )
        })
        .collect();
    let ids: Vec<String> =
        futures_util::stream::iter(jobs.iter().map(|job| api.submit_ok(job))).buffered(32).collect().await;
    // Kill it mid-run: some jobs done, some in flight, the rest queued.
    target.wait("a fifth of the jobs started", |hits| hits.len() >= JOBS / 5).await;
    signal(&child, "-KILL");
    tokio::time::timeout(DEADLINE, child.wait()).await.expect("it dies").expect("wait");
    let started_before = target.hits("/slow/100").len();
    assert!(started_before < JOBS, "every job ran before the kill: the test proves nothing");

    let (mut child, api) = sqlite_binary(&path, &pace).await;
    let mut outcomes = HashSet::new();
    for done in api.wait_all_terminal(&ids).await {
        outcomes.insert(done["status"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(outcomes, HashSet::from(["success".to_owned()]), "every job succeeds against a target that answers 200");
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    let deadline = Instant::now() + DEADLINE;
    while !delivered(&target).is_superset(&wanted) {
        assert!(
            Instant::now() < deadline,
            "{} jobs never had a verified delivery",
            wanted.len() - delivered(&target).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, again) = api.submit(&jobs[7]).await;
    assert_eq!(
        (status, again["job_id"].as_str(), again["duplicate"].as_bool()),
        (200, Some(ids[7].as_str()), Some(true))
    );
    signal(&child, "-KILL");
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_attempt_in_flight_finish_and_keeps_the_queue_for_the_next_start() {
    let dir = ezthrottle_test_support::TempDir::new("sigterm");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    // One request at a time per host, and a grace the attempt fits in.
    let flags = ["--default-rps", "100", "--default-max-concurrent", "1", "--shutdown-grace", "10s"];
    let (mut child, api) = sqlite_binary(&path, &flags).await;
    let running =
        api.submit_ok(&job(&target.url("/slow/1000"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    let queued = api.submit_ok(&job(&target.url("/ok?queued"), json!({}))).await;
    target.wait_hits("/slow/1000", 1).await;
    let asked = Instant::now();
    signal(&child, "-TERM");
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits").expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(asked.elapsed() < Duration::from_secs(10), "the drain outlived its grace: {:?}", asked.elapsed());
    assert!(target.hits("/ok?queued").is_empty(), "a queued job started during the drain");
    assert_eq!(delivered(&target), HashSet::from([running.clone()]), "the finished job was delivered in the drain");

    let (mut child, api) = sqlite_binary(&path, &flags).await;
    let done = api.job(&running).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(1), "the attempt finished before the exit: {done:#}");
    let done = api.wait_terminal(&queued).await;
    assert_eq!(done["status"], "success", "{done:#}");
    signal(&child, "-TERM");
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
}
