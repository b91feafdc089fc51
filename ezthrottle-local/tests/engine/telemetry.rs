//! The engine's telemetry, asserted through a recording subscriber: an access log line per
//! request, a span per job with a span per attempt in it, and no credential in any of it.

use ezthrottle_test_support::TraceLog;
use serde_json::json;

use crate::support::*;

// One thread: the subscriber set for the test sees every task of the engine.
#[tokio::test(flavor = "current_thread")]
async fn requests_and_jobs_are_logged_by_target_without_credentials() {
    let (log, subscriber) = TraceLog::new();
    let _default = tracing::subscriber::set_default(subscriber);
    let (target, engine, api) = target_and(fast_engine()).await;
    let body = job(
        &target.url("/ok?api_key=sk_live_in_the_url"),
        json!({"headers": {"Authorization": "Bearer tok_live_of_the_job"}}),
    );
    let id = api.submit_ok(&body).await;
    api.wait_terminal(&id).await;
    engine.shutdown().await;

    let access = log.matching("event ezthrottle::engine::access INFO");
    assert!(
        access.iter().any(|line| line.contains("method=POST")
            && line.contains("path=/api/v1/jobs")
            && line.contains("status=201")),
        "{:#?}",
        log.lines()
    );
    assert!(access.iter().any(|line| line.contains(&format!("path=/api/v1/jobs/{id}"))), "{access:#?}");
    let jobs = log.matching("span ezthrottle::engine job");
    assert!(
        jobs.iter().any(|line| line.contains(&format!("job_id={id}")) && line.contains("host=127.0.0.1:")),
        "{jobs:#?}"
    );
    let attempt_spans = log.matching("span ezthrottle::engine attempt attempt=1 region=");
    assert!(
        attempt_spans.iter().any(|line| line.contains("status_code=200") && line.ends_with("parent=job")),
        "an attempt is a span in its job's: {:#?}",
        log.lines()
    );
    let attempts = log.matching("event ezthrottle::engine DEBUG");
    assert!(
        attempts.iter().any(|line| line.contains("attempt ended")
            && line.contains("attempt=1")
            && line.contains("status_code=200")),
        "{attempts:#?}"
    );
    for line in log.lines() {
        for secret in ["sk_live_in_the_url", "tok_live_of_the_job", KEY] {
            assert!(!line.contains(secret), "a credential in the telemetry: {line}");
        }
    }
}
