//! `on_status` and `run_or_forward_on`: exactly the request that failed is forwarded (kept
//! by `send_keeping_request`), or nothing, as the replay rule says.

use ezthrottle::{
    AutoForwardError, CallFailure, EZThrottle, FailedCall, ForwardToEZThrottle, KeepRequest, Method, Outcome,
    ReplayPolicy, StatusCode, Unforwardable,
};
use ezthrottle_macros::auto_forward;

use crate::support::{ByEngine, Target, engine, finished_job, unreachable_client};

const ORDER: &str = r#"{"sku":"A-1","quantity":2}"#;

/// The legacy call: an authenticated JSON `POST`, with an `Idempotency-Key` when given.
async fn post_order(url: &str, key: Option<&str>) -> Result<String, FailedCall> {
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth("user-token-a")
        .header("content-type", "application/json")
        .body(ORDER);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    Ok(request.send_keeping_request().await?.text().await?)
}

#[auto_forward(client = client, on_status = [429, 503])]
async fn create_order(client: &EZThrottle, url: &str, key: Option<&str>) -> Result<String, FailedCall> {
    post_order(url, key).await
}

/// What the engine ran is the caller's request: method, full URL, credential, body, key.
fn assert_is_the_order(executed: &ezthrottle_test_support::Recorded, path: &str, key: Option<&str>) {
    assert_eq!(executed.method, Method::POST);
    assert_eq!(executed.path, path);
    assert_eq!(executed.body_text(), ORDER);
    assert_eq!(executed.header("authorization"), Some("Bearer user-token-a"));
    assert_eq!(executed.header("content-type"), Some("application/json"));
    assert_eq!(executed.header("idempotency-key"), key);
}

/// Not forwarded because the POST may have run: with an unreachable client, any attempt to
/// forward would have come back as `ForwardFailed` instead.
fn assert_refused_as_may_have_run(error: &AutoForwardError<FailedCall>) {
    let AutoForwardError::NotForwardable { original, reason } = error else {
        panic!("expected NotForwardable, got {error:?}")
    };
    assert_eq!(*reason, Unforwardable::MayHaveRun(CallFailure::Status(StatusCode::SERVICE_UNAVAILABLE)));
    assert_eq!(original.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(original.request().map(ForwardToEZThrottle::method), Some(&Method::POST));
    assert!(error.to_string().contains("`Idempotency-Key` header"), "{error}");
}

#[tokio::test]
async fn on_status_forwards_the_authenticated_post_that_failed_with_its_body_and_headers() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let url = target.url("/unavailable/orders?region=eu");

    let outcome = create_order(&client, &url, Some("order-7")).await.unwrap();
    let Outcome::Forwarded(receipt) = outcome else { panic!("expected a forward, got {outcome:?}") };

    let executed = target.wait_for(|r| r.path_only() == "/unavailable/orders" && r.by_engine()).await;
    assert_is_the_order(&executed, "/unavailable/orders?region=eu", Some("order-7"));
    let job = finished_job(&engine, &receipt.job_id).await;
    assert_eq!(job["status"], "success", "{job:#}");
    assert_eq!(job["method"], "POST");
    assert_eq!(job["url"], url);
    engine.shutdown().await;
}

#[tokio::test]
async fn on_status_does_not_forward_a_post_without_a_key_that_may_have_run() {
    let target = Target::start().await;
    let url = target.url("/unavailable/orders");
    let error = create_order(&unreachable_client(), &url, None).await.unwrap_err();
    assert_refused_as_may_have_run(&error);
    assert_eq!(target.requests().len(), 1, "only the caller's own attempt");
}

#[tokio::test]
async fn on_status_forwards_a_post_without_a_key_that_was_refused_with_429() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let outcome = create_order(&client, &target.url("/limited/orders"), None).await.unwrap();
    assert!(outcome.is_forwarded(), "{outcome:?}");
    let executed = target.wait_for(|r| r.path == "/limited/orders" && r.by_engine()).await;
    assert_is_the_order(&executed, "/limited/orders", None);
    engine.shutdown().await;
}

/// The explicit opt-in: `ReplayPolicy::Always` on the failure's step.
#[auto_forward(client = client, on_status = [503])]
async fn create_order_always(client: &EZThrottle, url: &str) -> Result<String, FailedCall> {
    post_order(url, None).await.map_err(|failed| failed.map_step(|step| step.replay(ReplayPolicy::Always)))
}

#[tokio::test]
async fn the_explicit_opt_in_forwards_a_post_without_a_key() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let outcome = create_order_always(&client, &target.url("/unavailable/always")).await.unwrap();
    assert!(outcome.is_forwarded(), "{outcome:?}");
    let executed = target.wait_for(|r| r.path == "/unavailable/always" && r.by_engine()).await;
    assert_is_the_order(&executed, "/unavailable/always", None);
    engine.shutdown().await;
}

