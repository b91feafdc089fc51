//! The job JSON of every builder feature, compared with what the Python SDK 1.3.0 sends
//! for the same workflow (tests/golden/*.json, written by tests/golden/generate.py).

use std::time::Duration;

use ezthrottle_core::{ExecutionMode, IdempotentStrategy, Method, RegionPolicy, RetryPolicy, Step, Trigger, Webhook};
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).expect("golden json")
}

/// A step with the Python SDK's default idempotency (HASH: no key sent, EZThrottle derives
/// one), so its JSON compares with what that SDK sends. Our default computes a key.
fn py(url: &str) -> Step {
    Step::new(url).idempotent_strategy(IdempotentStrategy::Hash)
}

fn assert_golden(name: &str, step: &Step) {
    let ours: Value = serde_json::from_str(&step.to_job().to_json()).expect("our json");
    assert_eq!(ours, golden(name), "{name}: ours (left) differs from the Python SDK's (right)");
}

#[test]
fn minimal() {
    assert_golden("minimal", &py("https://api.example.com/items"));
}

#[test]
fn request_fields() {
    let step = py("https://api.example.com/charge")
        // Lower-case, as the Python example passes it: sent upper-case.
        .method(Method::from_bytes(b"post").expect("method"))
        .headers([("Authorization", "Bearer t0k"), ("Content-Type", "application/json")])
        .body(r#"{"amount":100}"#)
        .metadata_entry("order", "o-1")
        .metadata_entry("attempt", "2");
    assert_golden("request_fields", &step);
}

#[test]
fn webhooks_quorum() {
    let step = py("https://api.example.com/items")
        .webhooks([
            Webhook::new("https://a.example.com/hook"),
            Webhook::new("https://b.example.com/hook").regions(["iad", "lax"]),
            Webhook::new("https://audit.example.com/hook").has_quorum_vote(false),
        ])
        .webhook_quorum(2);
    assert_golden("webhooks_quorum", &step);
}

#[test]
fn regions_strict_fanout() {
    let step = py("https://api.example.com/items")
        .regions(["iad", "lax", "ord"])
        .region_policy(RegionPolicy::Strict)
        .execution_mode(ExecutionMode::Fanout);
    assert_golden("regions_strict_fanout", &step);
}

#[test]
fn defaults_are_omitted() {
    let step = py("https://api.example.com/items")
        .regions(["iad", "lax"])
        .region_policy(RegionPolicy::Fallback)
        .execution_mode(ExecutionMode::Race)
        .webhook_quorum(1);
    assert_golden("regions_defaults_omitted", &step);
}

#[test]
fn retry_policy_and_retry_at() {
    let step = py("https://api.example.com/items")
        .retry_policy(
            RetryPolicy::new().max_retries(5).max_reroutes(3).retry_codes([429, 503]).reroute_codes([500, 502, 504]),
        )
        .retry_at(ezthrottle_core::protocol::time::from_unix_ms(1_763_674_210_055).expect("instant"));
    assert_golden("retry_policy_and_retry_at", &step);
}

#[test]
fn explicit_key() {
    assert_golden("explicit_key", &py("https://api.example.com/items").idempotent_key("order-42"));
}

#[test]
fn two_level_fallback_chain_with_both_triggers_and_children() {
    let step = py("https://httpbin.org/status/500")
        .webhook(Webhook::new("https://app/webhook"))
        .idempotent_key("k1")
        .fallback(py("https://httpbin.org/delay/2"), Trigger::on_error([500, 502, 503]))
        .fallback(py("https://httpbin.org/status/200"), Trigger::on_timeout(Duration::from_millis(500)))
        .on_success(py("https://httpbin.org/delay/1").idempotent_key("k2"))
        .on_failure(
            py("https://alerts.example.com/page").method(Method::POST).body("failed").idempotent_key("k3"),
            Some(Duration::from_secs(60)),
        );
    assert_golden("fallback_chain_with_children", &step);
}

#[test]
fn a_fallback_without_condition_sends_an_empty_trigger() {
    let step = py("https://api.example.com/items").fallback(py("https://backup.example.com/items"), Trigger::any());
    assert_golden("fallback_without_condition", &step);
}

#[test]
fn nested_workflow_children_keep_their_own_keys() {
    let step = py("https://api.example.com/orders")
        .method(Method::POST)
        .body(r#"{"sku":"A"}"#)
        .idempotent_key("order")
        .on_success(
            py("https://api.example.com/invoice")
                .method(Method::POST)
                .idempotent_key("invoice")
                .webhook(Webhook::new("https://app.example.com/invoice-hook"))
                .on_success(py("https://api.example.com/email").idempotent_key("email"))
                .on_failure(py("https://api.example.com/refund").idempotent_key("refund"), None),
        )
        .fallback(
            py("https://backup.example.com/orders")
                .method(Method::POST)
                .body(r#"{"sku":"A"}"#)
                .idempotent_key("backup"),
            Trigger::on_error([502]),
        );
    assert_golden("nested_workflow", &step);
}

#[test]
fn unique_strategy_draws_a_fresh_uuid_per_job_and_per_step() {
    let step = py("https://api.example.com/poll")
        .idempotent_strategy(IdempotentStrategy::Unique)
        .on_success(py("https://api.example.com/next").idempotent_strategy(IdempotentStrategy::Unique));
    let (first, second) = (step.to_job(), step.to_job());
    let key = |job: &ezthrottle_core::Job| job.idempotent_key.clone().expect("unique key");
    assert_ne!(key(&first), key(&second));
    let child_key = first.on_success.as_deref().map(key).expect("child key");
    assert_ne!(child_key, key(&first));
    for k in [key(&first), child_key] {
        assert_eq!(k.len(), 36, "{k}");
        assert_eq!(k.chars().nth(14), Some('4'), "UUID v4: {k}");
    }
}

#[test]
fn the_wire_form_round_trips() {
    let step = py("https://api.example.com/orders")
        .webhook(Webhook::new("https://a.example/h").has_quorum_vote(false))
        .webhook(Webhook::new("https://b.example/h"))
        .fallback(py("https://b.example/x"), Trigger::on_timeout(Duration::from_millis(250)))
        .on_failure(py("https://c.example/y"), Some(Duration::from_millis(1500)));
    let job = step.to_job();
    let back: ezthrottle_core::Job = serde_json::from_str(&job.to_json()).expect("parse");
    assert_eq!(back, job);
}
