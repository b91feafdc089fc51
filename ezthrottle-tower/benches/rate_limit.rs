//! Rate-limit decision cost.
//!
//! `cargo bench -p ezthrottle-tower --features redis --bench rate_limit`
//!
//! - in memory, uncontended: one decision (target < 200 ns);
//! - the scope key of one request: the SHA-256 digest of an API key (what every scoped rule
//!   adds per request, so no raw key is ever a store key);
//! - in memory, 2 threads contending on 1,000 keys: decisions per second;
//! - through Redis (a `redis-server` the bench starts on a free loopback port): decisions
//!   per second, one pipelined script round trip each, side by side with a bare `PING`
//!   loop on the same connection (target ≥ 0.8× the PING rate).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use ezthrottle_test_support::RedisServer;
use ezthrottle_tower::rate_limit::{Algorithm, Check, MemoryRateLimitStore, RateLimitStore, RequestHead, Scope};

fn memory(c: &mut Criterion) {
    let store = MemoryRateLimitStore::new();
    let bucket = Algorithm::token_bucket(1e9, u32::MAX);
    let window = Algorithm::sliding_window(u32::MAX, Duration::from_millis(1));
    let mut group = c.benchmark_group("rate_limit_memory");
    group
        .bench_function("token bucket decision", |b| b.iter(|| store.check_one(black_box("per_user\nalice"), &bucket)));
    group
        .bench_function("sliding window decision", |b| b.iter(|| store.check_one(black_box("per_user\nbob"), &window)));
    let scope = Scope::header("x-api-key");
    let request =
        http::Request::get("/").header("x-api-key", "sk_live_0123456789abcdef0123456789").body(()).expect("request");
    group.bench_function("scope key (digest of an API key)", |b| {
        b.iter(|| scope.key(black_box(&RequestHead::of(&request))))
    });
    group.finish();
}

fn contended() {
    let store = MemoryRateLimitStore::new();
    let algorithm = Algorithm::token_bucket(1e9, u32::MAX);
    let keys: Vec<String> = (0..1000).map(|i| format!("per_user\nuser-{i}")).collect();
    const PER_THREAD: usize = 2_000_000;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..2 {
            let (store, keys, algorithm) = (&store, &keys, &algorithm);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    black_box(store.check_one(&keys[(i * 7 + thread * 13) % keys.len()], algorithm));
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let per_sec = (2 * PER_THREAD) as f64 / elapsed.as_secs_f64();
    println!(
        "memory, 2 threads on 1,000 keys: {:.1} M decisions/s ({:.0} ns each per thread)",
        per_sec / 1e6,
        elapsed.as_nanos() as f64 / PER_THREAD as f64
    );
}

fn redis_side_by_side() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let Some(redis) = RedisServer::start_or_skip().await else { return println!("redis: skipped") };
        let client = redis::Client::open(redis.url.as_str()).expect("url");
        let mut connection = loop {
            match client.get_connection_manager().await {
                Ok(connection) => break connection,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let store = ezthrottle_tower::rate_limit::RedisRateLimitStore::new(client.clone());
        let algorithm = Algorithm::token_bucket(1e9, u32::MAX);
        let check = || vec![Check { key: "bench".into(), algorithm }];
        store.check(check()).await.expect("warm up");
        const N: u32 = 20_000;
        let mut pings = Duration::ZERO;
        let mut decisions = Duration::ZERO;
        for _ in 0..3 {
            let started = Instant::now();
            for _ in 0..N {
                let _: String = redis::cmd("PING").query_async(&mut connection).await.expect("ping");
            }
            pings += started.elapsed();
            let started = Instant::now();
            for _ in 0..N {
                black_box(store.check(check()).await.expect("decision"));
            }
            decisions += started.elapsed();
        }
        let rate = |elapsed: Duration| f64::from(3 * N) / elapsed.as_secs_f64();
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut connection).await.expect("info");
        for line in stats.lines().filter(|l| {
            l.contains("evalsha")
                || l.contains("cmdstat_ping")
                || l.contains("cmdstat_hset")
                || l.contains("cmdstat_time")
        }) {
            println!("  {line}");
        }
        println!(
            "redis on loopback: PING {:.0}/s, decisions {:.0}/s, ratio {:.2} (target >= 0.8)",
            rate(pings),
            rate(decisions),
            rate(decisions) / rate(pings)
        );
    });
}

criterion_group!(benches, memory);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    contended();
    redis_side_by_side();
}
