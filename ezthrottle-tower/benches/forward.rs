//! The cost of the forwarding layer.
//!
//! ```sh
//! cargo bench -p ezthrottle-tower --all-features --bench forward
//! ```
//!
//! Against a loopback hyper server answering 1 KiB bodies (to 1 KiB POSTs):
//!
//! 1. criterion, side by side: hyper-util's client bare and wrapped in `ForwardLayer`;
//!    reqwest plain and with `ForwardMiddleware` (feature `reqwest-middleware`);
//! 2. an interleaved A/B throughput run (8 concurrent callers, alternating batches)
//!    printing the wrapped / bare throughput ratios (target ≥ 0.97);
//! 3. the time from the target's 429 to the caller holding the 202 (engine on loopback),
//!    measured per call from the instant the target produced the 429: p50 / p99;
//! 4. a retry storm against a failing target: how many calls reach it with and without
//!    the circuit breaker;
//! 5. EZThrottle down (its port refuses connections): the time for the caller to get the
//!    target's original 429 back through the layer, next to the bare call's time.
//!
//! 6. telemetry: the A/B ratio again once a `tracing` subscriber (fmt at info, into a
//!    sink) and a `metrics` recorder are installed for the whole process (run last: they
//!    cannot be uninstalled), next to the same ratio measured before.
//!
//! 7. in process (no network): what `ForwardLayer` adds to a call of a service that
//!    answers at once, and `ForwardMiddleware` to a no-op middleware's, in nanoseconds.
//!
//! `EZT_BENCH_ONLY=ab|latency|storm|down|telemetry|in-process` runs one of reports 2-7
//! (with a criterion filter that matches nothing, e.g. `-- none`, to skip 1). Report 6 runs
//! last: its subscriber cannot be uninstalled. `EZT_BENCH_CALLS=N` sets the calls per
//! batch of reports 2 and 7 (500 and 20,000; a few hundred are enough under
//! `valgrind --tool=callgrind`, which counts instructions, the same whatever else the
//! machine is doing). `EZT_BENCH_ROUNDS=N` sets the rounds of each A/B comparison (1,024):
//! each ratio is printed with the median of its per-round ratios and a 95 % confidence
//! interval for that median.
//! Report 2 ends with A/A comparisons (one client on both sides): how far a ratio moves
//! with nothing to measure, the noise floor of the ratios above them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use ezthrottle_core::EZThrottle;
use ezthrottle_core::IdempotentStrategy;
use ezthrottle_tower::{CircuitBreaker, Forward, ForwardLayer};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Layer, ServiceExt};

const KIB: usize = 1024;
const CALLERS: usize = 8;
/// Calls per batch of an A/B comparison, unless `EZT_BENCH_CALLS` is set. Short on
/// purpose: the two batches of a round (about 10 ms each) run so close together that a
/// drift of the machine's speed, which on a shared VM moves over tens of milliseconds,
/// hardly differs between them. Many short rounds then pin the median ratio down: with
/// 128 rounds of 4,000 calls the 95 % intervals were 2-4 % wide, with 1,024 rounds of
/// 500 calls (the same calls in all) under 1 %.
const AB_CALLS: u32 = 500;
/// Rounds of an A/B comparison, unless `EZT_BENCH_ROUNDS` is set.
const AB_ROUNDS: usize = 1024;

type Bare = Client<HttpConnector, Full<Bytes>>;
type Wrapped = Forward<Bare>;

/// When the target produced each 429, by `x-bench-id`.
type Stamps = Arc<Mutex<HashMap<u64, Instant>>>;

/// Requests the client under test (not the engine) made to `/down`.
static DOWN_HITS: AtomicUsize = AtomicUsize::new(0);

