use ezthrottle_core::webhook::Verifier;
use serde_json::{Value, json};

use crate::support::*;

const SECRET: &str = "whsec_local_engine_secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_the_payload_signed_with_the_primary_secret() {
    let (target, engine, api) = target_and(fast_engine().webhook_secret(SECRET)).await;
    let id = api
        .submit_ok(&job(
            &target.url("/ok"),
            json!({"idempotent_key": "sig-1", "metadata": {"user": 42}, "webhooks": [{"url": target.url("/hook")}]}),
        ))
        .await;
    let hit = &target.wait_hits("/hook", 1).await[0];
    let header = hit.headers["x-ezthrottle-signature"].to_str().unwrap();
    let verified = Verifier::new(SECRET).unwrap().verify(&hit.body, header).expect("signature verifies");
    assert_eq!(verified.reason(), "valid_primary");
    assert!(Verifier::new("some_other_secret_value").unwrap().verify(&hit.body, header).is_err());
    let payload: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(payload["job_id"], id.as_str());
    assert_eq!(payload["idempotent_key"], "sig-1");
    assert_eq!(payload["status"], "success");
    assert_eq!(payload["response"]["status_code"], 200);
    assert_eq!(payload["response"]["body"], r#"{"result":"data"}"#);
    assert_eq!(payload["metadata"], json!({"user": 42}));
    let done = api.wait_delivered(&id).await;
    assert_eq!(done["webhooks"][0]["outcome"], "delivered");
    assert_eq!(done["webhook_quorum"]["met"], true);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_set_through_the_api_sign_and_deleted_ones_do_not() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let id = api.submit_ok(&job(&target.url("/ok?1"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    api.wait_delivered(&id).await;
    assert!(target.hits("/hook")[0].headers.get("x-ezthrottle-signature").is_none(), "no secret, no signature");

    let response = api
        .http
        .post(format!("{}/api/v1/webhook-secrets", api.base))
        .bearer_auth(KEY)
        .body(json!({"primary_secret": "rotated_secret_new_1", "secondary_secret": SECRET}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = api.submit_ok(&job(&target.url("/ok?2"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    api.wait_delivered(&id).await;
    let hit = &target.hits("/hook")[1];
    let verified = Verifier::new("rotated_secret_new_1")
        .unwrap()
        .with_secondary(SECRET)
        .unwrap()
        .verify(&hit.body, hit.headers["x-ezthrottle-signature"].to_str().unwrap())
        .unwrap();
    assert_eq!(verified.reason(), "valid_primary");

    api.http.delete(format!("{}/api/v1/webhook-secrets", api.base)).bearer_auth(KEY).send().await.unwrap();
    let id = api.submit_ok(&job(&target.url("/ok?3"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    api.wait_delivered(&id).await;
    assert!(target.hits("/hook")[2].headers.get("x-ezthrottle-signature").is_none());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_counts_voting_webhooks_only() {
    let target = Server::start().await;
    let closed = ezthrottle_test_support::refused_addr().await;
    let (engine, api) = start(fast_engine().webhook_retry(std::time::Duration::from_millis(5), 2)).await;
    let met = api
        .submit_ok(&job(
            &target.url("/ok?met"),
            json!({"webhook_quorum": 2, "webhooks": [
                {"url": target.url("/hook")}, {"url": target.url("/hook/0?b")},
                {"url": format!("http://{closed}/hook"), "has_quorum_vote": false}]}),
        ))
        .await;
    let done = api.wait_delivered(&met).await;
    assert_eq!(done["webhook_quorum"]["met"], true, "{done:#}");
    let missed = api
        .submit_ok(&job(
            &target.url("/ok?missed"),
            json!({"webhook_quorum": 2, "webhooks": [
                {"url": target.url("/hook")}, {"url": format!("http://{closed}/hook")},
                {"url": target.url("/hook/0?nv"), "has_quorum_vote": false}]}),
        ))
        .await;
    let done = api.wait_job(&missed, |j| !j["webhook_quorum"]["met"].is_null()).await;
    assert_eq!(done["webhook_quorum"]["met"], false, "{done:#}");
    let hooks = done["webhooks"].as_array().unwrap();
    assert_eq!(hooks[1]["outcome"], "failed");
    assert_eq!(hooks[1]["attempts"].as_array().unwrap().len(), 2, "bounded retries");
    assert_eq!(hooks[2]["outcome"], "delivered");
    let metrics = api.metrics().await;
    assert!(metrics.contains("ezthrottle_webhook_quorum_total{outcome=\"missed\"} 1"), "{metrics}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_is_retried_to_a_receiver_that_is_down_at_first() {
    let target = Server::start().await;
    let receiver_addr = ezthrottle_test_support::free_addr().await;
    let (engine, api) =
        start(fast_engine().webhook_secret(SECRET).webhook_retry(std::time::Duration::from_millis(200), 8)).await;
    let id = api
        .submit_ok(&job(&target.url("/ok"), json!({"webhooks": [{"url": format!("http://{receiver_addr}/hook")}]})))
        .await;
    // Wait until a delivery attempt has failed, then bring the receiver up.
    api.wait_job(&id, |j| j["webhooks"][0]["attempts"].as_array().is_some_and(|a| !a.is_empty())).await;
    let receiver = Server::start_on(receiver_addr).await;
    let hit = &receiver.wait_hits("/hook", 1).await[0];
    Verifier::new(SECRET).unwrap().verify(&hit.body, hit.headers["x-ezthrottle-signature"].to_str().unwrap()).unwrap();
    let done = api.wait_delivered(&id).await;
    let attempts = done["webhooks"][0]["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{done:#}");
    assert!(attempts[0]["error"].is_string());
    assert_eq!(attempts.last().unwrap()["status_code"], 200);
    assert_eq!(done["webhooks"][0]["outcome"], "delivered");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_503_gets_the_delivery_again_and_failed_jobs_report_failed() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let id =
        api.submit_ok(&job(&target.url("/status/404"), json!({"webhooks": [{"url": target.url("/hook/2")}]}))).await;
    let done = api.wait_delivered(&id).await;
    assert_eq!(done["webhooks"][0]["attempts"].as_array().unwrap().len(), 3);
    let hits = target.hits("/hook/2");
    assert_eq!(hits.len(), 3);
    let payload: Value = serde_json::from_slice(&hits[2].body).unwrap();
    assert_eq!(payload["status"], "failed");
    assert_eq!(payload["response"]["status_code"], 404);
    engine.shutdown().await;
}
