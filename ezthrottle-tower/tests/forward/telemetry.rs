//! The forward decision's telemetry: a `forward` span per call (the target's call and
//! the submission inside it, its outcome recorded), an event under `ezthrottle::forward`
//! and the `ezthrottle_forwards_total` counter by reason, with no credential in any.

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
        let answer = client.clone().oneshot(request).await.expect("an answer");
        assert_eq!(answer.status(), 202);
        let passing = Request::get(target.url("/fine")).body(TestBody::from("")).expect("a request");
        assert_eq!(client.oneshot(passing).await.expect("an answer").status(), 200);
        // The reqwest middleware: the same span.
        #[cfg(feature = "reqwest-middleware")]
        {
            let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(ezthrottle_tower::ForwardMiddleware::new(ezt.client.clone()))
                .build();
            let answer = http
                .post(target.url("/limited/1?api_key=tok_in_the_middleware_query"))
                .header("idempotency-key", "telemetry-0123456789")
                .body("payload")
                .send()
                .await
                .expect("an answer");
            assert_eq!(answer.status(), 202);
        }
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
    // The spans of `method` calls ending in `outcome`.
    let with = |method: &str, outcome: &str| -> Vec<&String> {
        spans
            .iter()
            .filter(|span| {
                span.contains(&format!("method={method} "))
                    && span.contains("host=127.0.0.1")
                    && span.contains(&format!("outcome={outcome}"))
            })
            .collect()
    };
    let forwarded = with("GET", "forwarded");
    assert!(forwarded.len() == 1 && forwarded[0].contains("reason=status"), "{spans:#?}");
    assert_eq!(with("GET", "passed").len(), 1, "the call that passed: {spans:#?}");
    let middleware = usize::from(cfg!(feature = "reqwest-middleware"));
    assert_eq!(with("POST", "forwarded").len(), middleware, "through the middleware: {spans:#?}");
    let submits = seen.log.matching("span ezthrottle::client submit");
    assert!(
        submits.iter().any(|span| span.ends_with("parent=forward")),
        "the submission in the forward span: {submits:#?}"
    );
    for line in seen.log.lines() {
        for secret in ["tok_in_the_query", "tok_in_the_header", "tok_in_the_middleware_query"] {
            assert!(!line.contains(secret), "a credential in the telemetry: {line}");
        }
    }
    assert_eq!(seen.counter(FORWARDS_TOTAL, Some(("reason", "status"))), Some(1 + middleware as u64));
}