#[tokio::test]
async fn run_or_forward_on_forwards_the_post_with_a_key_and_refuses_it_without() {
    let target = Target::start().await;
    let (engine, client) = engine().await;

    let url = target.url("/unavailable/combinator");
    let outcome = client.run_or_forward_on(&[503], || post_order(&url, Some("order-8"))).await.unwrap();
    let Outcome::Forwarded(receipt) = outcome else { panic!("expected a forward, got {outcome:?}") };
    let executed = target.wait_for(|r| r.path == "/unavailable/combinator" && r.by_engine()).await;
    assert_is_the_order(&executed, "/unavailable/combinator", Some("order-8"));
    assert_eq!(finished_job(&engine, &receipt.job_id).await["status"], "success");
    engine.shutdown().await;

    let offline = unreachable_client();
    let error = offline.run_or_forward_on(&[503], || post_order(&url, None)).await.unwrap_err();
    assert_refused_as_may_have_run(&error);
    // A status that is not listed is returned as it was.
    let error = offline.run_or_forward_on(&[429], || post_order(&url, Some("k"))).await.unwrap_err();
    assert!(matches!(error, AutoForwardError::Failed(_)), "{error:?}");
}

#[tokio::test]
async fn run_or_forward_forwards_an_explicit_request_as_it_was_built() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let url = target.url("/limited/explicit");
    let outcome = client
        .run_or_forward(|| async {
            // No key, a POST: the caller's explicit request is forwarded as built.
            Err::<(), _>(ForwardToEZThrottle::post(&url, ORDER))
        })
        .await
        .unwrap();
    assert!(outcome.is_forwarded(), "{outcome:?}");
    let executed = target.wait_for(|r| r.path == "/limited/explicit" && r.by_engine()).await;
    assert_eq!((&executed.method, executed.body_text()), (&Method::POST, ORDER.to_owned()));
    assert!(matches!(
        client.run_or_forward(|| async { Ok::<_, ForwardToEZThrottle>(3) }).await,
        Ok(Outcome::Completed(3))
    ));
    engine.shutdown().await;
}

/// A `GET` (idempotent) forwards on a listed 429; a 404 is not listed.
#[auto_forward(client = client, on_status = [429, 503])]
async fn fetch(client: &EZThrottle, url: &str) -> Result<String, FailedCall> {
    Ok(reqwest::Client::new().get(url).send_keeping_request().await?.text().await?)
}

#[tokio::test]
async fn on_status_forwards_a_listed_status_and_returns_others() {
    let target = Target::start().await;
    let (engine, client) = engine().await;

    let outcome = fetch(&client, &target.url("/limited/report?day=7")).await.unwrap();
    let receipt = outcome.receipt().cloned().unwrap();
    let executed = target.wait_for(|r| r.path == "/limited/report?day=7" && r.by_engine()).await;
    assert_eq!(executed.method, Method::GET);
    assert_eq!(finished_job(&engine, &receipt.job_id).await["status"], "success");

    let error = fetch(&client, &target.url("/missing")).await.unwrap_err();
    let AutoForwardError::Failed(original) = error else { panic!("a 404 is not listed") };
    assert_eq!(original.status(), Some(StatusCode::NOT_FOUND));
    engine.shutdown().await;
}

/// A boxed error: a `FailedCall` in its chain forwards; a bare `reqwest::Error` with a
/// listed status (found only at run time) is returned with the fix.
#[auto_forward(client = client, on_status = [429])]
async fn fetch_boxed(
    client: &EZThrottle,
    url: &str,
    kept: bool,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    if kept {
        return Ok(reqwest::Client::new().get(url).send_keeping_request().await?.text().await?);
    }
    Ok(reqwest::get(url).await?.error_for_status()?.text().await?)
}

#[tokio::test]
async fn on_status_looks_inside_a_boxed_error_and_refuses_a_bare_reqwest_error() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let outcome = fetch_boxed(&client, &target.url("/limited/boxed"), true).await.unwrap();
    assert!(outcome.is_forwarded(), "{outcome:?}");
    target.wait_for(|r| r.path == "/limited/boxed" && r.by_engine()).await;
    engine.shutdown().await;

    let offline = unreachable_client();
    let error = fetch_boxed(&offline, &target.url("/limited/bare"), false).await.unwrap_err();
    assert_eq!(error.unforwardable(), Some(&Unforwardable::RequestUnknown), "{error:?}");
    assert!(error.to_string().contains("send_keeping_request()"), "{error}");
    let error = fetch_boxed(&offline, &target.url("/missing"), false).await.unwrap_err();
    assert!(matches!(error, AutoForwardError::Failed(_)), "{error:?}");
}
