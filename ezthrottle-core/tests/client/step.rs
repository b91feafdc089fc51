//! `Step::execute`: PERFORMANCE submits; FRUGAL runs here first, tries its FRUGAL
//! fallbacks, forwards once, and never runs a continuation twice.

use std::time::Duration;

use ezthrottle_core::{
    CallFailure, Error, LocalFailure, Method, ReplayPolicy, Step, StepOutcome, StepType, Trigger, Webhook,
};

use crate::support::{Answer, Clients, TestServer, receipt, refused_url};
use ezthrottle_test_support::HangUp;

fn frugal(url: &str) -> Step {
    Step::new(url).step_type(StepType::Frugal)
}

#[tokio::test]
async fn performance_submits_without_calling_the_target() {
    let target = TestServer::always(|| Answer::text(200, "should not be called")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("job_perf"))).await;
    let outcome = Step::new(format!("{}/charge", target.url)).execute(&engine.direct_client()).await.expect("ok");
    assert_eq!(outcome.receipt().map(|r| r.job_id.as_str()), Some("job_perf"));
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn frugal_success_runs_here_and_its_on_success_runs_here_once() {
    let target = TestServer::always(|| Answer::text(200, "charged").header("x-answer", "yes")).await;
    let next = TestServer::always(|| Answer::text(200, "receipt sent")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&format!("{}/charge", target.url))
        .method(Method::POST)
        .header("authorization", "Bearer t")
        .body("amount=1")
        .on_success(frugal(&format!("{}/receipt", next.url)));

    let outcome = step.execute(&engine.direct_client()).await.expect("ok");

    let StepOutcome::ExecutedLocally { response, on_success } = outcome else { panic!("not local: {outcome:?}") };
    assert_eq!(response.status.as_u16(), 200);
    assert_eq!(response.body, "charged");
    assert_eq!(response.headers["x-answer"], "yes");
    let child = on_success.expect("on_success ran").expect("child ok");
    assert_eq!(child.local_response().map(|r| r.body.clone()), Some("receipt sent".into()));
    let sent = target.only_request();
    assert_eq!((&sent.method, sent.body_text().as_str()), (&Method::POST, "amount=1"));
    assert_eq!(sent.headers["authorization"], "Bearer t");
    assert_eq!(next.requests().len(), 1, "on_success runs exactly once");
    assert!(engine.requests().is_empty(), "nothing is forwarded on success");
}

#[tokio::test]
async fn frugal_fallback_on_error_succeeds_here() {
    let primary = TestServer::always(|| Answer::text(500, "boom")).await;
    let skipped = TestServer::always(|| Answer::text(200, "wrong fallback")).await;
    let backup = TestServer::always(|| Answer::text(200, "from backup")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&primary.url)
        .fallback(frugal(&skipped.url), Trigger::on_error([503]))
        .fallback(frugal(&backup.url), Trigger::on_error([500]));

    let outcome = step.execute(&engine.direct_client()).await.expect("ok");

    let response = outcome.local_response().expect("local").clone();
    assert_eq!(response.body, "from backup");
    assert_eq!(response.url, backup.url);
    assert!(skipped.requests().is_empty(), "a fallback whose trigger does not match is not run");
    assert!(engine.requests().is_empty());
}

#[tokio::test]
async fn frugal_failure_forwards_the_whole_step_once_with_its_chain() {
    let primary = TestServer::always(|| Answer::text(429, "slow down")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("job_fwd"))).await;
    let next = TestServer::always(|| Answer::text(200, "must not run here")).await;
    let step = frugal(&primary.url)
        .webhook(Webhook::new("https://app.example.com/hook"))
        // PERFORMANCE fallback: left to EZThrottle, not run here.
        .fallback(Step::new("https://backup.example.com/x"), Trigger::on_error([429]))
        .on_success(Step::new(&next.url));

    let outcome = step.execute(&engine.direct_client()).await.expect("ok");

    assert_eq!(outcome.receipt().map(|r| r.job_id.as_str()), Some("job_fwd"));
    let job = engine.only_request().json();
    assert_eq!(job["url"], primary.url.as_str());
    assert_eq!(job["fallback_job"]["url"], "https://backup.example.com/x");
    assert_eq!(job["fallback_job"]["trigger"], serde_json::json!({"type": "on_error", "codes": [429]}));
    assert_eq!(job["on_success"]["url"], next.url.as_str());
    assert!(next.requests().is_empty(), "on_success is EZThrottle's to run once forwarded");
}

