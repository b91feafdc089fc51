//! Benchmarks of ezthrottle-local; prints figures.
//!
//! `cargo bench -p ezthrottle-local --bench engine_bench` (set `BENCH_PACE_SECS` to
//! shorten the 30 s pace-accuracy run, `BENCH_QUICK=1` for a smoke run, `BENCH_ONLY` to a
//! comma-separated list of `accept`, `e2e`, `pace`, `replicas`, `telemetry` to run only those).
//!
//! 1. Submissions accepted per second with 64 concurrent keep-alive clients, p50/p99
//!    accept latency, and heap bytes per queued job (a counting allocator) with 100,000 jobs queued (the
//!    target host is paced at 0.01 RPS so every job stays queued): into the memory store,
//!    then into the SQLite store (each answer after its commit), and their ratio; for
//!    SQLite also bytes on disk per queued job and how long a restart takes to resume them.
//! 2. Jobs executed end to end per second with one webhook each, pacing lifted.
//! 3. Pace accuracy: a host paced at 10 RPS, dispatches counted over 30 s.
//! 5. telemetry: submissions per second (memory store) with no `tracing` subscriber, then
//!    with one installed for the process (fmt at info into a sink: the access log on).
//! 4. Two replicas on one PostgreSQL (`fsync` on, on loopback): combined submissions per
//!    second and p50/p99 accept latency, with 64 clients on each replica, then 8 (set
//!    `BENCH_POSTGRES=0` to skip it where PostgreSQL is not installed).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::alloc::System;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{any, post};
use ezthrottle_core::Pace;
use ezthrottle_local::Engine;
use ezthrottle_local::store::StoreLocation;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const KEY: &str = "ck_bench";
const CLIENTS: usize = 64;

/// Counts the bytes the process holds on the heap (RSS would keep what an earlier run
/// freed; SQLite's page cache, outside it, is bounded by SQLite).
#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn heap_bytes() -> u64 {
    let stats = HEAP.stats();
    (stats.bytes_allocated as i64 - stats.bytes_deallocated as i64 + stats.bytes_reallocated as i64).max(0) as u64
}

/// A minimal HTTP/1.1 keep-alive client: sends one request, reads one answer; returns the status.
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self { stream, buf: Vec::with_capacity(4096) }
    }

    async fn post(&mut self, path: &str, body: &str) -> u16 {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        self.buf.clear();
        loop {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap().to_ascii_lowercase();
                let status: u16 = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0);
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return status;
            }
        }
    }
}

async fn target() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/{*path}", any(|| async { r#"{"ok":true}"# }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Submits `total` distinct jobs from `CLIENTS` connections; returns (elapsed, latencies µs, accepted).
async fn submit_load(
    engine: SocketAddr,
    target: SocketAddr,
    total: usize,
    webhook: Option<String>,
    salt: &str,
) -> (Duration, Vec<u32>, u64) {
    submit_load_from(CLIENTS, engine, target, total, webhook, salt).await
}

