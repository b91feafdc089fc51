//! The Redis inbox's delivery-to-waiter latency on loopback.
//!
//! `cargo bench -p ezthrottle-tower --features redis,webhook --bench inbox`
//!
//! Two `RedisInbox`es on one `redis-server` stand for two app replicas. For each of 2,000
//! jobs a waiter on replica B waits for the job; once it is waiting, replica A records
//! the delivery. The latency is from the start of A's `record` to B's `wait` resolving
//! (one script round trip, the `PUBLISH` fan-out to B's pub/sub connection, the local
//! wake-up). Target: p99 under 5 ms. Also: a waiter arriving after the delivery (one
//! `MGET`), and a bare `PING` round trip for scale.

use std::time::{Duration, Instant};

use ezthrottle_core::inbox::Inbox;
use ezthrottle_core::{DeliveryStatus, WebhookPayload};
use ezthrottle_test_support::RedisServer;
use ezthrottle_tower::webhook::RedisInbox;

const JOBS: usize = 2_000;
/// How long the waiter gets to be waiting (its `MGET` done) before the delivery: a bench
/// spacing, not a synchronisation the figures rely on (a waiter still reading would
/// resolve from the stored result, the slower path, so it could only raise them).
const SETTLE: Duration = Duration::from_millis(2);

fn replica(url: &str) -> RedisInbox {
    RedisInbox::builder(redis::Client::open(url).expect("url")).timeout(Duration::from_secs(5)).build()
}

fn payload(n: usize) -> WebhookPayload {
    WebhookPayload::new(format!("job_bench_{n}"), DeliveryStatus::Success)
        .with_idempotent_key(format!("order-{n}"))
        .with_metadata(serde_json::Map::from_iter([("pad".to_owned(), serde_json::Value::from("x".repeat(900)))]))
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len() - 1);
        samples[index].as_secs_f64() * 1000.0
    };
    println!(
        "{name}: {} samples, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        samples.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

async fn run() {
    let Some(redis) = RedisServer::start_or_skip().await else { return println!("inbox: skipped (no redis-server)") };
    let (a, b) = (replica(&redis.url), replica(&redis.url));
    // Open both replicas' connections (and B's pub/sub listener) before measuring.
    a.record(payload(usize::MAX)).await.expect("warm-up record");
    b.subscribe().await.expect("warm-up subscribe");

    let mut woken = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        let waiter = tokio::spawn({
            let b = b.clone();
            async move {
                let delivered = b.wait(&format!("job_bench_{n}"), Duration::from_secs(5)).await;
                (Instant::now(), delivered)
            }
        });
        tokio::time::sleep(SETTLE).await;
        let sent = Instant::now();
        a.record(payload(n)).await.expect("record");
        let (resolved, delivered) = waiter.await.expect("waiter");
        assert_eq!(delivered.expect("delivered").job_id, format!("job_bench_{n}"));
        woken.push(resolved.duration_since(sent));
    }
    report("delivery on replica A -> waiter on replica B (pub/sub)", woken);

    let mut late = Vec::with_capacity(JOBS);
    for n in 0..JOBS {
        let started = Instant::now();
        let delivered = b.wait(&format!("order-{n}"), Duration::ZERO).await.expect("stored");
        late.push(started.elapsed());
        assert_eq!(delivered.job_id, format!("job_bench_{n}"));
    }
    report("waiter on replica B after the delivery (stored result)", late);

    let mut connection = redis::Client::open(redis.url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut ping = Vec::with_capacity(JOBS);
    for _ in 0..JOBS {
        let started = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut connection).await.expect("PING");
        ping.push(started.elapsed());
    }
    report("bare PING round trip", ping);
}

fn main() {
    // `cargo bench` passes flags (`--bench`); this harness takes none.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
