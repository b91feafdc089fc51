//! Which redirects the engine follows: never for a webhook delivery; for a job, only those
//! that keep the request what it was, and never with credentials to another origin.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_follows_307_and_308_with_its_body_and_never_301_302_303() {
    let (target, engine, api) = target_and(fast_engine()).await;
    for code in [307, 308] {
        let url = target.url(&format!("/redirect/{code}/ok/kept-{code}"));
        let id = api.submit_ok(&job(&url, json!({"method": "POST", "body": "amount=1"}))).await;
        assert_eq!(api.wait_terminal(&id).await["status"], "success");
        let landed = target.wait_hits(&format!("/ok/kept-{code}"), 1).await;
        assert_eq!((landed[0].method.as_str(), landed[0].body_text()), ("POST", "amount=1".to_owned()));
    }
    for code in [301, 302, 303] {
        let url = target.url(&format!("/redirect/{code}/ok/changed-{code}"));
        let id = api.submit_ok(&job(&url, json!({"method": "POST", "body": "amount=1"}))).await;
        let done = api.wait_terminal(&id).await;
        assert_eq!(done["response"]["status_code"], code, "the 3xx is the answer: {done:#}");
        assert!(target.hits(&format!("/ok/changed-{code}")).is_empty(), "{code} followed as a bodiless GET");
    }
    // A GET stays a GET: every redirect is followed.
    let id = api.submit_ok(&job(&target.url("/redirect/301/ok/get"), json!({}))).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    assert_eq!(target.wait_hits("/ok/get", 1).await.len(), 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let other = Server::start().await;
    let other_port = other.url("").rsplit(':').next().unwrap().to_owned();
    let headers = json!({"Authorization": "Bearer t0k", "X-Api-Key": "k-1", "Cookie": "s=1", "Accept": "text/plain"});
    let url = target.url(&format!("/away/302/{other_port}/ok/there"));
    let id = api.submit_ok(&job(&url, json!({"headers": headers}))).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    let there = &other.wait_hits("/ok/there", 1).await[0];
    for credential in ["authorization", "x-api-key", "cookie"] {
        assert_eq!(there.header(credential), None, "{credential} crossed origins");
    }
    assert_eq!(there.header("accept"), Some("text/plain"));
    // On the same origin they stay.
    let id = api.submit_ok(&job(&target.url("/redirect/302/ok/here"), json!({"headers": headers}))).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    let here = &target.wait_hits("/ok/here", 1).await[0];
    assert_eq!((here.header("authorization"), here.header("x-api-key")), (Some("Bearer t0k"), Some("k-1")));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_a_redirect_is_a_failed_delivery_and_is_not_followed() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let webhooks = json!([{"url": target.url("/redirect/301/hook")}]);
    let id = api.submit_ok(&job(&target.url("/ok?job"), json!({"webhooks": webhooks}))).await;
    let done = api.wait_job(&id, |job| job["webhooks"][0]["outcome"].as_str().is_some_and(|o| o != "pending")).await;
    assert_eq!(done["webhooks"][0]["outcome"], "failed", "{done:#}");
    assert_eq!(done["webhooks"][0]["attempts"][0]["status_code"], 301, "{done:#}");
    assert!(target.hits("/hook").is_empty(), "the redirect was followed");
    engine.shutdown().await;
}
