//! The forward decision's telemetry: an event under `ezthrottle::forward` and the
//! `ezthrottle_forwards_total` counter by reason, with no credential in either.

use ezthrottle_core::telemetry::FORWARDS_TOTAL;
use ezthrottle_test_support::TraceLog;
use ezthrottle_tower::ForwardLayer;
use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, ServiceExt};

use crate::support::*;

#[test]
fn a_forwarded_call_is_logged_and_counted_by_reason() {
    let (log, subscriber) = TraceLog::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let (target, ezt) = target_and_ezthrottle().await;
                let client = ForwardLayer::new(ezt.client.clone()).layer(hyper_client());
                let request = Request::get(target.url("/limited/1?access_token=tok_in_the_query"))
                    .header("authorization", "Bearer tok_in_the_header")
                    .body(TestBody::from(""))
                    .expect("a request");
                let answer = client.oneshot(request).await.expect("an answer");
                assert_eq!(answer.status(), 202);
            });
        });
    });
    let forwarded = log.matching("event ezthrottle::forward INFO");
    assert!(
        forwarded
            .iter()
            .any(|line| line.contains("reason=status") && line.contains("status=429") && line.contains("job_id=")),
        "{:#?}",
        log.lines()
    );
    for line in log.lines() {
        for secret in ["tok_in_the_query", "tok_in_the_header"] {
            assert!(!line.contains(secret), "a credential in the telemetry: {line}");
        }
    }
    let counted = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let by_status = key.labels().any(|label| label.key() == "reason" && label.value() == "status");
        match value {
            DebugValue::Counter(count) if key.name() == FORWARDS_TOTAL && by_status => Some(count),
            _ => None,
        }
    });
    assert_eq!(counted, Some(1));
}