async fn serve(stamps: Stamps) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let payload = Bytes::from(vec![b'a'; KIB]);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let payload = payload.clone();
            let stamps = Arc::clone(&stamps);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let payload = payload.clone();
                    let stamps = Arc::clone(&stamps);
                    async move {
                        let limited = request.uri().path() == "/limited";
                        let down = request.uri().path() == "/down";
                        if down && !request.headers().contains_key("x-ezthrottle-job-id") {
                            DOWN_HITS.fetch_add(1, Ordering::SeqCst);
                        }
                        let id = request.headers().get("x-bench-id").and_then(|v| v.to_str().ok()?.parse().ok());
                        let _ = request.into_body().collect().await;
                        let response = if limited {
                            let mut response = Response::new(Full::new(Bytes::from_static(b"slow down")));
                            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                            response.headers_mut().insert("retry-after", "3600".parse().unwrap());
                            if let Some(id) = id {
                                stamps.lock().unwrap().insert(id, Instant::now());
                            }
                            response
                        } else if down {
                            let mut response = Response::new(Full::new(Bytes::from_static(b"down")));
                            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            response
                        } else {
                            Response::new(Full::new(payload))
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn post(url: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(vec![b'q'; KIB])))
        .unwrap()
}

async fn call_tower<S, B>(service: &S, url: &str)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = service.clone().oneshot(post(url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), KIB);
}

/// `calls` calls spread over [`CALLERS`] concurrent callers, each making its calls one
/// after the other; the time they took.
async fn batch<F, Fut>(calls: u64, make: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let make = Arc::new(make);
    let per_caller = calls.div_ceil(CALLERS as u64).max(1);
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let make = Arc::clone(&make);
        callers.spawn(async move {
            for _ in 0..per_caller {
                make().await;
            }
        });
    }
    callers.join_all().await;
    started.elapsed().mul_f64(calls as f64 / (per_caller * CALLERS as u64) as f64)
}

struct Setup {
    rt: tokio::runtime::Runtime,
    url: String,
    limited_url: String,
    bare: Bare,
    wrapped: Wrapped,
    stamps: Stamps,
    ezthrottle: EZThrottle,
    _engine: ezthrottle_local::RunningEngine,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stamps: Stamps = Arc::default();
    let (addr, engine) = rt.block_on(async {
        let addr = serve(Arc::clone(&stamps)).await;
        let engine = ezthrottle_local::Engine::builder().open().max_queued_jobs(1_000_000).start().await.unwrap();
        (addr, engine)
    });
    let ezthrottle = EZThrottle::builder().direct(engine.base_url()).build().unwrap();
    let _guard = rt.enter();
    let bare: Bare = Client::builder(TokioExecutor::new()).build_http();
    let wrapped = ForwardLayer::new(ezthrottle.clone())
        .with_template(|job| job.idempotent_strategy(IdempotentStrategy::Unique))
        .layer(bare.clone());
    Setup {
        url: format!("http://{addr}/ok"),
        limited_url: format!("http://{addr}/limited"),
        rt,
        bare,
        wrapped,
        stamps,
        ezthrottle,
        _engine: engine,
    }
}

