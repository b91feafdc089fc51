//! Building the JSON of a job with a three-level fallback chain (target: under 5 µs).
//!
//! `cargo bench -p ezthrottle-core --bench job_json`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ezthrottle_core::{Method, RetryPolicy, Step, StepType, Trigger, Webhook};

fn workflow() -> Step {
    Step::new("https://api.example.com/charge")
        .method(Method::POST)
        .header("Authorization", "Bearer sk_live_0123456789")
        .header("Content-Type", "application/json")
        .body(r#"{"amount":1000,"currency":"usd","customer":"cus_123"}"#)
        .metadata_entry("order", "o-42")
        .webhook(Webhook::new("https://app.example.com/webhook"))
        .webhook(Webhook::new("https://audit.example.com/webhook").has_quorum_vote(false))
        .regions(["iad", "lax", "ord"])
        .retry_policy(RetryPolicy::new().max_retries(3).retry_codes([429, 503]).reroute_codes([500, 502]))
        .idempotent_key("charge-o-42")
        .step_type(StepType::Frugal)
        .fallback(Step::new("https://backup-1.example.com/charge").method(Method::POST), Trigger::on_error([500, 502]))
        .fallback(
            Step::new("https://backup-2.example.com/charge").method(Method::POST),
            Trigger::on_timeout(Duration::from_millis(2000)),
        )
        .fallback(Step::new("https://backup-3.example.com/charge").method(Method::POST), Trigger::on_error([503]))
        .on_success(Step::new("https://api.example.com/receipt").idempotent_key("receipt-o-42"))
        .on_failure(
            Step::new("https://alerts.example.com/page").idempotent_key("page-o-42"),
            Some(Duration::from_secs(60)),
        )
}

fn bench(c: &mut Criterion) {
    let step = workflow();
    let job = step.to_job();
    assert_eq!(job.fallback_chain().count(), 3);
    let mut group = c.benchmark_group("job_json");
    group.bench_function("serialize job (3-level fallback chain)", |b| b.iter(|| black_box(&job).to_json()));
    group.bench_function("step to job + serialize", |b| b.iter(|| black_box(&step).to_job().to_json()));
    group.bench_function("step to job + validate + serialize", |b| {
        b.iter(|| {
            let job = black_box(&step).to_job();
            job.validate().map(|()| job.to_json())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
