//! Webhook verification cost versus the raw HMAC it is built on.
//!
//! For 1 KiB and 64 KiB bodies, compares
//! (a) `raw_hmac`: HMAC-SHA256 of `"<t>." + body`, keyed on every call, and
//! (b) `verify_at`: a full `Verifier::verify_at` of a valid header (parse, timestamp
//!     check, hex decode, pre-keyed HMAC, constant-time compare).
//!
//! After the criterion groups, when run by `cargo bench`, it times both with an
//! interleaved loop and prints `ratio verify/raw at <size>: <ratio>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ezthrottle_core::webhook::{Verifier, sign};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_bench_secret_value_0123456789";
const T: i64 = 1_700_000_000;
const SIZES: [(usize, &str); 2] = [(1024, "1 KiB"), (64 * 1024, "64 KiB")];

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// (a) The baseline: key, hash `"<t>."` and the body, finalize.
fn raw_hmac(t_text: &str, body: &[u8]) -> [u8; 32] {
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else {
        return [0; 32];
    };
    mac.chain_update(t_text.as_bytes()).chain_update(b".").chain_update(body).finalize().into_bytes().into()
}

fn bench(c: &mut Criterion) {
    let verifier = Verifier::new(SECRET).unwrap();
    let t_text = T.to_string();
    for (len, label) in SIZES {
        let body = body(len);
        let header = sign(SECRET, T, &body);
        assert!(verifier.verify_at(&body, &header, T).is_ok());

        let mut group = c.benchmark_group(format!("webhook_verify/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::from_parameter("raw_hmac"), |b| {
            b.iter(|| raw_hmac(black_box(&t_text), black_box(&body)));
        });
        group.bench_function(BenchmarkId::from_parameter("verify_at"), |b| {
            b.iter(|| verifier.verify_at(black_box(&body), black_box(&header), black_box(T)));
        });
        group.finish();
    }
}

/// Times `f` for `iters` calls and returns the mean per call.
fn time(iters: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters
}

fn print_ratios() {
    let verifier = Verifier::new(SECRET).unwrap();
    let t_text = T.to_string();
    for (len, label) in SIZES {
        let body = body(len);
        let header = sign(SECRET, T, &body);
        // About 20 ms per batch; 21 interleaved rounds, median of each.
        let iters = u32::try_from((20 << 20) / len.max(1024)).unwrap_or(1000);
        let (mut raw, mut verify) = (Vec::new(), Vec::new());
        for _ in 0..21 {
            raw.push(time(iters, || {
                black_box(raw_hmac(black_box(&t_text), black_box(&body)));
            }));
            verify.push(time(iters, || {
                let _ = black_box(verifier.verify_at(black_box(&body), black_box(&header), T));
            }));
        }
        raw.sort();
        verify.sort();
        let (raw, verify) = (raw[raw.len() / 2], verify[verify.len() / 2]);
        println!(
            "ratio verify/raw at {label}: {:.3} (raw {raw:?}, verify {verify:?}, median of 21 x {iters})",
            verify.as_secs_f64() / raw.as_secs_f64()
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (smoke run only).
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios();
    }
}