/// Report 7: what the layer and the middleware add to one call, without a network (an
/// in-process service, and a last middleware, that answer at once), on a current-thread
/// runtime. Each round times a batch of each variant back to back, in alternating order;
/// the figures are medians over the rounds, the added cost the median of the per-round
/// differences (a drift between rounds cancels).
///
/// With `EZT_BENCH_SIDE=bare|layer|noop|forward` it only makes `EZT_BENCH_CALLS` calls of
/// that one variant, untimed: `scripts/count-pass-through` counts their instructions.
fn in_process_report(s: &Setup) {
    const ROUNDS: usize = 21;
    let calls = calls_per_batch(20_000);
    let side = std::env::var("EZT_BENCH_SIDE").ok();
    if side.is_none() {
        println!("\n== in process: what each adds to one call, {ROUNDS} rounds of {calls} calls ==");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = Bytes::from(vec![b'a'; KIB]);
    let instant = tower::service_fn(move |_request: Request<Full<Bytes>>| {
        let answer = answer.clone();
        async move { Ok::<_, Infallible>(Response::new(Full::new(answer))) }
    });
    let wrapped = ForwardLayer::new(s.ezthrottle.clone()).layer(instant.clone());
    let per_call = |call: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..calls {
            call();
        }
        started.elapsed().as_nanos() as f64 / f64::from(calls)
    };
    let compare = |label: &str, (a_side, a): (&str, &dyn Fn()), (b_side, b): (&str, &dyn Fn())| {
        if let Some(side) = &side {
            for (name, call) in [(a_side, a), (b_side, b)] {
                if name == side {
                    (0..calls).for_each(|_| call());
                }
            }
            return;
        }
        per_call(a);
        per_call(b);
        let (mut base, mut with, mut added) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (x, y) = if round % 2 == 0 {
                let x = per_call(a);
                (x, per_call(b))
            } else {
                let y = per_call(b);
                (per_call(a), y)
            };
            base.push(x);
            with.push(y);
            added.push(y - x);
        }
        println!("{label}: {:.0} ns -> {:.0} ns per call, adds {:.0} ns", median(base), median(with), median(added));
    };
    compare(
        "ForwardLayer over an instant service           ",
        ("bare", &|| {
            rt.block_on(async { instant.clone().oneshot(post(&s.url)).await.unwrap() });
        }),
        ("layer", &|| {
            rt.block_on(async { wrapped.clone().oneshot(post(&s.url)).await.unwrap() });
        }),
    );
    #[cfg(feature = "reqwest-middleware")]
    {
        let client = |forward: bool| {
            let builder = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
            let builder = if forward {
                builder.with(ezthrottle_tower::ForwardMiddleware::new(s.ezthrottle.clone()))
            } else {
                builder.with(Noop)
            };
            builder.with(Answer).build()
        };
        let (noop, forward) = (client(false), client(true));
        let call = |client: &reqwest_middleware::ClientWithMiddleware| {
            rt.block_on(async { client.post(&s.url).body(vec![b'q'; KIB]).send().await.unwrap() });
        };
        compare(
            "ForwardMiddleware over a no-op middleware      ",
            ("noop", &|| call(&noop)),
            ("forward", &|| call(&forward)),
        );
    }
}

/// The last middleware: answers `200` with 1 KiB at once, sending nothing.
#[cfg(feature = "reqwest-middleware")]
struct Answer;

#[cfg(feature = "reqwest-middleware")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Answer {
    async fn handle(
        &self,
        _request: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        Ok(reqwest::Response::from(Response::new(vec![b'a'; KIB])))
    }
}

fn criterion_benches(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("pass-through 1 KiB");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(3));
    group.bench_function("hyper-util bare", |b| {
        b.iter_custom(|iters| s.rt.block_on(batch(iters, tower_call(s.bare.clone(), s.url.clone()))));
    });
    group.bench_function("hyper-util + ForwardLayer", |b| {
        b.iter_custom(|iters| s.rt.block_on(batch(iters, tower_call(s.wrapped.clone(), s.url.clone()))));
    });
    #[cfg(feature = "reqwest-middleware")]
    {
        let (plain, empty, with) = reqwest_clients(s);
        group.bench_function("reqwest plain", |b| {
            b.iter_custom(|iters| s.rt.block_on(batch(iters, reqwest_plain_call(plain.clone(), s.url.clone()))));
        });
        group.bench_function("reqwest-middleware, no middleware", |b| {
            b.iter_custom(|iters| s.rt.block_on(batch(iters, reqwest_mw_call(empty.clone(), s.url.clone()))));
        });
        group.bench_function("reqwest + ForwardMiddleware", |b| {
            b.iter_custom(|iters| s.rt.block_on(batch(iters, reqwest_mw_call(with.clone(), s.url.clone()))));
        });
    }
    group.finish();
}

#[cfg(feature = "reqwest-middleware")]
fn reqwest_clients(
    s: &Setup,
) -> (reqwest::Client, reqwest_middleware::ClientWithMiddleware, reqwest_middleware::ClientWithMiddleware) {
    let plain = reqwest::Client::new();
    let empty = reqwest_middleware::ClientBuilder::new(plain.clone()).build();
    let middleware = ezthrottle_tower::ForwardMiddleware::new(s.ezthrottle.clone())
        .with_template(|job| job.idempotent_strategy(IdempotentStrategy::Unique));
    let with = reqwest_middleware::ClientBuilder::new(plain.clone()).with(middleware).build();
    (plain, empty, with)
}

/// A middleware that only calls the next one.
#[cfg(feature = "reqwest-middleware")]
struct Noop;

#[cfg(feature = "reqwest-middleware")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Noop {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        next.run(request, extensions).await
    }
}

