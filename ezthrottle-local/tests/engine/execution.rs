use std::time::Duration;

use ezthrottle_local::{EngineBuilder, RunningEngine};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::*;

/// The three regions the multi-region tests run in.
const REGIONS: [&str; 3] = ["iad", "lax", "ord"];

/// The recording target and an engine serving [`REGIONS`].
async fn three_region_engine() -> (Server, RunningEngine, Api) {
    target_and(REGIONS.into_iter().fold(fast_engine(), EngineBuilder::region)).await
}

/// Runs a job to `url` in every one of [`REGIONS`] with `execution_mode`: the receipt's
/// status is `receipt_status` and the job succeeds. Answers the finished job.
async fn run_across_regions(api: &Api, url: &str, execution_mode: &str, receipt_status: &str) -> Value {
    let (status, receipt) = api.submit(&job(url, json!({"regions": REGIONS, "execution_mode": execution_mode}))).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["status"], receipt_status, "{receipt}");
    let done = api.wait_terminal(receipt["job_id"].as_str().expect("job_id")).await;
    assert_eq!(done["status"], "success", "{done:#}");
    done
}

fn attempts(job: &Value) -> Vec<Value> {
    job["attempts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_honours_the_targets_retry_after() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let id = api
        .submit_ok(&job(&target.url("/flaky/1"), json!({"retry_policy": {"max_retries": 2, "retry_codes": [429]}})))
        .await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    let hits = target.hits("/flaky");
    assert_eq!(hits.len(), 2);
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(950), "Retry-After: 1 not honoured");
    let attempts = attempts(&done);
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0]["status_code"].as_u64(), attempts[0]["outcome"].as_str()), (Some(429), Some("retry")));
    assert_eq!((attempts[1]["status_code"].as_u64(), attempts[1]["outcome"].as_str()), (Some(200), Some("success")));
    assert!(attempts[1]["latency_ms"].is_u64());
    assert_eq!(done["response"]["body"], r#"{"result":"data"}"#);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_retries_503_three_times_and_not_500() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let retried = api.submit_ok(&job(&target.url("/status/503"), json!({}))).await;
    let plain = api.submit_ok(&job(&target.url("/status/500"), json!({}))).await;
    let done = api.wait_terminal(&retried).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(attempts(&done).len(), 4, "1 attempt + 3 retries: {done:#}");
    let done = api.wait_terminal(&plain).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(attempts(&done).len(), 1);
    assert_eq!(done["response"]["status_code"], 500);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_fails_with_the_error_recorded() {
    let closed = ezthrottle_test_support::refused_addr().await;
    let (engine, api) = start(fast_engine()).await;
    let id = api
        .submit_ok(&job(
            &format!("http://{closed}/nothing"),
            json!({"retry_policy": {"max_retries": 1, "retry_codes": [502]}}),
        ))
        .await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed");
    let attempts = attempts(&done);
    assert_eq!(attempts.len(), 2, "unreachable counts as 502 for the policy");
    assert!(attempts[0]["status_code"].is_null());
    assert!(attempts[0]["error"].as_str().unwrap().contains("could not reach"), "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroute_codes_move_the_attempt_to_the_next_region() {
    let (target, engine, api) = three_region_engine().await;
    let id = api
        .submit_ok(&job(
            &target.url("/fail-in/iad"),
            json!({"regions": ["iad"], "retry_policy": {"max_reroutes": 1, "reroute_codes": [500]}}),
        ))
        .await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    let attempts = attempts(&done);
    let summary: Vec<(&str, u64, &str)> = attempts
        .iter()
        .map(|a| (a["region"].as_str().unwrap(), a["status_code"].as_u64().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(summary, vec![("iad", 500, "reroute"), ("lax", 200, "success")]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_takes_the_first_2xx_and_cancels_the_others() {
    let (target, engine, api) = three_region_engine().await;
    let started = Instant::now();
    let done = run_across_regions(&api, &target.url("/fast-in/lax"), "race", "racing").await;
    assert_eq!(done["response"]["body"], "from lax");
    // A wide margin: a loaded machine can take seconds to run the job, never this long.
    assert!(started.elapsed() < SLOW_REGION / 2, "the race waited for the slow regions");
    // A region's attempt is recorded once the host's pacing lets it go. The regions get
    // their turns in order, so `iad`'s comes before the winner's; `ord`'s may come after
    // `lax` answered (on a loaded machine), and then it makes no attempt at all.
    let attempts = attempts(&done);
    assert!((2..=3).contains(&attempts.len()), "{done:#}");
    let outcomes = count_by(&attempts, "outcome");
    let cancelled = attempts.len() - 1;
    assert_eq!((outcomes.get("success"), outcomes.get("cancelled")), (Some(&1), Some(&cancelled)), "{done:#}");
    assert_eq!(attempts[0]["region"], "iad", "{done:#}");
    // The winner's request reached the target; a cancelled region's request may or may not
    // have left before it was cancelled.
    let hits = target.wait_hits("/fast-in", 1).await;
    assert!((1..=3).contains(&hits.len()), "{hits:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_runs_in_every_region() {
    let (target, engine, api) = three_region_engine().await;
    let done = run_across_regions(&api, &target.url("/ok"), "fanout", "queued").await;
    let mut regions: Vec<String> = target.hits("/ok").iter().filter_map(|h| h.region()).collect();
    regions.sort();
    assert_eq!(regions, ["iad", "lax", "ord"]);
    assert_eq!(count_by(&attempts(&done), "outcome").get("success"), Some(&3));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_regions_are_skipped_under_fallback_and_fail_under_strict() {
    let (target, engine, api) = target_and(fast_engine().region("iad").down_region("lax")).await;
    let skipped = api
        .submit_ok(&job(&target.url("/ok?fallback"), json!({"regions": ["lax", "iad"], "region_policy": "fallback"})))
        .await;
    let done = api.wait_terminal(&skipped).await;
    assert_eq!(done["status"], "success");
    let regions: Vec<&str> =
        done["attempts"].as_array().unwrap().iter().map(|a| a["region"].as_str().unwrap()).collect();
    assert_eq!(regions, ["iad"]);
    // Only the down region requested: routed to a region that is up.
    let rerouted = api.submit_ok(&job(&target.url("/ok?only-lax"), json!({"regions": ["lax"]}))).await;
    let done = api.wait_terminal(&rerouted).await;
    assert_eq!((done["status"].as_str(), done["attempts"][0]["region"].as_str()), (Some("success"), Some("iad")));

    let strict = api
        .submit_ok(&job(&target.url("/ok?strict"), json!({"regions": ["lax", "iad"], "region_policy": "strict"})))
        .await;
    let done = api.wait_terminal(&strict).await;
    assert_eq!(done["status"], "failed");
    assert!(done["error"].as_str().unwrap().contains("lax"), "{done:#}");
    assert!(done["attempts"].as_array().unwrap().is_empty());
    assert!(target.hits("/ok").iter().all(|h| h.region().as_deref() == Some("iad")));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_at_is_honoured() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let submitted = Instant::now();
    let id = api.submit_ok(&job(&target.url("/ok?later"), json!({"retry_at": now_ms + 1000}))).await;
    assert_eq!(api.job(&id).await["status"], "queued");
    let hit = target.wait_hits("/ok", 1).await;
    assert!(hit[0].at - submitted >= Duration::from_millis(900), "{:?}", hit[0].at - submitted);
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_job_reaches_a_terminal_state() {
    let target = Server::start().await;
    let closed = ezthrottle_test_support::refused_addr().await;
    let (engine, api) = start(fast_engine().target_timeout(Duration::from_millis(300))).await;
    let urls = [
        target.url("/ok"),
        target.url("/status/404"),
        target.url("/status/503"),
        target.url("/slow/2000"),
        format!("http://{closed}/x"),
    ];
    let mut ids = Vec::new();
    for i in 0..40 {
        let url = format!("{}?n={i}", urls[i % urls.len()]);
        ids.push(
            api.submit_ok(&job(&url, json!({"retry_policy": {"max_retries": 1, "retry_codes": [503, 504]}}))).await,
        );
    }
    let finished = api.wait_all_terminal(&ids).await;
    let counts = count_by(&finished, "status");
    assert_eq!(counts.get("success"), Some(&8));
    assert_eq!(counts.get("failed"), Some(&32));
    let metrics = api.metrics().await;
    assert!(metrics.contains("ezthrottle_jobs_finished_total{status=\"success\"} 8"), "{metrics}");
    assert!(metrics.contains("ezthrottle_jobs_finished_total{status=\"failed\"} 32"), "{metrics}");
    assert!(metrics.contains("ezthrottle_jobs{state=\"queued\"} 0"), "{metrics}");
    assert!(metrics.contains("ezthrottle_attempts_total{outcome=\"retry\"}"), "{metrics}");
    engine.shutdown().await;
}
