//! The client's telemetry: a span per submission and two metrics, under the names of
//! `ezthrottle_core::telemetry`, with no credential anywhere.

use ezthrottle_core::telemetry::{SUBMISSION_SECONDS, SUBMISSIONS_TOTAL};
use ezthrottle_core::{Error, Job};
use ezthrottle_test_support::TraceLog;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::support::{Answer, Clients, TestServer, receipt};

#[test]
fn a_submission_is_a_span_a_count_by_outcome_and_a_latency_without_credentials() {
    let (log, subscriber) = TraceLog::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let proxy = TestServer::always(|| Answer::proxied(201, receipt("job_traced"))).await;
                let job = Job::new("https://bot:hunter2@api.example.com/v1/search?api_key=sk_live_secret1");
                proxy.cloud_client().submit_job(&job).await.expect("accepted");
                let refusing =
                    TestServer::always(|| Answer::proxied(400, serde_json::json!({"error": "url: no"}))).await;
                let refused = refusing.cloud_client().submit_job(&job).await;
                assert!(matches!(refused, Err(Error::InvalidInput { .. } | Error::Api { .. })), "{refused:?}");
            });
        });
    });

    let spans = log.matching("span ezthrottle::client submit");
    assert_eq!(spans.len(), 2, "{:#?}", log.lines());
    let accepted = spans.first().expect("a span");
    for field in ["method=GET", "host=api.example.com", "job_id=job_traced", "outcome=accepted"] {
        assert!(accepted.contains(field), "{field} missing from {accepted}");
    }
    assert!(spans.get(1).is_some_and(|span| span.contains("outcome=refused")), "{spans:?}");
    for line in log.lines() {
        for secret in ["hunter2", "sk_live_secret1", "ck_test_key"] {
            assert!(!line.contains(secret), "a credential in the telemetry: {line}");
        }
    }

    let metrics = snapshotter.snapshot().into_vec();
    let count = |outcome: &str| {
        metrics.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let labelled = key.labels().any(|label| label.key() == "outcome" && label.value() == outcome);
            match value {
                DebugValue::Counter(count) if key.name() == SUBMISSIONS_TOTAL && labelled => Some(*count),
                _ => None,
            }
        })
    };
    assert_eq!((count("accepted"), count("refused")), (Some(1), Some(1)), "{metrics:?}");
    let latencies = metrics.iter().find_map(|(key, _, _, value)| match value {
        DebugValue::Histogram(samples) if key.key().name() == SUBMISSION_SECONDS => Some(samples.len()),
        _ => None,
    });
    assert_eq!(latencies, Some(2));
}