/// Defines `$name`: one call through a reqwest client of type `$client`, as a closure
/// making the futures. A macro, not a generic fn: the plain and the middleware client have
/// different `RequestBuilder`s with no shared trait, and both must measure the same code.
macro_rules! reqwest_call {
    ($name:ident, $client:ty) => {
        #[cfg(feature = "reqwest-middleware")]
        fn $name(
            client: $client,
            url: String,
        ) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + Sync + 'static
        {
            move || {
                let request = client.post(&url).body(vec![b'q'; KIB]);
                Box::pin(async move {
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    assert_eq!(response.bytes().await.unwrap().len(), KIB);
                })
            }
        }
    };
}

reqwest_call!(reqwest_plain_call, reqwest::Client);
reqwest_call!(reqwest_mw_call, reqwest_middleware::ClientWithMiddleware);

/// One call through a tower client, as a closure making the futures.
fn tower_call<S, B>(
    service: S,
    url: String,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + Sync + 'static
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    move || {
        let (service, url) = (service.clone(), url.clone());
        Box::pin(async move { call_tower(&service, &url).await })
    }
}

fn median(values: Vec<f64>) -> f64 {
    median_interval(values).0
}

/// Rounds of one batch of `a` and one of `b`, back to back in an order drawn at random
/// each round (so neither a drift of the machine's speed nor anything periodic favours a
/// side): the median throughput (calls/s) of each, and the per-round ratios b / a.
fn interleaved<A, B>(s: &Setup, rounds: usize, calls: u64, a: A, b: B) -> (f64, f64, Vec<f64>)
where
    A: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + Sync + 'static,
    B: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + Sync + 'static,
{
    let (mut rate_a, mut rate_b) = (Vec::new(), Vec::new());
    let rate = |took: Duration| calls as f64 / took.as_secs_f64();
    s.rt.block_on(batch(calls, a.clone()));
    s.rt.block_on(batch(calls, b.clone()));
    let mut coin = Coin::new();
    for _ in 0..rounds {
        if coin.flip() {
            rate_a.push(rate(s.rt.block_on(batch(calls, a.clone()))));
            rate_b.push(rate(s.rt.block_on(batch(calls, b.clone()))));
        } else {
            rate_b.push(rate(s.rt.block_on(batch(calls, b.clone()))));
            rate_a.push(rate(s.rt.block_on(batch(calls, a.clone()))));
        }
    }
    let ratios = rate_a.iter().zip(&rate_b).map(|(a, b)| b / a).collect();
    (median(rate_a), median(rate_b), ratios)
}

/// A xorshift coin seeded from the clock: which side of a round runs first.
struct Coin(u64);

impl Coin {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        Self(u64::from(nanos) | 1)
    }

    fn flip(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 & 1 == 1
    }
}

