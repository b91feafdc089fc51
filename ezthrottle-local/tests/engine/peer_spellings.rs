//! Jobs as the other SDKs write them: the Node SDK's camelCase nested jobs and the Go SDK's
//! `hasQuorumVote` and camelCase retry policies run exactly like their snake_case twins.

use serde_json::{Value, json};

use crate::support::*;

fn attempts(job: &Value) -> Vec<(String, String)> {
    job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["job"].as_str().unwrap().to_owned(), a["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sdk_two_level_fallback_chain_runs_to_its_last_link() {
    let (target, engine, api) = target_and(fast_engine()).await;
    // Node's Step builder: the top level converted to snake_case, everything nested camelCase.
    let last = json!({"url": target.url("/ok?last"), "method": "GET", "trigger": {"type": "on_error", "codes": [503]}});
    let first = json!({
        "url": target.url("/status/503"), "method": "GET",
        "trigger": {"type": "on_error", "codes": [500]},
        "fallbackJob": last,
        "retryPolicy": {"maxRetries": 0},
    });
    let id = api.submit_ok(&job(&target.url("/status/500"), json!({"fallback_job": first}))).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(
        attempts(&done),
        [("primary", "failed"), ("fallback_job", "failed"), ("fallback_job.fallback_job", "success")]
            .map(|(job, outcome)| (job.to_owned(), outcome.to_owned()))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sdk_on_success_child_keeps_its_key_and_go_webhooks_keep_their_vote() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let child = json!({
        "url": target.url("/ok?child"), "method": "GET",
        "idempotentKey": "node-child-key",
        "webhooks": [{"url": target.url("/hook"), "hasQuorumVote": true}],
        "webhookQuorum": 1,
    });
    let parent = api.submit_ok(&job(&target.url("/ok?parent"), json!({"on_success": child}))).await;
    let done = api.wait_job(&parent, |j| !j["children"].as_array().unwrap().is_empty()).await;
    let child_id = done["children"][0]["job_id"].as_str().unwrap().to_owned();
    let child = api.wait_delivered(&child_id).await;
    assert_eq!(child["idempotent_key"], "node-child-key", "{child:#}");
    let payload: Value = serde_json::from_slice(&target.wait_hits("/hook", 1).await[0].body).unwrap();
    assert_eq!(payload["job_id"], child_id.as_str());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_field_is_ignored_by_default_and_refused_with_its_path_when_strict() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let typo = job(
        &target.url("/ok"),
        json!({"fallback_job": {"url": target.url("/ok?fb"), "trigger": {}, "retryPolcy": {}}}),
    );
    let (status, body) = api.submit(&typo).await;
    assert_eq!(status, 201, "ignored (and logged) by default: {body}");
    engine.shutdown().await;

    let (engine, api) = start(fast_engine().reject_unknown_fields()).await;
    let (status, body) = api.submit(&typo).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "fallback_job.retryPolcy: unknown field: not part of the job protocol", "{body}");
    // The other SDKs' spellings are known fields, strict or not.
    let node = job(
        &target.url("/ok?strict"),
        json!({"fallback_job": {"url": target.url("/ok?fb"), "trigger": {}, "idempotentKey": "k-7"}}),
    );
    assert_eq!(api.submit(&node).await.0, 201);
    engine.shutdown().await;
}
