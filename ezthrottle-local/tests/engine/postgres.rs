//! The PostgreSQL store against a real server on loopback: the store contract, a restart,
//! and one idempotency key shared by two engines.

use std::collections::HashSet;
use std::sync::Arc;

use ezthrottle_local::store::{JobStore, PostgresStore, StoreLocation, conformance};
use ezthrottle_test_support::PostgresServer;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract_and_its_jobs_across_a_restart() {
    let server = PostgresServer::start().await;
    let store = PostgresStore::open(&server.url).await.expect("open");
    conformance::check(&store).await.expect("PostgresStore");
    // Opening again finds the schema (and its version) in place.
    let again = PostgresStore::open(&server.url).await.expect("reopen");
    assert!(again.count().await.expect("count") > 0);
    // Shown, a location hides its password.
    let location: StoreLocation = "postgres://engine:pg_secret_123@127.0.0.1:5432/jobs".parse().expect("a location");
    assert_eq!(location.to_string(), "postgres://engine:****@127.0.0.1:5432/jobs");
    assert!(!format!("{location:?}").contains("pg_secret_123"));

    let target = Server::start().await;
    let fresh = || async { Arc::new(PostgresStore::open(&server.url).await.expect("open")) as Arc<dyn JobStore> };
    let (engine, api) = start(fast_engine().store(fresh().await)).await;
    let id = api.submit_ok(&job(&target.url("/slow/1500"), json!({"idempotent_key": "pg-restart"}))).await;
    target.wait_hits("/slow/1500", 1).await;
    drop(engine);
    let (engine, api) = start(fast_engine().store(fresh().await)).await;
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["attempts"][0]["outcome"], "interrupted", "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_submissions_spread_over_two_engines_make_one_job() {
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let open = || async { Arc::new(PostgresStore::open(&server.url).await.expect("open")) as Arc<dyn JobStore> };
    let (first, api_a) = start(fast_engine().store(open().await)).await;
    let (second, api_b) = start(fast_engine().store(open().await)).await;
    let body = job(&target.url("/ok?shared"), json!({"idempotent_key": "shared-key"}));
    let submissions = (0..50).map(|n| {
        let (api, body) = (if n % 2 == 0 { api_a.clone() } else { api_b.clone() }, body.clone());
        tokio::spawn(async move { api.submit(&body).await })
    });
    let mut ids = HashSet::new();
    let mut created = 0;
    for submission in submissions {
        let (status, answer) = submission.await.expect("the submission task");
        assert!(status == 201 || status == 200, "{status}: {answer}");
        created += usize::from(status == 201);
        ids.insert(answer["job_id"].as_str().expect("a job id").to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1), "one job for one key, whichever engine took it");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_create_the_schema_once_and_an_old_schema_is_migrated() {
    let server = PostgresServer::start().await;
    let opened = futures_util::future::join_all((0..4).map(|_| PostgresStore::open(&server.url))).await;
    assert!(
        opened.iter().all(Result::is_ok),
        "{:?}",
        opened.iter().filter_map(|o| o.as_ref().err()).collect::<Vec<_>>()
    );

    // A database left by the first version (no hosts, no leases) is migrated in place.
    let (admin, connection) = tokio_postgres::connect(&server.url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    admin.batch_execute("CREATE DATABASE old_schema").await.expect("create a database");
    let old = server.url.rsplit_once('/').map(|(base, _)| format!("{base}/old_schema")).expect("a database URL");
    let (client, connection) = tokio_postgres::connect(&old, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE ezt_schema (version INTEGER NOT NULL);
             INSERT INTO ezt_schema VALUES (1);
             CREATE TABLE ezt_jobs (id TEXT PRIMARY KEY, key TEXT NOT NULL, submission BYTEA NOT NULL,
                 settled BOOLEAN NOT NULL, finished_at_ms BIGINT, progress BYTEA NOT NULL);
             CREATE INDEX ezt_jobs_unsettled ON ezt_jobs (id) WHERE NOT settled;
             CREATE TABLE ezt_bindings (key TEXT PRIMARY KEY, job_id TEXT NOT NULL, bound_at_ms BIGINT NOT NULL);
             INSERT INTO ezt_jobs VALUES ('job_old', 't\nk', 'submission', false, NULL, 'progress');",
        )
        .await
        .expect("the first version's schema");
    let store = PostgresStore::open(&old).await.expect("migrate");
    let kept = store.get("job_old").await.expect("get").expect("the old job is kept");
    assert_eq!((kept.host.as_str(), &kept.submission[..]), ("", &b"submission"[..]));
    let version: i32 = client.query_one("SELECT max(version) FROM ezt_schema", &[]).await.expect("version").get(0);
    assert_eq!(version, 2);
    conformance::check(&PostgresStore::open(&server.url).await.expect("open")).await.expect("after the race");
}