/// The median of `values` and a 95 % confidence interval for it that assumes nothing of
/// their distribution: the order statistics at ranks n/2 -/+ 1.96 sqrt(n)/2 (the sign
/// test's interval, by the binomial's normal approximation; with 16 values, the 5th and
/// 13th of them).
fn median_interval(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let half_width = 1.96 * n.sqrt() / 2.0;
    let low = ((n / 2.0 - half_width).floor().max(0.0)) as usize;
    let high = ((n / 2.0 + half_width).ceil() as usize).min(values.len() - 1);
    (values[values.len() / 2], values[low], values[high])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// `EZT_BENCH_CALLS`, or `default`.
fn calls_per_batch(default: u32) -> u32 {
    env_count("EZT_BENCH_CALLS").unwrap_or(default)
}

/// The number in the environment variable `name`, if it holds one.
fn env_count<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// One interleaved A/B comparison ([`AB_ROUNDS`] rounds of [`AB_CALLS`] calls each
/// side): prints each side's median rate under its label, then `ratio` with b / a (the
/// median of the per-round ratios with its 95 % confidence interval, then the ratio of the
/// median rates) and the `target` the first must reach, if any.
fn ab_compare<A, B>(s: &Setup, (a_label, a): (&str, A), (b_label, b): (&str, B), ratio: &str, target: Option<f64>)
where
    A: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + Sync + 'static,
    B: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Clone + Send + Sync + 'static,
{
    // At least one round: the median of none does not exist.
    let rounds = env_count("EZT_BENCH_ROUNDS").unwrap_or(AB_ROUNDS).max(1);
    let (a_rate, b_rate, ratios) = interleaved(s, rounds, calls_per_batch(AB_CALLS).into(), a, b);
    let (paired, low, high) = median_interval(ratios);
    println!("{a_label}{a_rate:>9.0} calls/s");
    println!("{b_label}{b_rate:>9.0} calls/s");
    // The paired figure leads: each round's two batches ran back to back, so their ratio
    // is free of the drift that moves the two medians of rates apart.
    let shown = format!(
        "{ratio}{paired:.3}  (median of the per-round ratios, 95 % CI {low:.3}-{high:.3}; of the median rates: {:.3})",
        b_rate / a_rate
    );
    match target {
        Some(target) => println!("{shown}  (target >= {target:.2})"),
        None => println!("{shown}"),
    }
}

/// One call through a client, as a closure making its future (what [`tower_call`] and
/// the `reqwest_*_call` functions return), behind one type.
type Call = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// Calls through each of `clients` for a while before report 2 measures them: in a
/// fresh process the first comparison read about 2 % lower than the same comparison run
/// third (the process still growing its heap and the clients their connection pools;
/// one warm-up batch per side, in [`interleaved`], is little).
fn warm_up(s: &Setup, clients: &[Call]) {
    let calls = 4_000;
    for _ in 0..4 {
        for client in clients {
            let client = Arc::clone(client);
            s.rt.block_on(batch(calls, move || client()));
        }
    }
}

fn ab_report(s: &Setup) {
    println!("\n== interleaved A/B throughput, {CALLERS} concurrent callers, 1 KiB bodies ==");
    let (bare, wrapped) = (tower_call(s.bare.clone(), s.url.clone()), tower_call(s.wrapped.clone(), s.url.clone()));
    #[cfg(feature = "reqwest-middleware")]
    let (plain, empty, noop, with) = {
        let (plain, empty, with) = reqwest_clients(s);
        // Any reqwest-middleware middleware costs a boxed future per call: a no-op one
        // separates that from the forwarding's own cost.
        let noop = reqwest_middleware::ClientBuilder::new(plain.clone()).with(Noop).build();
        let url = || s.url.clone();
        (
            reqwest_plain_call(plain, url()),
            reqwest_mw_call(empty, url()),
            reqwest_mw_call(noop, url()),
            reqwest_mw_call(with, url()),
        )
    };
    let clients: Vec<(&str, Call)> = vec![
        ("hyper-bare", Arc::new(bare.clone())),
        ("hyper-layer", Arc::new(wrapped.clone())),
        #[cfg(feature = "reqwest-middleware")]
        ("reqwest-plain", Arc::new(plain.clone())),
        #[cfg(feature = "reqwest-middleware")]
        ("reqwest-none", Arc::new(empty.clone())),
        #[cfg(feature = "reqwest-middleware")]
        ("reqwest-noop", Arc::new(noop.clone())),
        #[cfg(feature = "reqwest-middleware")]
        ("reqwest-forward", Arc::new(with.clone())),
    ];
    if let Ok(side) = std::env::var("EZT_BENCH_SIDE") {
        // One client alone, untimed, for `scripts/count-pass-through`.
        if let Some((_, client)) = clients.iter().find(|(name, _)| *name == side) {
            let client = Arc::clone(client);
            s.rt.block_on(batch(calls_per_batch(4_000).into(), move || client()));
        }
        return;
    }
    warm_up(s, &clients.into_iter().map(|(_, client)| client).collect::<Vec<_>>());
    ab_compare(
        s,
        ("hyper-util bare            ", bare.clone()),
        ("hyper-util + ForwardLayer  ", wrapped),
        "ratio wrapped / bare       ",
        Some(0.97),
    );
    #[cfg(feature = "reqwest-middleware")]
    {
        ab_compare(
            s,
            ("reqwest-middleware, no middleware  ", empty.clone()),
            ("reqwest-middleware + Forward       ", with.clone()),
            "ratio with / without the middleware ",
            Some(0.97),
        );
        ab_compare(
            s,
            ("reqwest-middleware + a no-op one   ", noop.clone()),
            ("reqwest-middleware + Forward       ", with.clone()),
            "ratio Forward / no-op middleware    ",
            None,
        );
        // What any one middleware costs reqwest-middleware (a boxed future, a dynamic
        // call): the floor under the ratio with / without the middleware.
        ab_compare(
            s,
            ("reqwest-middleware, no middleware  ", empty.clone()),
            ("reqwest-middleware + a no-op one   ", noop),
            "ratio no-op middleware / none       ",
            None,
        );
        ab_compare(
            s,
            ("reqwest plain                      ", plain),
            ("reqwest-middleware + Forward       ", with),
            "ratio vs plain reqwest              ",
            None,
        );
    }
    println!("-- A/A, one client on both sides: the noise floor of the ratios above --");
    ab_compare(
        s,
        ("hyper-util bare                    ", bare.clone()),
        ("hyper-util bare, again             ", bare),
        "ratio hyper-util A/A                ",
        None,
    );
    #[cfg(feature = "reqwest-middleware")]
    ab_compare(
        s,
        ("reqwest-middleware, no middleware  ", empty.clone()),
        ("the same, again                    ", empty),
        "ratio reqwest-middleware A/A        ",
        None,
    );
}

fn latency_report(s: &Setup) {
    const CALLS: u64 = 2000;
    const WARM_UP: u64 = 200;
    println!("\n== target's 429 -> caller holds the 202 (engine on loopback), {CALLS} sequential calls ==");
    let mut deltas = Vec::new();
    let mut totals = Vec::new();
    s.rt.block_on(async {
        for id in 0..CALLS + WARM_UP {
            let mut request = post(&s.limited_url);
            request.headers_mut().insert("x-bench-id", id.into());
            let started = Instant::now();
            let response = s.wrapped.clone().oneshot(request).await.unwrap();
            let held = Instant::now();
            assert_eq!(
                response.status(),
                StatusCode::ACCEPTED,
                "{:?}",
                response.extensions().get::<ezthrottle_tower::ForwardFailed>()
            );
            let answered = s.stamps.lock().unwrap().remove(&id).expect("the target stamped its 429");
            if id >= WARM_UP {
                deltas.push(held - answered);
                totals.push(held - started);
            }
        }
    });
    deltas.sort();
    totals.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "429 -> 202      p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms  (target p99 < 2 ms)",
        ms(percentile(&deltas, 0.5)),
        ms(percentile(&deltas, 0.99)),
        ms(*deltas.last().unwrap())
    );
    println!(
        "whole call      p50 {:.3} ms   p99 {:.3} ms",
        ms(percentile(&totals, 0.5)),
        ms(percentile(&totals, 0.99))
    );
}

