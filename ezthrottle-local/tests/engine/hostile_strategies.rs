//! The generators of `hostile.rs`: arbitrary JSON, job-shaped objects with plausible and
//! arbitrary fields, byte mutations of valid bodies, and proxy envelopes around them.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The field names of a job (ours and the peers' spellings), of its parts, of an envelope
/// and of the secrets API, and some that are none of them.
const KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "webhooks",
    "has_quorum_vote",
    "hasQuorumVote",
    "webhook_quorum",
    "retry_policy",
    "RetryPolicy",
    "max_retries",
    "retry_codes",
    "max_reroutes",
    "reroute_codes",
    "fallback_job",
    "fallbackJob",
    "trigger",
    "on_error",
    "on_timeout",
    "timeout_ms",
    "on_success",
    "onSuccess",
    "on_failure",
    "on_failure_timeout_ms",
    "regions",
    "region_policy",
    "execution_mode",
    "retry_at",
    "idempotent_key",
    "idempotentKey",
    "metadata",
    "scope",
    "metric_name",
    "target_url",
    "primary_secret",
    "secondary_secret",
    "x",
    "",
];

pub(super) fn text(target: &str) -> impl Strategy<Value = String> + use<> {
    prop_oneof![
        Just(format!("{target}/ok")),
        Just(format!("{target}/status/500")),
        Just(format!("{target}/hook")),
        Just("https://ezthrottle.fly.dev/api/v1/jobs".to_owned()),
        Just("/api/v1/webhook-secrets".to_owned()),
        Just("/api/v1/jobs/job_1_1".to_owned()),
        prop::sample::select(vec![
            "GET",
            "POST",
            "DELETE",
            "PUT",
            "get",
            "G E T",
            "race",
            "fanout",
            "fallback",
            "strict",
            "Host",
            "Content-Length",
            "X-EZThrottle-Region",
            "\u{0}",
            "",
            "18446744073709551615",
            "-1",
            "1e400",
            "http://",
            "http://[::1",
            "ftp://127.0.0.1/",
            "customer",
            "a-long-enough-secret-0123456789"
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,24}",
        any::<String>(),
    ]
}

pub(super) fn json_value(target: &str) -> impl Strategy<Value = Value> + use<> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|float| serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number)),
        text(target).prop_map(Value::String),
    ];
    let key = prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "[a-z_]{0,12}"];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Values a job field could plausibly hold, valid or just off.
fn plausible(target: &str) -> impl Strategy<Value = Value> + use<> {
    let ok = format!("{target}/ok");
    let hook = format!("{target}/hook");
    prop_oneof![
        (0u64..20).prop_map(Value::from),
        prop::collection::vec(prop::sample::select(vec![200u16, 404, 429, 500, 502, 503, 999, 0]), 0..4)
            .prop_map(|codes| json!(codes)),
        Just(json!({})),
        Just(json!({"on_error": [500]})),
        Just(json!({"on_timeout": 50, "timeout_ms": 50})),
        Just(json!({"max_retries": 1, "retry_codes": [500]})),
        Just(json!({"url": ok.clone(), "trigger": {}})),
        Just(json!({"url": ok.clone(), "trigger": {}, "fallback_job": {"url": ok, "trigger": {"on_error": [500]}}})),
        Just(json!([{"url": hook.clone(), "has_quorum_vote": true}, {"url": hook}])),
        Just(json!(["local", "iad"])),
        Just(json!({"accept": "text/plain", "x-custom": "1"})),
        text(target).prop_map(Value::String),
    ]
}

/// A job-shaped object: a valid job with known fields set to plausible or arbitrary values.
fn job_like(target: &str) -> impl Strategy<Value = Value> + use<> {
    let target = target.to_owned();
    let value = prop_oneof![3 => plausible(&target), 1 => json_value(&target)];
    let fields = prop::collection::vec((prop::sample::select(KEYS), value), 0..4);
    (any::<u32>(), fields).prop_map(move |(nonce, fields)| {
        // A new URL each time: a new job rather than a duplicate of the last one.
        let mut job = json!({"url": format!("{target}/ok?n={nonce}"), "method": "GET"});
        if nonce % 2 == 0 {
            job["webhooks"] = json!([{"url": format!("{target}/hook"), "has_quorum_vote": true}, {"url": format!("{target}/hook/1")}]);
        }
        if let Value::Object(object) = &mut job {
            object.extend(fields.into_iter().map(|(key, value)| (key.to_owned(), value)));
        }
        job
    })
}

