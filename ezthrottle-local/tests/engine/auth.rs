use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_missing_key_is_401_like_the_proxy() {
    let (engine, api) = start(fast_engine()).await;
    let target = Server::start().await;
    let expected = json!({"error": "Unauthorized", "message": "Invalid API key"});
    let wrong = api.with_key("ck_wrong");
    let (status, body) = wrong.submit(&job(&target.url("/ok"), json!({}))).await;
    assert_eq!((status, &body), (401, &expected));
    let (status, body) = wrong.proxy(&json!({"scope":"customer","metric_name":"","target_url":"https://ezthrottle.fly.dev/api/v1/jobs","method":"POST","headers":{},"body":"{}"})).await;
    assert_eq!((status, &body), (401, &expected));
    for (method, path) in
        [("GET", "/api/v1/webhook-secrets"), ("DELETE", "/api/v1/webhook-secrets"), ("GET", "/api/v1/jobs/job_1_1")]
    {
        assert_eq!(api.status_of(method, path, None, String::new()).await, 401, "{method} {path} without a key");
    }
    // A valid key in another case of the scheme still works.
    let body = job(&target.url("/ok?case=1"), json!({})).to_string();
    assert_eq!(api.status_of("POST", "/api/v1/jobs", Some(&format!("bearer {KEY}")), body).await, 201);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_accepts_no_key_and_refuses_an_unknown_one() {
    let engine = ezthrottle_local::Engine::builder()
        .open()
        .api_key(KEY)
        .default_pace(ezthrottle_core::Pace::UNLIMITED)
        .start()
        .await
        .unwrap();
    let target = Server::start().await;
    let api = Api::new(&engine.base_url(), KEY);
    let body = job(&target.url("/ok"), json!({})).to_string();
    let anonymous = api.http.post(format!("{}/api/v1/jobs", api.base)).body(body).send().await.unwrap();
    assert_eq!(anonymous.status(), 201);
    let id = anonymous.json_value().await["job_id"].as_str().unwrap().to_owned();
    // No Authorization header: the open tenant. A known key is its own tenant, even in
    // open mode: the open tenant's job is not its.
    assert_eq!(
        api.status_of("GET", &format!("/api/v1/jobs/{id}"), Some(&format!("Bearer {KEY}")), String::new()).await,
        404
    );
    assert_eq!(api.status_of("GET", &format!("/api/v1/jobs/{id}"), None, String::new()).await, 200);
    let own = api.submit_ok(&job(&target.url("/ok?known"), json!({}))).await;
    assert_eq!(api.wait_terminal(&own).await["status"], "success");
    let expected = json!({"error": "Unauthorized", "message": "Invalid API key"});
    let (status, answer) = api.with_key("ck_unknown").submit(&job(&target.url("/ok?2"), json!({}))).await;
    assert_eq!((status, &answer), (401, &expected), "a presented but unknown key");
    for authorization in ["Bearer", "Basic dXNlcjpwYXNz", "Bearer  ", "ck_no_scheme"] {
        let body = job(&target.url("/ok?3"), json!({})).to_string();
        assert_eq!(api.status_of("POST", "/api/v1/jobs", Some(authorization), body).await, 401, "{authorization:?}");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_and_not_open_refuses_to_start() {
    let err = ezthrottle_local::Engine::builder().start().await.unwrap_err();
    assert!(err.to_string().contains("no API key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_need_no_key() {
    let (engine, api) = start(fast_engine()).await;
    let health: serde_json::Value =
        api.http.get(format!("{}/health", api.base)).send().await.unwrap().json_value().await;
    assert_eq!(health["status"], "ok");
    let metrics = api.metrics().await;
    assert!(metrics.contains("ezthrottle_jobs{state=\"queued\"} 0"), "{metrics}");
    engine.shutdown().await;
}
