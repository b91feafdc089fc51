//! `secrets create | get | rotate | delete`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_create_get_rotate_delete() {
    const KEY: &str = "ck_cli_test_key";
    const FIRST: &str = "first_secret_abcdefghij";
    const SECOND: &str = "second_secret_klmnopqrs";
    const THIRD: &str = "third_secret_tuvwxyz012";
    let engine = engine().api_key(KEY).start().await.expect("engine starts");
    let base = engine.base_url();
    let secrets = |args: &[&str]| {
        let mut all = vec!["secrets", "--ezthrottle-url", &base, "--api-key", KEY];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    // Runs ezthrottle with `stdin` and the variables `env`; no secret is ever printed.
    let run_with = |args: Vec<String>, stdin: &'static str, env: &'static [(&'static str, &'static str)]| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut with_env = command();
        with_env.envs(env.iter().copied());
        let run = ezthrottle_with(with_env, &args, stdin.as_bytes()).await;
        for secret in [FIRST, SECOND, THIRD] {
            assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{run:?}");
        }
        run
    };
    let run_secrets = |args: Vec<String>| run_with(args, "", &[]);

    let run = run_secrets(secrets(&["get"])).await;
    run.expect_code(5);
    assert!(run.stderr.contains("no webhook secrets configured"), "{run:?}");

    // A secret on the command line is refused, naming the other ways, and nothing is sent.
    for args in [&["create", "--primary", FIRST][..], &["rotate", "--new", THIRD, "--previous", "-"]] {
        let run = run_with(secrets(args), "", &[]).await;
        run.expect_code(2);
        assert!(run.stderr.contains("takes no secret on the command line"), "{run:?}");
        for way in [" -`", "--secret-stdin", "EZTHROTTLE_WEBHOOK_SECRET"] {
            assert!(run.stderr.contains(way), "{way}: {run:?}");
        }
    }
    run_secrets(secrets(&["get"])).await.expect_code(5);
    // None given at all: the message names where one comes from.
    let run = run_secrets(secrets(&["create"])).await;
    assert!(run.expect_code(2).stderr.contains("no primary secret: write it on stdin"), "{run:?}");

    // Both from stdin, one a line.
    const BOTH: &str = concat!("first_secret_abcdefghij", "\n", "second_secret_klmnopqrs", "\n");
    let run = run_with(secrets(&["create", "--secret-stdin"]), BOTH, &[]).await;
    run.expect_code(0);
    let (first, second, third) = (mask_secret(FIRST), mask_secret(SECOND), mask_secret(THIRD));
    assert_eq!(run.stdout.trim_end(), format!("webhook secrets set: primary {first}, secondary {second}"));

    let run = run_secrets(secrets(&["get"])).await;
    run.expect_code(0);
    assert!(run.stdout.contains(&format!("primary_secret: {first}\nsecondary_secret: {second}")), "{run:?}");

    // The new one from the environment, the previous from stdin with `-`.
    let env = &[("EZTHROTTLE_WEBHOOK_SECRET", THIRD), ("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", SECOND)];
    let run = run_with(secrets(&["rotate", "--previous", "-"]), "first_secret_abcdefghij\n", env).await;
    run.expect_code(0);
    let run = run_secrets(secrets(&["get", "--json"])).await;
    run.expect_code(0);
    let view = run.json();
    assert_eq!((&view["primary_secret"], &view["secondary_secret"]), (&json!(third), &json!(first)), "{view}");
    assert_eq!(view["has_secondary"], true);

    // The engine now signs with the rotated secret.
    let target = target().await;
    let url = format!("http://{target}/echo");
    let mut args = secrets(&[]);
    args[0] = "submit".into();
    args.extend(["--url", &url, "--wait", "--webhook-secret", THIRD].map(str::to_owned));
    run_secrets(args).await.expect_code(0);

    run_secrets(secrets(&["delete"])).await.expect_code(0);
    run_secrets(secrets(&["get"])).await.expect_code(5);
    // Both from the environment.
    let env = &[("EZTHROTTLE_WEBHOOK_SECRET", FIRST), ("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", SECOND)];
    run_with(secrets(&["create"]), "", env).await.expect_code(0);
    let run = run_secrets(secrets(&["--json", "get"])).await;
    assert_eq!(run.expect_code(0).json()["secondary_secret"], json!(second), "{run:?}");

    // Refused before sending: too short.
    let run = run_with(secrets(&["create", "--primary", "-"]), "short\n", &[]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("primary_secret") && run.stderr.contains("at least 16"), "{run:?}");

    // A wrong key is the server's refusal, exit 7; the key comes from the environment too.
    let mut with_env = command();
    with_env.env("EZTHROTTLE_URL", &base).env("EZTHROTTLE_API_KEY", "ck_wrong");
    let run = ezthrottle_with(with_env, &["secrets", "get"], b"").await;
    run.expect_code(7);
    assert!(run.stderr.starts_with("ezthrottle: invalid API key"), "{run:?}");
    engine.shutdown().await;
}