/// Valid bodies to mutate.
fn seeds(target: &str) -> Vec<String> {
    let hook = format!("{target}/hook");
    vec![
        json!({"url": format!("{target}/ok"), "method": "POST", "body": "a=1", "headers": {"accept": "text/plain"}}),
        json!({"url": format!("{target}/status/500"), "retry_policy": {"max_retries": 1, "retry_codes": [500]},
            "webhooks": [{"url": hook, "has_quorum_vote": true}], "webhook_quorum": 1,
            "fallback_job": {"url": format!("{target}/ok"), "trigger": {"on_error": [500]},
                "fallback_job": {"url": format!("{target}/ok"), "trigger": {}}},
            "on_success": {"url": format!("{target}/ok"), "idempotent_key": "child"}}),
        json!({"scope": "customer", "metric_name": "", "target_url": "https://ezthrottle.fly.dev/api/v1/jobs",
            "method": "POST", "headers": {}, "body": json!({"url": format!("{target}/ok")}).to_string()}),
        json!({"primary_secret": "a-long-enough-secret-0123456789", "secondary_secret": "another-long-secret-98765"}),
    ]
    .into_iter()
    .map(|value| value.to_string())
    .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
        (any::<usize>(), prop::sample::select(b"{}[]\":,\\0-9eE.nt \x00\xff".to_vec()))
            .prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    (prop::sample::select(seeds(target)), prop::collection::vec(edit, 1..6)).prop_map(|(seed, edits)| {
        let mut bytes = seed.into_bytes();
        for edit in edits {
            let len = bytes.len().max(1);
            match edit {
                Edit::Flip(at, byte) => {
                    if let Some(slot) = bytes.get_mut(at % len) {
                        *slot ^= byte | 1;
                    }
                }
                Edit::Insert(at, byte) => bytes.insert((at % len).min(bytes.len()), byte),
                Edit::Remove(at) => {
                    if at % len < bytes.len() {
                        bytes.remove(at % len);
                    }
                }
                Edit::Truncate(at) => bytes.truncate(at % len),
            }
        }
        bytes
    })
}

/// A body: arbitrary JSON, a job-shaped object, or mutated bytes.
pub(super) fn body(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    prop_oneof![
        1 => json_value(target).prop_map(|value| value.to_string().into_bytes()),
        4 => job_like(target).prop_map(|value| value.to_string().into_bytes()),
        2 => mutated(target),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A proxy envelope: arbitrary fields around an inner body of any of the kinds above.
pub(super) fn envelope(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let target_url = prop_oneof![
        Just("https://ezthrottle.fly.dev/api/v1/jobs".to_owned()),
        Just("https://ezthrottle.fly.dev/api/v1/jobs".to_owned()),
        Just("https://ezthrottle.fly.dev/api/v1/webhook-secrets".to_owned()),
        Just("/api/v1/jobs/job_1_1".to_owned()),
        Just("/api/v1/proxy".to_owned()),
        Just("/health".to_owned()),
        text(target),
    ];
    let method = prop_oneof![
        3 => prop::sample::select(vec!["POST", "GET", "DELETE", "post", ""]).prop_map(str::to_owned),
        1 => text(target),
    ];
    let inner = body(target).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let headers = prop_oneof![3 => Just(json!({})), 1 => json_value(target)];
    let extra = prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec((prop::sample::select(KEYS), json_value(target)), 0..3)];
    let fields = (target_url, method, inner, headers, extra);
    prop_oneof![
        4 => fields.prop_map(|(target_url, method, inner, headers, extra)| {
            let mut envelope = Map::new();
            envelope.insert("scope".into(), json!("customer"));
            envelope.insert("metric_name".into(), json!(""));
            envelope.insert("target_url".into(), json!(target_url));
            envelope.insert("method".into(), json!(method));
            envelope.insert("headers".into(), headers);
            envelope.insert("body".into(), json!(inner));
            envelope.extend(extra.into_iter().map(|(key, value)| (key.to_owned(), value)));
            Value::Object(envelope).to_string().into_bytes()
        }),
        1 => body(target),
    ]
}
