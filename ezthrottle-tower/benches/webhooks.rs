//! Receiving webhooks: verification and duplicate-check cost.
//!
//! `cargo bench -p ezthrottle-tower --features axum,redis --bench webhooks`
//!
//! - deliveries per second through an axum route on loopback, 1 KiB payloads, with the
//!   `VerifiedWebhook` extractor vs the same route parsing the JSON without verification
//!   (target ratio ≥ 0.9);
//! - the in-memory duplicate check of a repeated key (fingerprint + `MemoryIdempotencyStore::begin`;
//!   target < 2 µs);
//! - the Redis duplicate check (one script round trip) vs a bare `PING` on the same server.

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use criterion::{Criterion, criterion_group};
use ezthrottle_core::WebhookPayload;
use ezthrottle_core::webhook::Verifier;
use ezthrottle_core::webhook::sign;
use ezthrottle_test_support::RedisServer;
use ezthrottle_tower::idempotency::{
    Begin, IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore, StoredResponse, fingerprint,
};
use ezthrottle_tower::webhook::VerifiedWebhook;
use http::{Method, StatusCode};

const SECRET: &str = "whsec_bench_secret_01";

fn payload_1k() -> String {
    let pad = "x".repeat(1024 - 80);
    let body = format!(r#"{{"job_id":"job_bench","status":"success","metadata":{{"pad":"{pad}"}}}}"#);
    assert!((1000..1100).contains(&body.len()));
    body
}

/// Polls a future that completes without waiting (the memory store's).
fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store never waits here"),
    }
}

fn memory_check(c: &mut Criterion) {
    let store = MemoryIdempotencyStore::new();
    let body = payload_1k();
    let print = fingerprint(&Method::POST, "/webhook", body.as_bytes());
    let Begin::Acquired(token) = now_or_never(store.begin("k:order-1", print, Duration::from_secs(60))).unwrap() else {
        panic!("fresh key")
    };
    let stored = StoredResponse { fingerprint: print, status: StatusCode::OK, headers: vec![], body: "ok".into() };
    now_or_never(store.complete("k:order-1", &token, stored, Duration::from_secs(3600))).unwrap();
    let mut group = c.benchmark_group("idempotency_memory");
    group.bench_function("fingerprint 1 KiB", |b| {
        b.iter(|| fingerprint(&Method::POST, black_box("/webhook"), black_box(body.as_bytes())))
    });
    group.bench_function("duplicate check (fingerprint + begin)", |b| {
        b.iter(|| {
            let print = fingerprint(&Method::POST, "/webhook", black_box(body.as_bytes()));
            now_or_never(store.begin(black_box("k:order-1"), print, Duration::from_secs(60)))
        })
    });
    group.finish();
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

/// `total` POSTs of `body`, 16 in flight. Both routes get the same bytes on the wire (the
/// signature header included, signed once per round so the client's cost is equal).
async fn throughput(client: &reqwest::Client, url: &str, body: &str, total: usize) -> f64 {
    const IN_FLIGHT: usize = 16;
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let signature = sign(SECRET, i64::try_from(t).unwrap_or(0), body.as_bytes());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..IN_FLIGHT {
        let (client, url, body, signature) = (client.clone(), url.to_owned(), body.to_owned(), signature.clone());
        tasks.spawn(async move {
            let body = Bytes::from(body);
            for _ in (worker..total).step_by(IN_FLIGHT) {
                let request = client.post(&url).body(body.clone()).header("X-EZThrottle-Signature", &signature);
                let response = request.send().await.expect("send");
                assert_eq!(response.status(), reqwest::StatusCode::OK);
                let _ = response.bytes().await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn axum_side_by_side() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let router = Router::new()
            .route("/verified", post(|delivery: VerifiedWebhook| async move { black_box(delivery.payload.job_id) }))
            .route(
                "/plain",
                post(|body: Bytes| async move {
                    let payload: WebhookPayload = serde_json::from_slice(&body).expect("json");
                    black_box(payload.job_id)
                }),
            )
            .with_state(Verifier::new(SECRET).unwrap());
        let addr = serve(router).await;
        let client = reqwest::Client::new();
        let body = payload_1k();
        let (verified_url, plain_url) = (format!("http://{addr}/verified"), format!("http://{addr}/plain"));
        // Warm up, then alternate rounds so both see the same machine state.
        throughput(&client, &plain_url, &body, 2_000).await;
        throughput(&client, &verified_url, &body, 2_000).await;
        let (mut plain, mut verified) = (0.0, 0.0);
        for _ in 0..3 {
            plain += throughput(&client, &plain_url, &body, 10_000).await;
            verified += throughput(&client, &verified_url, &body, 10_000).await;
        }
        let (plain, verified) = (plain / 3.0, verified / 3.0);
        println!(
            "axum loopback, 1 KiB, 16 in flight: unverified {plain:.0} req/s, verified {verified:.0} req/s, ratio {:.3}",
            verified / plain
        );
    });
}

fn redis_check() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        let Some(redis) = RedisServer::start_or_skip().await else { return println!("redis: skipped") };
        let url = redis.url.clone();
        let client = redis::Client::open(url.as_str()).expect("url");
        let mut ping = None;
        for _ in 0..100 {
            if let Ok(connection) = client.get_multiplexed_async_connection().await {
                ping = Some(connection);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(mut ping) = ping else { return println!("redis: did not start") };
        let store = RedisIdempotencyStore::open(&url).expect("url");
        let body = payload_1k();
        let print = fingerprint(&Method::POST, "/webhook", body.as_bytes());
        let Ok(Begin::Acquired(token)) = store.begin("k:order-1", print, Duration::from_secs(60)).await else {
            return println!("redis: could not take a fresh key");
        };
        let stored = StoredResponse { fingerprint: print, status: StatusCode::OK, headers: vec![], body: "ok".into() };
        store.complete("k:order-1", &token, stored, Duration::from_secs(3600)).await.expect("complete");
        const N: u32 = 20_000;
        let started = Instant::now();
        for _ in 0..N {
            let _: String = redis::cmd("PING").query_async(&mut ping).await.expect("ping");
        }
        let ping_each = started.elapsed() / N;
        let started = Instant::now();
        for _ in 0..N {
            let state = store.begin("k:order-1", print, Duration::from_secs(60)).await.expect("begin");
            assert!(matches!(state, Begin::Completed(_)));
        }
        let check_each = started.elapsed() / N;
        println!(
            "redis loopback: duplicate check {check_each:?} each (one script round trip), bare PING {ping_each:?}"
        );
    });
}

criterion_group!(benches, memory_check);

fn main() {
    benches();
    axum_side_by_side();
    redis_check();
    Criterion::default().configure_from_args().final_summary();
}