#[tokio::test]
async fn a_failed_frugal_fallback_is_not_forwarded_on_its_own() {
    let primary = TestServer::always(|| Answer::text(500, "boom")).await;
    let backup = TestServer::always(|| Answer::text(502, "also down")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("job_chain"))).await;
    let step = frugal(&primary.url).fallback(frugal(&backup.url), Trigger::on_error([500]));

    let outcome = step.execute(&engine.direct_client()).await.expect("ok");

    assert_eq!(outcome.receipt().map(|r| r.job_id.as_str()), Some("job_chain"));
    let requests = engine.requests();
    assert_eq!(requests.len(), 1, "exactly one job: the primary with its chain");
    assert_eq!(requests[0].json()["url"], primary.url.as_str());
    assert_eq!(backup.requests().len(), 1);
}

#[tokio::test]
async fn other_statuses_fail_here_run_on_failure_and_forward_nothing() {
    let primary = TestServer::always(|| Answer::text(404, "no such order")).await;
    let alert = TestServer::always(|| Answer::text(200, "paged")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&primary.url).on_failure(frugal(&alert.url), None);

    let outcome = step.execute(&engine.direct_client()).await.expect("ok");

    let StepOutcome::FailedLocally { response, on_failure } = outcome else { panic!("{outcome:?}") };
    assert_eq!(response.status.as_u16(), 404);
    assert_eq!(response.body, "no such order");
    assert!(matches!(on_failure.as_deref(), Some(Ok(StepOutcome::ExecutedLocally { .. }))));
    assert_eq!(alert.requests().len(), 1);
    assert!(engine.requests().is_empty());
}

#[tokio::test]
async fn custom_fallback_codes_decide_what_forwards() {
    let primary = TestServer::always(|| Answer::text(418, "teapot")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("job_418"))).await;
    let outcome =
        frugal(&primary.url).fallback_on_error([418]).execute(&engine.direct_client()).await.expect("forwarded");
    assert_eq!(outcome.receipt().map(|r| r.job_id.as_str()), Some("job_418"));
}

#[tokio::test]
async fn a_local_timeout_fires_on_timeout_fallbacks() {
    let slow = TestServer::always(|| Answer::text(200, "late").after(Duration::from_secs(5))).await;
    let on_error = TestServer::always(|| Answer::text(200, "wrong")).await;
    let on_timeout = TestServer::always(|| Answer::text(200, "fast path")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&slow.url)
        .local_timeout(Duration::from_millis(200))
        .fallback(frugal(&on_error.url), Trigger::on_error([500]))
        .fallback(frugal(&on_timeout.url), Trigger::on_timeout(Duration::from_millis(200)));

    let outcome = step.execute(&engine.direct_client()).await.expect("ok");

    assert_eq!(outcome.local_response().map(|r| r.body.clone()), Some("fast path".into()));
    assert!(on_error.requests().is_empty());
}

#[tokio::test]
async fn a_transport_failure_forwards() {
    let down = refused_url().await;
    let engine = TestServer::always(|| Answer::json(201, receipt("job_down"))).await;
    let outcome = frugal(&format!("{down}/x")).execute(&engine.direct_client()).await.expect("forwarded");
    assert_eq!(outcome.receipt().map(|r| r.job_id.as_str()), Some("job_down"));
}

#[tokio::test]
async fn when_forwarding_fails_too_both_causes_are_returned() {
    let primary = TestServer::always(|| Answer::text(503, "busy")).await;
    let client = ezthrottle_core::EZThrottle::builder().direct(refused_url().await).build().expect("client");
    let error = frugal(&primary.url).execute(&client).await.expect_err("both failed");
    let Error::Forward { local_failure, source } = &error else { panic!("{error:?}") };
    assert!(matches!(local_failure.as_ref(), LocalFailure::Status(r) if r.status.as_u16() == 503));
    assert!(source.is_not_sent());
    assert!(error.is_not_sent());
    let text = error.to_string();
    assert!(text.contains("answered 503") && text.contains("EZThrottle unreachable"), "{text}");
}

#[tokio::test]
async fn an_invalid_step_fails_before_anything_runs() {
    let target = TestServer::always(|| Answer::text(200, "no")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&target.url).on_success(Step::new("not a url"));
    let error = step.execute(&engine.direct_client()).await.expect_err("invalid");
    assert!(matches!(&error, Error::InvalidInput { field, .. } if field == "on_success.url"), "{error:?}");
    assert!(target.requests().is_empty() && engine.requests().is_empty());
}

#[tokio::test]
async fn an_any_trigger_fires_on_every_retryable_failure() {
    let primary = TestServer::always(|| Answer::text(503, "busy")).await;
    let backup = TestServer::always(|| Answer::text(200, "any will do")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&primary.url).fallback(frugal(&backup.url), Trigger::any());
    let outcome = step.execute(&engine.direct_client()).await.expect("ok");
    assert_eq!(outcome.local_response().map(|r| r.body.clone()), Some("any will do".into()));
    assert!(engine.requests().is_empty());
}