/// A retry storm against a target that answers 503 to PUTs: how many calls reach it, with
/// and without the circuit breaker.
fn storm_report(s: &Setup) {
    const CALLS: usize = 3000;
    println!("\n== {CALLS} sequential calls to a target answering 503 (all forwarded) ==");
    let down_url = s.url.replace("/ok", "/down");
    let breaker = CircuitBreaker::new(5, Duration::from_millis(20));
    let with_breaker = ForwardLayer::new(s.ezthrottle.clone())
        .with_template(|job| job.idempotent_strategy(IdempotentStrategy::Unique))
        .circuit_breaker(breaker)
        .layer(s.bare.clone());
    for (name, client) in [("no breaker", s.wrapped.clone()), ("CircuitBreaker::new(5, 20 ms)", with_breaker)] {
        let before = DOWN_HITS.load(Ordering::SeqCst);
        let started = Instant::now();
        let accepted = s.rt.block_on(async {
            let mut accepted = 0;
            for _ in 0..CALLS {
                // A PUT: safe to repeat, so every 503 is forwarded (a POST without a key
                // would keep its 503, by the replay rule).
                let mut request = post(&down_url);
                *request.method_mut() = http::Method::PUT;
                let response = client.clone().oneshot(request).await.unwrap();
                accepted += usize::from(response.status() == StatusCode::ACCEPTED);
            }
            accepted
        });
        println!(
            "{name:<30} {:>6.0} ms   {accepted} answered 202   the target received {}",
            started.elapsed().as_secs_f64() * 1000.0,
            DOWN_HITS.load(Ordering::SeqCst) - before
        );
    }
}

