//! The forward decision's telemetry: an event under `ezthrottle::forward` and the
//! `ezthrottle_forwards_total` counter by reason, with no credential in either.

use ezthrottle_core::telemetry::FORWARDS_TOTAL;
use ezthrottle_tower::ForwardLayer;
use http::Request;
use tower::{Layer, ServiceExt};

use crate::support::*;

#[test]
fn a_forwarded_call_is_logged_and_counted_by_reason() {
    let seen = ezthrottle_test_support::observe(|| async {
        let (target, ezt) = target_and_ezthrottle().await;
        let client = ForwardLayer::new(ezt.client.clone()).layer(hyper_client());
        let request = Request::get(target.url("/limited/1?access_token=tok_in_the_query"))
            .header("authorization", "Bearer tok_in_the_header")
            .body(TestBody::from(""))
            .expect("a request");
        let answer = client.oneshot(request).await.expect("an answer");
        assert_eq!(answer.status(), 202);
    });
    let forwarded = seen.log.matching("event ezthrottle::forward INFO");
    assert!(
        forwarded
            .iter()
            .any(|line| line.contains("reason=status") && line.contains("status=429") && line.contains("job_id=")),
        "{:#?}",
        seen.log.lines()
    );
    let spans = seen.log.matching("span ezthrottle::forward forward");
    assert!(spans.iter().any(|span| span.contains("host=127.0.0.1")), "{:#?}", seen.log.lines());
    let submits = seen.log.matching("span ezthrottle::client submit");
    assert!(
        submits.iter().any(|span| span.ends_with("parent=forward")),
        "the submission in the forward span: {submits:#?}"
    );
    for line in seen.log.lines() {
        for secret in ["tok_in_the_query", "tok_in_the_header"] {
            assert!(!line.contains(secret), "a credential in the telemetry: {line}");
        }
    }
    assert_eq!(seen.counter(FORWARDS_TOTAL, Some(("reason", "status"))), Some(1));
}
