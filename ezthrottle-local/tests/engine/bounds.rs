//! Bounds on what a peer controls: webhook receivers' answers, tenants' share of the queue,
//! the target's announced pace, `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::support::*;
use ezthrottle_test_support::eventually;

/// Bytes an endless receiver writes before giving up (far beyond any socket buffer).
const ENDLESS_CAP: usize = 256 * 1024 * 1024;

/// A webhook receiver answering `200` with an endless chunked body: counts what it wrote
/// and whether the engine closed the connection before it stopped.
struct EndlessReceiver {
    url: String,
    written: Arc<AtomicUsize>,
    closed_by_peer: Arc<AtomicBool>,
}

impl EndlessReceiver {
    async fn start() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        // A small send buffer (inherited by accepted sockets) keeps in-kernel bytes few.
        socket.set_send_buffer_size(16 * 1024).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(16).unwrap();
        let url = format!("http://{}/endless", listener.local_addr().unwrap());
        let written = Arc::new(AtomicUsize::new(0));
        let closed_by_peer = Arc::new(AtomicBool::new(false));
        let (count, closed) = (Arc::clone(&written), Arc::clone(&closed_by_peer));
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await.is_err() {
                return;
            }
            let chunk = [b'x'; 16 * 1024];
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            while count.load(Ordering::Relaxed) < ENDLESS_CAP {
                if stream.write_all(&framed).await.is_err() {
                    closed.store(true, Ordering::Relaxed);
                    return;
                }
                count.fetch_add(framed.len(), Ordering::Relaxed);
            }
            // Hold the connection open: only the engine may end it.
            let _ = stream.read(&mut buf).await;
        });
        Self { url, written, closed_by_peer }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_an_endless_body_is_read_a_few_kib_then_dropped() {
    let receiver = EndlessReceiver::start().await;
    let target = Server::start().await;
    let (engine, api) = start(fast_engine().webhook_timeout(Duration::from_secs(60))).await;
    let started = Instant::now();
    let id = api.submit_ok(&job(&target.url("/ok"), json!({"webhooks": [{"url": receiver.url}]}))).await;
    let done = api.wait_delivered(&id).await;
    assert_eq!(done["webhooks"][0]["outcome"], "delivered", "{done:#}");
    assert_eq!(done["webhooks"][0]["attempts"][0]["status_code"], 200, "{done:#}");
    assert!(started.elapsed() < Duration::from_secs(10), "delivered only after {:?}", started.elapsed());
    eventually("the engine to close the receiver's connection", || receiver.closed_by_peer.load(Ordering::Relaxed))
        .await;
    // What was written sat in socket buffers, never in the engine: a few MiB at most.
    let written = receiver.written.load(Ordering::Relaxed);
    assert!(written < 8 * 1024 * 1024, "the engine read {written} bytes of the answer");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_share_of_the_queue_gets_429_while_others_get_in() {
    const OTHER: &str = "ck_live_other_tenant";
    let target = Server::start().await;
    // One request every 100 s: accepted jobs stay queued. Two tenants, 4 slots: 2 each.
    let builder = fast_engine().api_key(OTHER).pace(target.host(), ezthrottle_core::Pace::new(0.01, 1).unwrap());
    let (engine, api) = start(builder.max_queued_jobs(4)).await;
    let other = api.with_key(OTHER);
    api.submit_ok(&job(&target.url("/ok?a0"), json!({}))).await;
    target.wait_hits("/ok", 1).await; // started: no longer queued
    api.submit_ok(&job(&target.url("/ok?a1"), json!({}))).await;
    api.submit_ok(&job(&target.url("/ok?a2"), json!({"idempotent_key": "a2"}))).await;
    let response = api.submit_response(job(&target.url("/ok?a3"), json!({})).to_string()).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let answer = response.json_value().await;
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(message.contains("max_queued_jobs_per_tenant") && message.contains(" 2 jobs"), "{answer}");
    // A duplicate of a queued job still answers as one.
    let (status, _) = api.submit(&job(&target.url("/ok?a2"), json!({"idempotent_key": "a2"}))).await;
    assert_eq!(status, 200);

    // The other tenant still gets its share.
    other.submit_ok(&job(&target.url("/ok?b1"), json!({}))).await;
    other.submit_ok(&job(&target.url("/ok?b2"), json!({}))).await;
    assert_eq!(other.submit(&job(&target.url("/ok?b3"), json!({}))).await.0, 429);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_announcing_garbage_paces_keeps_its_pace_or_is_clamped() {
    let target = Server::start().await;
    let (engine, api) = start(fast_engine().pace(target.host(), ezthrottle_core::Pace::new(5.0, 3).unwrap())).await;
    for garbage in ["NaN/0", "inf/-1", "-5/99999999999", "0/0", "-inf/NaN"] {
        let id = api.submit_ok(&job(&target.url(&format!("/pace/{garbage}")), json!({}))).await;
        assert_eq!(api.wait_terminal(&id).await["status"], "success");
        api.assert_pace(&target.host(), 5, 3).await;
    }
    // Absurdly large: clamped to 1000 RPS and 256 in flight.
    let id = api.submit_ok(&job(&target.url("/pace/1e300/4294967295"), json!({}))).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    api.assert_pace(&target.host(), 1000, 256).await;
    // Absurdly small: raised to one request every 100 s.
    let id = api.submit_ok(&job(&target.url("/pace/1e-300/1"), json!({}))).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    let metrics = api.operator_metrics().await;
    let shown = format!("ezthrottle_host_pace_rps{{host=\"{}\"}} 0.01\n", target.host());
    assert!(metrics.contains(&shown), "{metrics}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_target_hosts_only_to_the_metrics_key() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let id = api.submit_ok(&job(&target.url("/ok"), json!({}))).await;
    api.wait_terminal(&id).await;
    let host = format!("host=\"{}\"", target.host());
    let operator = api.operator_metrics().await;
    assert!(operator.contains(&format!("ezthrottle_host_pace_rps{{{host}}}")), "{operator}");
    for (who, key) in [("anonymous", None), ("a tenant", Some(KEY)), ("a wrong key", Some("mk_operator_metrics_kez"))] {
        let metrics = api.metrics_as(key).await;
        assert!(!metrics.contains("ezthrottle_host_"), "{who} sees per-host series: {metrics}");
        assert!(!metrics.contains(&target.host()), "{who} sees the target: {metrics}");
        assert!(metrics.contains("ezthrottle_lanes 1\n"), "{who} sees the totals: {metrics}");
        assert!(metrics.contains("ezthrottle_jobs_finished_total{status=\"success\"} 1"), "{metrics}");
    }
    engine.shutdown().await;

    // Without a metrics key: nobody sees hosts, except in open mode where everyone does.
    let (engine, api) = start(ezthrottle_test_support::engine::fast().api_key(KEY)).await;
    let id = api.submit_ok(&job(&target.url("/ok?closed"), json!({}))).await;
    api.wait_terminal(&id).await;
    assert!(!api.metrics_as(Some(METRICS_KEY)).await.contains(&host));
    engine.shutdown().await;
    // Open, and KEY known too: an unknown key is refused even in open mode.
    let (engine, api) = start(ezthrottle_test_support::engine::fast().open().api_key(KEY)).await;
    let id = api.submit_ok(&job(&target.url("/ok?open"), json!({}))).await;
    api.wait_terminal(&id).await;
    assert!(api.metrics().await.contains(&host), "open mode shows hosts to everyone");
    engine.shutdown().await;
}

/// The value of the unlabelled gauge `name` in `metrics`.
fn gauge(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_lanes_are_dropped_and_busy_ones_kept() {
    const HOSTS: usize = 12;
    let mut targets = Vec::new();
    for _ in 0..HOSTS {
        targets.push(Server::start().await);
    }
    let (engine, api) = start(fast_engine().lane_idle_timeout(Duration::from_millis(200))).await;
    // Each request takes 6 s: every lane stays busy (in flight) well past the idle timeout.
    let submitted = Instant::now();
    let ids = api.submit_all(targets.iter().map(|target| target.url("/slow/6000"))).await;
    for target in &targets {
        target.wait_hits("/slow", 1).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // three idle timeouts, lanes busy
    let busy = api.metrics().await;
    assert!(submitted.elapsed() < Duration::from_secs(6), "too slow to see the lanes busy");
    assert_eq!(gauge(&busy, "ezthrottle_lanes"), Some(HOSTS as u64), "a busy lane was dropped: {busy}");
    for done in api.wait_all_terminal(&ids).await {
        assert_eq!(done["status"], "success", "{done:#}");
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metrics = api.metrics().await;
        if gauge(&metrics, "ezthrottle_lanes") == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "idle lanes were never dropped: {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A dropped lane comes back on the next job.
    let id = api.submit_ok(&job(&targets[0].url("/ok"), json!({}))).await;
    assert_eq!(api.wait_terminal(&id).await["status"], "success");
    engine.shutdown().await;
}

/// A chain of `levels` fallback jobs under `url`, each with an `on_success` leaf.
fn fallback_chain(url: &str, levels: usize) -> serde_json::Value {
    let mut chain = job(url, json!({}));
    for _ in 0..levels {
        chain["trigger"] = json!({}); // a fallback on any failure
        let leaf = job(url, json!({}));
        chain = job(url, json!({"fallback_job": chain, "on_success": leaf}));
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_nesting_more_than_32_jobs_is_a_400_naming_the_bound() {
    let (engine, api) = start(fast_engine()).await;
    let url = "http://127.0.0.1:9/x";
    // 16 levels of fallbacks, each with an `on_success`: 32 nested jobs, the bound.
    let mut tree = fallback_chain(url, 16);
    let (status, answer) = api.submit(&tree).await;
    assert_eq!(status, 201, "{answer}");
    tree["on_failure"] = job(url, json!({}));
    tree["idempotent_key"] = json!("nested-33");
    let (status, answer) = api.submit(&tree).await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("on_failure: at most 32 nested jobs per job (max_nested_jobs)"), "{answer}");
    engine.shutdown().await;
}
