//! `sign` and `verify`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_prints_the_header_of_core_sign() {
    let run = ezthrottle(&["sign", "--secret", SECRET, "--timestamp", "1700000000"], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), sign(SECRET, 1_700_000_000, BODY));

    let run = ezthrottle(&["--json", "sign", "--secret", SECRET, "--timestamp", "-5"], BODY).await;
    run.expect_code(0);
    assert_eq!(run.json(), json!({ "signature": sign(SECRET, -5, BODY), "timestamp": -5 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_then_verify_round_trips() {
    let before = now();
    let signed = ezthrottle(&["sign", "--secret", SECRET], BODY).await;
    signed.expect_code(0);
    let header = signed.stdout.trim_end();
    let t: i64 = header.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
    assert!((before..=now()).contains(&t), "{header}");

    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", header], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), "valid_primary");

    // As pasted from a request dump, and through the environment.
    let pasted = format!("X-EZThrottle-Signature: {header}");
    let mut with_env = command();
    with_env.env("EZTHROTTLE_WEBHOOK_SECRET", SECRET);
    let run = ezthrottle_with(with_env, &["--json", "verify", "--header", &pasted], BODY).await;
    run.expect_code(0);
    assert_eq!(run.json(), json!({ "valid": true, "reason": "valid_primary", "timestamp": t }));

    // A changed body does not verify.
    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", header], b"{}").await;
    run.expect_code(1);
    assert_eq!(run.stdout.trim_end(), "signature_mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_the_wrong_secret_fails_with_the_reason() {
    let header = sign(OTHER_SECRET, now(), BODY);
    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", &header], BODY).await;
    run.expect_code(1);
    assert_eq!(run.stdout.trim_end(), "signature_mismatch");

    let run = ezthrottle(&["verify", "--json", "--secret", SECRET, "--header", &header], BODY).await;
    run.expect_code(1);
    assert_eq!(run.json(), json!({ "valid": false, "reason": "signature_mismatch" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_accepts_the_secondary_secret() {
    let header = sign(OTHER_SECRET, now(), BODY);
    let run = ezthrottle(&["verify", "--secret", SECRET, "--secondary", OTHER_SECRET, "--header", &header], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), "valid_secondary");

    // Both from the environment, spelled as the conformance app spells them.
    let mut with_env = command();
    with_env.env("EZTHROTTLE_WEBHOOK_SECRET", SECRET).env("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", OTHER_SECRET);
    let run = ezthrottle_with(with_env, &["verify", "--header", &header], BODY).await;
    run.expect_code(0);
    assert_eq!(run.stdout.trim_end(), "valid_secondary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_what_is_wrong_with_a_header() {
    let cases = [
        ("", "no_signature_header"),
        ("t=1700000000", "missing_v1_signature"),
        ("t=soon,v1=00", "invalid_timestamp"),
        ("v1=00,t=1,t=2", "invalid_timestamp"),
    ];
    for (header, reason) in cases {
        let run = ezthrottle(&["verify", "--secret", SECRET, "--header", header], BODY).await;
        run.expect_code(1);
        assert_eq!(run.stdout.trim_end(), reason, "{header:?}");
    }
    // Stale: refused at the default tolerance, accepted with --now or a wider --tolerance.
    let header = sign(SECRET, 1_700_000_000, BODY);
    let run = ezthrottle(&["verify", "--secret", SECRET, "--header", &header, "--now", "1700000400"], BODY).await;
    run.expect_code(1);
    assert_eq!(run.stdout.trim_end(), "timestamp_expired (diff=400s, tolerance=300s)");
    let args = ["verify", "--secret", SECRET, "--header", &header, "--now", "1700000400", "--tolerance", "500"];
    ezthrottle(&args, BODY).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_a_short_secret_as_a_usage_error() {
    let header = sign("short", now(), BODY);
    for args in [
        vec!["verify", "--secret", "short", "--header", &header],
        vec!["verify", "--secret", SECRET, "--secondary", "short", "--header", &header],
    ] {
        let run = ezthrottle(&args, BODY).await;
        run.expect_code(2);
        assert!(run.stderr.contains("at least 16 characters; this one has 5"), "{run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_16_mib_is_refused_in_plain_words() {
    let body = vec![b'x'; 16 * 1024 * 1024 + 1];
    let run = ezthrottle(&["sign", "--secret", SECRET], &body).await;
    run.expect_code(2);
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(run.stderr.trim_end(), "ezthrottle: the body on stdin is larger than 16 MiB");
}
