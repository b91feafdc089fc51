use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_success_child_is_a_new_job_with_its_own_key_and_webhooks() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let child = json!({"url": target.url("/ok?child"), "method": "GET", "idempotent_key": "k2", "webhooks": [{"url": target.url("/hook")}]});
    let parent = api
        .submit_ok(&job(
            &target.url("/ok?parent"),
            json!({"on_success": child, "on_failure": {"url": target.url("/ok?never")}}),
        ))
        .await;
    let done = api.wait_job(&parent, |j| !j["children"].as_array().unwrap().is_empty()).await;
    assert_eq!(done["status"], "success");
    let children = done["children"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["relation"], "on_success");
    let child_id = children[0]["job_id"].as_str().unwrap();
    assert_ne!(child_id, parent);
    let child = api.wait_delivered(child_id).await;
    assert_eq!((child["status"].as_str(), child["idempotent_key"].as_str()), (Some("success"), Some("k2")));
    let payload: serde_json::Value = serde_json::from_slice(&target.wait_hits("/hook", 1).await[0].body).unwrap();
    assert_eq!(payload["job_id"], child_id);
    assert_eq!(target.hits("/ok").len(), 2, "parent and child, not on_failure");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_child_runs_when_the_parent_fails() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let parent = api
        .submit_ok(&job(
            &target.url("/status/500"),
            json!({"on_failure": {"url": target.url("/ok?cleanup")}, "on_success": {"url": target.url("/ok?no")}}),
        ))
        .await;
    let done = api.wait_job(&parent, |j| !j["children"].as_array().unwrap().is_empty()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["children"][0]["relation"], "on_failure");
    let child = api.wait_terminal(done["children"][0]["job_id"].as_str().unwrap()).await;
    assert_eq!(child["status"], "success");
    assert_eq!(child["url"], target.url("/ok?cleanup"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_timeout_submits_the_child_while_the_parent_is_slow() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let parent = api
        .submit_ok(&job(
            &target.url("/slow/1500"),
            json!({"on_failure": {"url": target.url("/ok?late")}, "on_failure_timeout_ms": 200}),
        ))
        .await;
    let hits = target.wait_hits("/ok", 1).await;
    assert_eq!(hits.len(), 1);
    let running = api.job(&parent).await;
    assert_eq!(running["status"], "running", "the child ran before the parent finished");
    assert_eq!(running["children"][0]["relation"], "on_failure");
    let done = api.wait_terminal(&parent).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["children"].as_array().unwrap().len(), 1, "on_failure is submitted once");
    engine.shutdown().await;
}
