//! The client's telemetry: a span per submission and two metrics, under the names of
//! `ezthrottle_core::telemetry`, with no credential anywhere.

use ezthrottle_core::telemetry::{SUBMISSION_SECONDS, SUBMISSIONS_TOTAL};
use ezthrottle_core::{Error, Job};

use crate::support::{Answer, Clients, TestServer, receipt};

#[test]
fn a_submission_is_a_span_a_count_by_outcome_and_a_latency_without_credentials() {
    let seen = ezthrottle_test_support::observe(|| async {
        let proxy = TestServer::always(|| Answer::proxied(201, receipt("job_traced"))).await;
        let job = Job::new("https://bot:hunter2@api.example.com/v1/search?api_key=sk_live_secret1");
        proxy.cloud_client().submit_job(&job).await.expect("accepted");
        let refusing = TestServer::always(|| Answer::proxied(400, serde_json::json!({"error": "url: no"}))).await;
        let refused = refusing.cloud_client().submit_job(&job).await;
        assert!(matches!(refused, Err(Error::InvalidInput { .. } | Error::Api { .. })), "{refused:?}");
    });

    let spans = seen.log.matching("span ezthrottle::client submit");
    assert_eq!(spans.len(), 2, "{:#?}", seen.log.lines());
    let accepted = spans.first().expect("a span");
    for field in ["method=GET", "host=api.example.com", "job_id=job_traced", "outcome=accepted"] {
        assert!(accepted.contains(field), "{field} missing from {accepted}");
    }
    assert!(spans.get(1).is_some_and(|span| span.contains("outcome=refused")), "{spans:?}");
    for line in seen.log.lines() {
        for secret in ["hunter2", "sk_live_secret1", "ck_test_key"] {
            assert!(!line.contains(secret), "a credential in the telemetry: {line}");
        }
    }
    let count = |outcome| seen.counter(SUBMISSIONS_TOTAL, Some(("outcome", outcome)));
    assert_eq!((count("accepted"), count("refused")), (Some(1), Some(1)));
    assert_eq!(seen.samples(SUBMISSION_SECONDS), 2);
}