/// EZThrottle refusing connections: how long the caller waits for the target's original
/// answer through the layer, against the same call made bare. The client's own breaker
/// for EZThrottle opens during the warm-up, so the measured calls make no connect attempt.
fn down_report(s: &Setup) {
    const CALLS: usize = 2000;
    const WARM_UP: usize = 50;
    println!(
        "\n== EZThrottle refusing connections: target's 429 -> caller holds the original 429, {CALLS} sequential calls =="
    );
    let down = s.rt.block_on(ezthrottle_test_support::refused_url());
    let ezthrottle = EZThrottle::builder().direct(down).build().unwrap();
    let wrapped = ForwardLayer::new(ezthrottle).layer(s.bare.clone());
    let url = s.limited_url.as_str();
    let timings = |client: &dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = StatusCode> + Send>>| {
        let mut took = s.rt.block_on(async {
            let mut took = Vec::with_capacity(CALLS);
            for call in 0..CALLS + WARM_UP {
                let started = Instant::now();
                assert_eq!(client().await, StatusCode::TOO_MANY_REQUESTS);
                if call >= WARM_UP {
                    took.push(started.elapsed());
                }
            }
            took
        });
        took.sort();
        took
    };
    let bare_client = s.bare.clone();
    let bare = timings(&|| {
        let client = bare_client.clone();
        let request = post(url);
        Box::pin(async move { client.oneshot(request).await.unwrap().status() })
    });
    let through = timings(&|| {
        let client = wrapped.clone();
        let request = post(url);
        Box::pin(async move { client.oneshot(request).await.unwrap().status() })
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, took) in [("bare call          ", &bare), ("through the layer  ", &through)] {
        println!(
            "{name} p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
            ms(percentile(took, 0.5)),
            ms(percentile(took, 0.99)),
            ms(*took.last().unwrap())
        );
    }
    println!(
        "added by the layer p50 {:.3} ms   p99 {:.3} ms  (target: well under 5 ms)",
        ms(percentile(&through, 0.5).saturating_sub(percentile(&bare, 0.5))),
        ms(percentile(&through, 0.99).saturating_sub(percentile(&bare, 0.99)))
    );
}

fn main() {
    let setup = setup();
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &setup);
    criterion.final_summary();
    // `cargo test --benches` runs the bench once in test mode: keep that quick.
    if std::env::args().any(|arg| arg == "--bench") {
        // `EZT_BENCH_ONLY=ab`, `=latency`, `=storm` or `=down` runs one report.
        let only = std::env::var("EZT_BENCH_ONLY").unwrap_or_default();
        if only.is_empty() || only == "ab" {
            ab_report(&setup);
        }
        if only.is_empty() || only == "latency" {
            latency_report(&setup);
        }
        if only.is_empty() || only == "storm" {
            storm_report(&setup);
        }
        if only.is_empty() || only == "down" {
            down_report(&setup);
        }
        if only.is_empty() || only == "in-process" {
            in_process_report(&setup);
        }
        if only.is_empty() || only == "telemetry" {
            telemetry_report(&setup);
        }
    }
}

/// The pass-through ratio with telemetry off, then with a subscriber and a recorder.
fn telemetry_report(s: &Setup) {
    println!("\n== telemetry: pass-through with and without a subscriber and a recorder ==");
    let compare = |label: &str| {
        ab_compare(
            s,
            ("hyper-util bare            ", tower_call(s.bare.clone(), s.url.clone())),
            ("hyper-util + ForwardLayer  ", tower_call(s.wrapped.clone(), s.url.clone())),
            label,
            None,
        )
    };
    compare("ratio, telemetry off         ");
    tracing_subscriber::fmt().with_writer(std::io::sink).with_max_level(tracing::Level::INFO).init();
    metrics::set_global_recorder(metrics_util::debugging::DebuggingRecorder::new()).unwrap();
    compare("ratio, subscriber + recorder ");
}
