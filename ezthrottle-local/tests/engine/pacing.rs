use std::time::Duration;

use ezthrottle_core::Pace;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_jobs_to_one_host_at_two_rps_take_at_least_4_5_s() {
    let (target, engine, api) = target_and(fast_engine().default_pace(Pace::default())).await;
    let elapsed = api.time_all_succeeding((0..10).map(|i| target.url(&format!("/ok?{i}")))).await;
    assert!(elapsed >= Duration::from_millis(4500), "10 jobs at 2 RPS took {elapsed:?}");
    let hits = target.hits("/ok");
    assert_eq!(hits.len(), 10);
    for pair in hits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(430), "two dispatches {gap:?} apart (0.5 s -10 % jitter at least)");
    }
    api.assert_pace(&target.host(), 2, 2).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_are_paced_independently_and_in_parallel() {
    let a = Server::start().await;
    let b = Server::start().await;
    let (engine, api) = start(fast_engine().default_pace(Pace::default())).await;
    let ids = api.submit_all((0..4).flat_map(|i| [a.url(&format!("/ok?{i}")), b.url(&format!("/ok?{i}"))])).await;
    api.wait_all_terminal(&ids).await;
    let (hits_a, hits_b) = (a.hits("/ok"), b.hits("/ok"));
    assert_eq!((hits_a.len(), hits_b.len()), (4, 4));
    // Interleaved, not one host after the other: each host's first request comes before
    // the other host's last.
    assert!(hits_b[0].at < hits_a[3].at && hits_a[0].at < hits_b[3].at);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pacing_header_raising_the_pace_to_20_rps_takes_effect() {
    let (target, engine, api) = target_and(fast_engine().default_pace(Pace::default())).await;
    // At 2 RPS the 20 jobs would need 9.5 s; at 20 RPS about 1 s.
    let elapsed = api.time_all_succeeding((0..20).map(|i| target.url(&format!("/pace/20/4?{i}")))).await;
    assert!(elapsed < Duration::from_secs(6), "still paced at 2 RPS: {elapsed:?}");
    api.assert_pace(&target.host(), 20, 4).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aqueduct_headers_win_over_ezthrottle_ones() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let id = api.submit_ok(&job(&target.url("/aqueduct"), json!({}))).await;
    api.wait_terminal(&id).await;
    api.assert_pace(&target.host(), 7, 4).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_bounds_requests_in_flight() {
    let target = Server::start().await;
    let (engine, api) = start(fast_engine().pace(target.host(), Pace::new(1000.0, 2).unwrap())).await;
    let ids = api.submit_all((0..6).map(|i| target.url(&format!("/slow/300?{i}")))).await;
    api.wait_all_terminal(&ids).await;
    let hits = target.hits("/slow");
    // With 2 in flight and 300 ms each, the third starts only after the first ended.
    assert!(hits[2].at - hits[0].at >= Duration::from_millis(280), "{:?}", hits[2].at - hits[0].at);
    engine.shutdown().await;
}
