//! The rate-limit and idempotency decisions' metrics, with the rate-limiting design's
//! names, seen by a recording `metrics` recorder, and their spans, seen by a recording
//! subscriber (a process of its own: the recorder and the subscriber are the process's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use ezthrottle_core::telemetry::{CONCURRENT_CONFLICTS_TOTAL, IDEMPOTENT_REPLAYS_TOTAL, RATE_LIMIT_EXCEEDED_TOTAL};
use ezthrottle_tower::idempotency::{IdempotencyLayer, InFlight};
use ezthrottle_tower::rate_limit::{Algorithm, MemoryRateLimitStore, RateLimitLayer, Rule, Scope};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::Notify;

fn counter(
    snapshot: &[(metrics_util::CompositeKey, Option<metrics::Unit>, Option<metrics::SharedString>, DebugValue)],
    name: &str,
) -> u64 {
    snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == name)
        .map(|(.., value)| match value {
            DebugValue::Counter(count) => *count,
            _ => 0,
        })
        .sum()
}

#[test]
fn refusals_replays_and_conflicts_are_counted_and_traced() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The process's recorder: this binary holds this one test.
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let (log, subscriber) = ezthrottle_test_support::TraceLog::new();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    {
        runtime.block_on(async {
            let (gate, entered) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
            let (held, inside) = (Arc::clone(&gate), Arc::clone(&entered));
            let limited = RateLimitLayer::with_store(MemoryRateLimitStore::new()).rule(Rule::new(
                "two_a_minute",
                Scope::global(),
                Algorithm::sliding_window(2, Duration::from_secs(60)),
            ));
            let router = Router::new().route("/limited", post(|| async { "ok" }).route_layer(limited)).route(
                "/charge",
                post(move |body: String| {
                    let (held, inside) = (Arc::clone(&held), Arc::clone(&inside));
                    async move {
                        if body == "slow" {
                            let released = held.notified();
                            inside.notify_one();
                            released.await;
                        }
                        "charged"
                    }
                })
                .route_layer(IdempotencyLayer::memory().in_flight(InFlight::Conflict)),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            let statuses: Vec<u16> = futures_util::future::join_all(
                (0..3).map(|_| async { http.post(format!("{base}/limited")).send().await.unwrap().status().as_u16() }),
            )
            .await;
            assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 1, "{statuses:?}");

            let charge = |key: &'static str, body: &'static str| {
                http.post(format!("{base}/charge")).header("Idempotency-Key", key).body(body).send()
            };
            assert_eq!(charge("key-replayed-0123456", "fast").await.unwrap().status(), 200);
            assert_eq!(charge("key-replayed-0123456", "fast").await.unwrap().status(), 200, "replayed");
            let mut first = tokio::spawn(charge("key-conflict-0123456", "slow"));
            // The first holds the key once its handler runs: a repeat then is a conflict.
            tokio::select! {
                () = entered.notified() => {}
                ended = &mut first => panic!("the first ended before its handler waited: {ended:?}"),
                () = tokio::time::sleep(Duration::from_secs(20)) => panic!("the first never ran"),
            }
            let second = charge("key-conflict-0123456", "slow").await.unwrap();
            assert_eq!(second.status(), 409);
            gate.notify_one();
            let first = tokio::time::timeout(Duration::from_secs(20), first).await.expect("the first ends");
            assert_eq!(first.unwrap().unwrap().status(), 200);
        });
    }
    let decisions = log.matching("span ezthrottle::rate_limit rate_limit rules=1");
    let allowed = decisions.iter().filter(|span| span.contains("allowed=true rule=two_a_minute")).count();
    let refused = decisions.iter().filter(|span| span.contains("allowed=false rule=two_a_minute")).count();
    assert_eq!((allowed, refused), (2, 1), "{decisions:#?}");
    let keyed = log.matching("span ezthrottle::idempotency idempotency");
    assert_eq!(keyed.len(), 4, "a span per keyed request: {keyed:#?}");
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&snapshot, RATE_LIMIT_EXCEEDED_TOTAL), 1, "{snapshot:?}");
    assert_eq!(counter(&snapshot, IDEMPOTENT_REPLAYS_TOTAL), 1, "{snapshot:?}");
    assert_eq!(counter(&snapshot, CONCURRENT_CONFLICTS_TOTAL), 1, "{snapshot:?}");
}