fn charge(url: &str, key: Option<&str>) -> Step {
    let step = frugal(&format!("{url}/charge"))
        .method(Method::POST)
        .header("authorization", "Bearer t0k")
        .body(r#"{"amount":100}"#)
        .on_failure(Step::new("https://alerts.example.com/charge-failed"), None);
    match key {
        Some(key) => step.header("Idempotency-Key", key),
        None => step,
    }
}

#[tokio::test]
async fn a_post_whose_target_closes_without_answering_is_forwarded_only_with_a_key() {
    let hang_up = HangUp::start().await;
    let target = hang_up.url("");
    let engine = TestServer::always(|| Answer::json(201, receipt("job_keyed"))).await;
    let client = engine.direct_client();

    let outcome = charge(&target, None).execute(&client).await.expect("an outcome");
    let StepOutcome::ReplayRefused { failure, call_failure, on_failure } = &outcome else {
        panic!("a POST without a key that may have run must not be forwarded: {outcome:?}")
    };
    assert_eq!(*call_failure, CallFailure::NoAnswer);
    assert!(matches!(failure, LocalFailure::Transport { .. }), "{failure:?}");
    assert!(matches!(on_failure.as_deref(), Some(Ok(StepOutcome::Forwarded(_)))), "{on_failure:?}");
    assert_eq!(hang_up.requests_read(), 1, "made once here, never repeated");
    // The only submission is the (PERFORMANCE) `on_failure` step, not the charge.
    let submitted: Vec<_> = engine.requests().iter().map(|r| r.json()["url"].clone()).collect();
    assert_eq!(submitted, ["https://alerts.example.com/charge-failed"], "the charge is not forwarded");

    let outcome = charge(&target, Some("charge-42")).execute(&client).await.expect("forwarded");
    assert_eq!(outcome.receipt().map(|r| r.job_id.as_str()), Some("job_keyed"));
    let requests = engine.requests();
    assert_eq!(requests.len(), 2, "one job: the charge, with its on_failure nested");
    let job = requests[1].json();
    assert_eq!(job["method"], "POST");
    assert_eq!(job["url"], format!("{target}/charge"));
    assert_eq!(job["body"], r#"{"amount":100}"#);
    assert_eq!(job["headers"]["Idempotency-Key"], "charge-42");
    assert_eq!(job["headers"]["authorization"], "Bearer t0k");
    assert_eq!(hang_up.requests_read(), 2);
}

/// The replay table for a FRUGAL step: which local failures forward, by method and key.
#[tokio::test]
async fn the_replay_rule_decides_what_a_frugal_step_forwards() {
    let busy = TestServer::always(|| Answer::text(503, "busy")).await;
    let limited = TestServer::always(|| Answer::text(429, "slow down")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("job_rule"))).await;
    let client = engine.direct_client();
    let post = |url: &str| frugal(url).method(Method::POST).body("{}");

    let refused = post(&busy.url).execute(&client).await.expect("an outcome");
    assert!(
        matches!(&refused, StepOutcome::ReplayRefused { call_failure: CallFailure::Status(s), .. } if s.as_u16() == 503),
        "{refused:?}"
    );
    assert_eq!(refused.local_response().map(|r| r.status.as_u16()), Some(503));
    assert!(engine.requests().is_empty());

    let cases = [
        ("POST answered 429: provably not run", post(&limited.url)),
        ("PUT is idempotent", frugal(&busy.url).method(Method::PUT).body("{}")),
        ("the key makes a repeat harmless", post(&busy.url).header("idempotency-key", "k-1")),
        ("the explicit opt-in", post(&busy.url).replay(ReplayPolicy::Always)),
    ];
    for (count, (why, step)) in cases.into_iter().enumerate() {
        let outcome = step.execute(&client).await.expect("an outcome");
        assert!(outcome.receipt().is_some(), "{why}: {outcome:?}");
        assert_eq!(engine.requests().len(), count + 1, "{why}");
    }
}

#[tokio::test]
async fn a_frugal_fallback_that_may_have_run_stops_the_forward() {
    let primary = TestServer::always(|| Answer::text(429, "slow down")).await;
    let backup = TestServer::always(|| Answer::text(502, "half done")).await;
    let engine = TestServer::always(|| Answer::json(201, receipt("never"))).await;
    let step = frugal(&primary.url)
        .method(Method::POST)
        .fallback(frugal(&backup.url).method(Method::POST), Trigger::on_error([429]));

    let outcome = step.execute(&engine.direct_client()).await.expect("an outcome");

    let StepOutcome::ReplayRefused { failure, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(matches!(failure, LocalFailure::Status(r) if r.url == backup.url), "{failure:?}");
    assert!(engine.requests().is_empty(), "forwarding would run the backup POST again");
}
