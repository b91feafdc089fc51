//! The `Ok` path of `#[auto_forward]` versus the same function without it.
//!
//! Pairs of functions with the same body (`Ok(x * 3 + 1)`), one plain and one annotated:
//! - `async fn` and sync `fn` with a typical error, an enum that boxes its forward request
//!   (16 bytes, what `clippy::result_large_err` asks for);
//! - `async fn` with `ForwardToEZThrottle` itself as the error (320 bytes), the worst case
//!   for the size of the result the annotated function returns.
//!
//! Each call is used as a caller would: the value is taken out of the result by value
//! (`.ok()`, `Outcome::completed`), the rest dropped. Futures are polled once with a no-op waker (they are
//! ready at once), so only the function is timed, not an executor.
//!
//! After the criterion groups, when run by `cargo bench`, it times each pair with an
//! interleaved loop and prints `ratio annotated/plain (<case>): <ratio>`.
#![allow(missing_docs)]

// The macro's default runtime path is `::ezthrottle::__private`.
extern crate ezthrottle_core as ezthrottle;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use ezthrottle::{ForwardToEZThrottle, Forwardable, Outcome};
use ezthrottle_macros::auto_forward;

/// A typical legacy error.
#[derive(Debug)]
pub enum ApiError {
    RateLimited(Box<ForwardToEZThrottle>),
    Rejected(u16),
}

impl Forwardable for ApiError {
    fn forward_request(&self) -> Option<ForwardToEZThrottle> {
        match self {
            Self::RateLimited(request) => Some((**request).clone()),
            Self::Rejected(_) => None,
        }
    }
}

async fn plain_async(x: u64) -> Result<u64, ApiError> {
    Ok(x.wrapping_mul(3).wrapping_add(1))
}

#[auto_forward]
async fn annotated_async(x: u64) -> Result<u64, ApiError> {
    Ok(x.wrapping_mul(3).wrapping_add(1))
}

fn plain_sync(x: u64) -> Result<u64, ApiError> {
    Ok(x.wrapping_mul(3).wrapping_add(1))
}

#[auto_forward]
fn annotated_sync(x: u64) -> Result<u64, ApiError> {
    Ok(x.wrapping_mul(3).wrapping_add(1))
}

async fn plain_async_large(x: u64) -> Result<u64, ForwardToEZThrottle> {
    Ok(x.wrapping_mul(3).wrapping_add(1))
}

#[auto_forward]
async fn annotated_async_large(x: u64) -> Result<u64, ForwardToEZThrottle> {
    Ok(x.wrapping_mul(3).wrapping_add(1))
}

/// Polls a future that is ready at once.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn call_plain_async() -> u64 {
    ready(plain_async(black_box(7))).and_then(Result::ok).unwrap_or(0)
}

fn call_annotated_async() -> u64 {
    ready(annotated_async(black_box(7))).and_then(Result::ok).and_then(Outcome::completed).unwrap_or(0)
}

fn call_plain_sync() -> u64 {
    plain_sync(black_box(7)).ok().unwrap_or(0)
}

fn call_annotated_sync() -> u64 {
    annotated_sync(black_box(7)).ok().and_then(Outcome::completed).unwrap_or(0)
}

fn call_plain_async_large() -> u64 {
    ready(plain_async_large(black_box(7))).and_then(Result::ok).unwrap_or(0)
}

fn call_annotated_async_large() -> u64 {
    ready(annotated_async_large(black_box(7))).and_then(Result::ok).and_then(Outcome::completed).unwrap_or(0)
}

type Case = (&'static str, fn() -> u64, fn() -> u64);

const CASES: [Case; 3] = [
    ("async fn", call_plain_async, call_annotated_async),
    ("fn", call_plain_sync, call_annotated_sync),
    ("async fn, 320-byte error", call_plain_async_large, call_annotated_async_large),
];

fn bench(c: &mut Criterion) {
    for (name, plain, annotated) in CASES {
        let mut group = c.benchmark_group(format!("ok_path/{name}"));
        group.bench_function(BenchmarkId::from_parameter("plain"), |b| b.iter(plain));
        group.bench_function(BenchmarkId::from_parameter("annotated"), |b| b.iter(annotated));
        group.finish();
    }
}

/// Times `f` for `iters` calls and returns the mean per call, in nanoseconds.
fn time(iters: u32, f: fn() -> u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(iters)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn print_ratios() {
    const ITERS: u32 = 2_000_000;
    for (name, plain, annotated) in CASES {
        let (mut plain_times, mut annotated_times) = (Vec::new(), Vec::new());
        for _ in 0..21 {
            plain_times.push(time(ITERS, plain));
            annotated_times.push(time(ITERS, annotated));
        }
        let (plain, annotated) = (median(plain_times), median(annotated_times));
        println!(
            "ratio annotated/plain ({name}): {:.3} (plain {plain:.2} ns, annotated {annotated:.2} ns, median of 21 x {ITERS})",
            annotated / plain.max(f64::MIN_POSITIVE)
        );
    }
}

fn main() {
    for (_, plain, annotated) in CASES {
        assert_eq!(plain(), annotated());
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (smoke run only).
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios();
    }
}
