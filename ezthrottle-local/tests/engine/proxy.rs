use serde_json::{Value, json};

use crate::support::*;

fn envelope(target_url: &str, method: &str, headers: Value, body: &str) -> Value {
    json!({"scope":"customer","metric_name":"","target_url":target_url,"method":method,"headers":headers,"body":body})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_envelope_submits_and_unwraps() {
    let (engine, api) = start(fast_engine()).await;
    let target = Server::start().await;
    let inner = json!({"url": target.url("/ok"), "method": "POST", "headers": {}, "body": "{\"a\":1}", "metadata": {"order": 7},
        "webhooks": [{"url": target.url("/hook"), "has_quorum_vote": true}], "webhook_quorum": 1, "idempotent_key": "py-1"});
    // Exactly what the Python SDK sends: the default ezthrottle host, the job as a string.
    let sent = envelope(
        "https://ezthrottle.fly.dev/api/v1/jobs",
        "POST",
        json!({"Content-Type": "application/json"}),
        &inner.to_string(),
    );
    let (status, answer) = api.proxy(&sent).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "allowed");
    let forwarded = &answer["forwarded_response"];
    assert_eq!(forwarded["status_code"], 201);
    let receipt: Value = serde_json::from_str(forwarded["body"].as_str().expect("body is a string")).unwrap();
    assert_eq!(receipt["status"], "queued");
    assert_eq!(receipt["idempotent_key"], "py-1");
    let id = receipt["job_id"].as_str().unwrap();
    assert!(id.starts_with("job_"), "{id}");
    let done = api.wait_delivered(id).await;
    assert_eq!(done["status"], "success");
    let hit = &target.wait_hits("/ok", 1).await[0];
    assert_eq!(&hit.body[..], b"{\"a\":1}");
    let payload: Value = serde_json::from_slice(&target.wait_hits("/hook", 1).await[0].body).unwrap();
    assert_eq!(payload["metadata"]["order"], 7);

    // The same submission again: a duplicate, still wrapped.
    let (_, again) = api.proxy(&sent).await;
    assert_eq!(again["forwarded_response"]["status_code"], 200);
    let receipt: Value = serde_json::from_str(again["forwarded_response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(receipt["job_id"], id);
    assert_eq!(receipt["duplicate"], true);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_carries_inner_errors_and_routes_by_path() {
    let (engine, api) = start(fast_engine()).await;
    let bad = json!({"url": "/relative", "method": "GET"}).to_string();
    let (status, answer) = api.proxy(&envelope("https://elsewhere.example/api/v1/jobs", "POST", json!({}), &bad)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["forwarded_response"]["status_code"], 400);
    let inner: Value = serde_json::from_str(answer["forwarded_response"]["body"].as_str().unwrap()).unwrap();
    assert!(inner["error"].as_str().unwrap().starts_with("url:"), "{inner}");

    let (_, answer) = api.proxy(&envelope("https://ezthrottle.fly.dev/api/v1/nothing", "GET", json!({}), "")).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 404);

    let (status, answer) = api.proxy(&json!({"scope": "customer"})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("target_url"), "{answer}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_crud_through_the_envelope() {
    let (engine, api) = start(fast_engine()).await;
    let url = "https://ezthrottle.fly.dev/api/v1/webhook-secrets";
    let (_, answer) = api.proxy(&envelope(url, "GET", json!({}), "")).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 404, "{answer}");

    let create = json!({"primary_secret": "primary_secret_0123456789", "secondary_secret": "secondary_secret_0123456"})
        .to_string();
    let (_, answer) = api.proxy(&envelope(url, "POST", json!({"Content-Type": "application/json"}), &create)).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 200, "{answer}");

    let (_, answer) = api.proxy(&envelope(url, "GET", json!({}), "")).await;
    let view: Value = serde_json::from_str(answer["forwarded_response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["primary_secret"], "prim****6789");
    assert_eq!(view["secondary_secret"], "seco****3456");
    assert_eq!(view["has_secondary"], true);
    assert!(view["customer_id"].as_str().unwrap().starts_with("cust_"));
    assert!(!answer.to_string().contains("primary_secret_0123456789"));

    let short = json!({"primary_secret": "short"}).to_string();
    let (_, answer) = api.proxy(&envelope(url, "POST", json!({"Content-Type": "application/json"}), &short)).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 400);
    assert!(answer["forwarded_response"]["body"].as_str().unwrap().contains("primary_secret"));

    let (_, answer) = api.proxy(&envelope(url, "DELETE", json!({}), "")).await;
    let deleted: Value = serde_json::from_str(answer["forwarded_response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(deleted, json!({"status": "ok", "message": "Webhook secrets deleted"}));
    let (_, answer) = api.proxy(&envelope(url, "GET", json!({}), "")).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 404);

    // Secrets are per tenant.
    let engine2 = fast_engine().api_key("ck_other").start().await.unwrap();
    let one = Api::new(&engine2.base_url(), KEY);
    let two = one.with_key("ck_other");
    let (_, _) = one.proxy(&envelope(url, "POST", json!({}), &create)).await;
    let (_, answer) = two.proxy(&envelope(url, "GET", json!({}), "")).await;
    assert_eq!(answer["forwarded_response"]["status_code"], 404);
    engine2.shutdown().await;
    engine.shutdown().await;
}
