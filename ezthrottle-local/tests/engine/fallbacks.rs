use serde_json::{Value, json};

use crate::support::*;

fn summary(job: &Value) -> Vec<(String, Option<u64>, String)> {
    job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["job"].as_str().unwrap().to_owned(),
                a["status_code"].as_u64(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn s(path: &str, code: Option<u64>, outcome: &str) -> (String, Option<u64>, String) {
    (path.to_owned(), code, outcome.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_runs_the_fallback_on_a_listed_code_only() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let fallback =
        json!({"url": target.url("/ok?fb"), "method": "GET", "trigger": {"type": "on_error", "codes": [500, 502]}});
    let id = api.submit_ok(&job(&target.url("/status/500"), json!({"fallback_job": fallback}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(summary(&done), vec![s("primary", Some(500), "failed"), s("fallback_job", Some(200), "success")]);

    let id = api.submit_ok(&job(&target.url("/status/404"), json!({"fallback_job": fallback}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(summary(&done), vec![s("primary", Some(404), "failed")]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_timeout_runs_the_fallback_when_the_primary_is_slow() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let fallback = json!({"url": target.url("/ok?fb"), "trigger": {"type": "on_timeout", "timeout_ms": 200}});
    let id = api.submit_ok(&job(&target.url("/slow/3000"), json!({"fallback_job": fallback}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success");
    assert_eq!(summary(&done), vec![s("primary", None, "cancelled"), s("fallback_job", Some(200), "success")]);
    // A fast primary does not trigger it.
    let id = api.submit_ok(&job(&target.url("/ok?fast"), json!({"fallback_job": fallback}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(summary(&done), vec![s("primary", Some(200), "success")]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_chains_recurse() {
    let (target, engine, api) = target_and(fast_engine()).await;
    // The Python SDK's example: 500 -> (on_error) a slow one -> (on_timeout) a good one.
    let inner =
        json!({"url": target.url("/ok?last"), "method": "GET", "trigger": {"type": "on_timeout", "timeout_ms": 300}});
    let outer = json!({"url": target.url("/slow/3000"), "method": "GET", "trigger": {"type": "on_error", "codes": [500, 502, 503]}, "fallback_job": inner});
    let id =
        api.submit_ok(&job(&target.url("/status/500"), json!({"fallback_job": outer, "idempotent_key": "k1"}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(
        summary(&done),
        vec![
            s("primary", Some(500), "failed"),
            s("fallback_job", None, "cancelled"),
            s("fallback_job.fallback_job", Some(200), "success")
        ]
    );
    assert_eq!(done["events"].as_array().unwrap().len(), 2, "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_trigger_runs_the_fallback_on_any_failure_as_the_python_sdk_sends_it() {
    let (target, engine, api) = target_and(fast_engine()).await;
    // `Step().fallback(step)` with no condition: the Python SDK sends `"trigger": {}`.
    let fallback = json!({"url": target.url("/ok?any"), "method": "GET", "trigger": {}});
    let id = api.submit_ok(&job(&target.url("/status/404"), json!({"fallback_job": fallback}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(summary(&done), vec![s("primary", Some(404), "failed"), s("fallback_job", Some(200), "success")]);
    // A success does not run it.
    let id = api.submit_ok(&job(&target.url("/ok?first"), json!({"fallback_job": fallback}))).await;
    assert_eq!(summary(&api.wait_terminal(&id).await), vec![s("primary", Some(200), "success")]);
    engine.shutdown().await;
}