/// Submits `total` distinct jobs from `clients` connections.
async fn submit_load_from(
    clients: usize,
    engine: SocketAddr,
    target: SocketAddr,
    total: usize,
    webhook: Option<String>,
    salt: &str,
) -> (Duration, Vec<u32>, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, accepted, latencies, webhook, salt) = (next.clone(), accepted.clone(), latencies.clone(), webhook.clone(), salt.to_owned());
            tokio::spawn(async move {
                let mut client = RawClient::connect(engine).await;
                let mut mine = Vec::with_capacity(total / clients + 1);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if n >= total {
                        break;
                    }
                    let body = match &webhook {
                        Some(hook) => format!(r#"{{"url":"http://{target}/ok","method":"POST","body":"{salt}{n}","webhooks":[{{"url":"{hook}"}}]}}"#),
                        None => format!(r#"{{"url":"http://{target}/ok","method":"POST","body":"{salt}{n}"}}"#),
                    };
                    let sent = Instant::now();
                    let status = client.post("/api/v1/jobs", &body).await;
                    mine.push(sent.elapsed().as_micros() as u32);
                    if status == 201 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    (elapsed, latencies, accepted.load(Ordering::Relaxed))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

/// Which store a run keeps its jobs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    Memory,
    Sqlite,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
        }
    }
}

fn file_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Submissions per second into `store`, p50/p99, memory per queued job; for SQLite also
/// bytes on disk per queued job and the time a restart takes to resume them all.
async fn bench_accept_and_memory(quick: bool, store: Store, dir: &Path) -> f64 {
    let target = target().await;
    let total = if quick { 10_000 } else { 100_000 };
    let path = dir.join(format!("accept-{}.sqlite3", target.port()));
    let builder = || {
        let builder =
            Engine::builder().api_key(KEY).pace(format!("127.0.0.1:{}", target.port()), Pace::new(0.01, 1).unwrap());
        match store {
            Store::Memory => builder,
            Store::Sqlite => builder.store_at(StoreLocation::Sqlite(path.clone())),
        }
    };
    let engine = builder().start().await.unwrap();
    // Warm up the connections and allocator, then measure from here.
    let _ = submit_load(engine.addr(), target, 2_000, None, "warm").await;
    let before = heap_bytes();
    let (elapsed, mut latencies, accepted) = submit_load(engine.addr(), target, total, None, "").await;
    let after = heap_bytes();
    latencies.sort_unstable();
    let payload = format!(r#"{{"url":"http://{target}/ok","method":"POST","body":"{}"}}"#, total / 2).len();
    let per_job = (after.saturating_sub(before)) as f64 / total as f64;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "accept ({}): {total} submissions, {CLIENTS} clients: {rate:.0}/s, accepted {accepted}, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        store.name(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "memory ({}): heap +{:.1} MiB for {total} queued jobs = {per_job:.0} B/job ({:.0} B/job beyond the {payload} B JSON payload)",
        store.name(),
        (after.saturating_sub(before)) as f64 / 1048576.0,
        per_job - payload as f64
    );
    engine.shutdown().await;
    if store == Store::Sqlite {
        let queued = total + 2_000;
        println!(
            "disk (sqlite): {:.1} MiB for {queued} queued jobs = {:.0} B/job",
            file_bytes(&path) as f64 / 1048576.0,
            file_bytes(&path) as f64 / queued as f64
        );
        let started = Instant::now();
        let engine = builder().start().await.unwrap();
        println!("recovery (sqlite): {queued} queued jobs resumed in {:.2} s", started.elapsed().as_secs_f64());
        engine.shutdown().await;
    }
    rate
}

async fn bench_replicas(quick: bool) {
    let server = ezthrottle_test_support::PostgresServer::start_durable().await;
    let target = target().await;
    let total = if quick { 10_000 } else { 100_000 };
    let replica = || async {
        let location: StoreLocation = server.url.parse().unwrap();
        let paced = Pace::new(0.01, 1).unwrap();
        Engine::builder()
            .api_key(KEY)
            .pace(format!("127.0.0.1:{}", target.port()), paced)
            .store_at(location)
            .start()
            .await
            .unwrap()
    };
    let (first, second) = (replica().await, replica().await);
    let _ = tokio::join!(
        submit_load(first.addr(), target, 1_000, None, "warm-a"),
        submit_load(second.addr(), target, 1_000, None, "warm-b")
    );
    // Throughput with 64 clients on each replica, then latency with 8 on each.
    for (clients, total, salt) in [(CLIENTS, total, "load"), (24, total / 2, "mid"), (8, total / 5, "latency")] {
        let (salt_a, salt_b) = (format!("{salt}-a"), format!("{salt}-b"));
        let started = Instant::now();
        let ((_, mut latencies, accepted_a), (_, latencies_b, accepted_b)) = tokio::join!(
            submit_load_from(clients, first.addr(), target, total / 2, None, &salt_a),
            submit_load_from(clients, second.addr(), target, total / 2, None, &salt_b)
        );
        let elapsed = started.elapsed();
        latencies.extend(latencies_b);
        latencies.sort_unstable();
        println!(
            "replicas (postgres, fsync on): {total} submissions over 2 replicas, {} clients: {:.0}/s combined, accepted {}, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
            2 * clients,
            total as f64 / elapsed.as_secs_f64(),
            accepted_a + accepted_b,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
    }
    first.shutdown().await;
    second.shutdown().await;
}

async fn bench_telemetry(quick: bool) {
    let target = target().await;
    let total = if quick { 10_000 } else { 50_000 };
    let paced = Pace::new(0.01, 1).unwrap();
    let rate = |label: &'static str| async move {
        let engine =
            Engine::builder().api_key(KEY).pace(format!("127.0.0.1:{}", target.port()), paced).start().await.unwrap();
        let _ = submit_load(engine.addr(), target, 2_000, None, &format!("warm-{label}")).await;
        let (elapsed, mut latencies, _) = submit_load(engine.addr(), target, total, None, label).await;
        latencies.sort_unstable();
        let rate = total as f64 / elapsed.as_secs_f64();
        println!("telemetry ({label}): {rate:.0} submissions/s, p99 {:.2} ms", percentile(&latencies, 0.99));
        engine.shutdown().await;
        rate
    };
    let off = rate("no subscriber").await;
    tracing_subscriber::fmt().with_writer(std::io::sink).with_max_level(tracing::Level::INFO).init();
    let on = rate("fmt subscriber at info").await;
    println!("telemetry: with / without a subscriber = {:.3}", on / off);
}

async fn bench_end_to_end(quick: bool) {
    let target = target().await;
    let delivered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let total: u64 = if quick { 5_000 } else { 30_000 };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let (counter, notify) = (delivered.clone(), done.clone());
    let router = Router::new().route(
        "/hook",
        post(move || {
            let (counter, notify) = (counter.clone(), notify.clone());
            async move {
                if counter.fetch_add(1, Ordering::Relaxed) + 1 == total {
                    notify.notify_one();
                }
                ""
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let engine = Engine::builder().api_key(KEY).default_pace(Pace::UNLIMITED).start().await.unwrap();
    let started = Instant::now();
    let waiter = done.notified();
    let (submit_elapsed, _, accepted) =
        submit_load(engine.addr(), target, total as usize, Some(format!("http://{hook_addr}/hook")), "").await;
    let finished = tokio::time::timeout(Duration::from_secs(120), waiter).await.is_ok();
    let elapsed = started.elapsed();
    println!(
        "end-to-end: {accepted} jobs with a webhook each, pacing lifted: {:.0} jobs/s (all {total} webhooks in {:.2} s{}; submissions took {:.2} s)",
        delivered.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        if finished { "" } else { ", TIMED OUT" },
        submit_elapsed.as_secs_f64()
    );
    engine.shutdown().await;
}

async fn bench_pace(seconds: u64) {
    let hits = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let log = hits.clone();
    let router = Router::new().route(
        "/{*path}",
        any(move || {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(Instant::now());
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let rps = 10.0;
    let engine = Engine::builder()
        .api_key(KEY)
        .pace(format!("127.0.0.1:{}", target.port()), Pace::new(rps, 4).unwrap())
        .start()
        .await
        .unwrap();
    let jobs = (rps as u64) * (seconds + 5);
    let _ = submit_load(engine.addr(), target, jobs as usize, None, "").await;
    let first = {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(first) = hits.lock().unwrap().first().copied() {
                break first;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::sleep_until((first + Duration::from_secs(seconds) + Duration::from_millis(200)).into()).await;
    let window = Duration::from_secs(seconds);
    let stamps = hits.lock().unwrap().clone();
    let inside: Vec<&Instant> = stamps.iter().filter(|t| t.duration_since(first) < window).collect();
    let measured = inside.len() as f64 / seconds as f64;
    let gaps: Vec<f64> = inside.windows(2).map(|w| w[1].duration_since(*w[0]).as_secs_f64() * 1000.0).collect();
    let (min_gap, max_gap) = gaps.iter().fold((f64::MAX, 0.0f64), |(lo, hi), g| (lo.min(*g), hi.max(*g)));
    println!(
        "pace: configured {rps} RPS, measured {measured:.2} RPS over {seconds} s ({:+.2} %), spacing {min_gap:.0}-{max_gap:.0} ms",
        (measured / rps - 1.0) * 100.0
    );
    engine.shutdown().await;
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let pace_secs =
        std::env::var("BENCH_PACE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick { 5 } else { 30 });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("ezthrottle-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let only = std::env::var("BENCH_ONLY").ok();
    let runs = |section: &str| only.as_deref().is_none_or(|only| only.split(',').any(|name| name == section));
    runtime.block_on(async {
        if runs("accept") {
            let memory = bench_accept_and_memory(quick, Store::Memory, &dir).await;
            let sqlite = bench_accept_and_memory(quick, Store::Sqlite, &dir).await;
            println!("accept: sqlite / memory = {:.2}", sqlite / memory);
        }
        if runs("e2e") {
            bench_end_to_end(quick).await;
        }
        if runs("pace") {
            bench_pace(pace_secs).await;
        }
        if runs("replicas") && std::env::var("BENCH_POSTGRES").ok().is_none_or(|v| v != "0") {
            bench_replicas(quick).await;
        }
        // Last: a global subscriber cannot be removed.
        if runs("telemetry") {
            bench_telemetry(quick).await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
