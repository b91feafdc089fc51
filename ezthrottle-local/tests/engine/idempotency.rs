use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_concurrent_submissions_create_one_job() {
    let (target, engine, api) = target_and(fast_engine()).await;
    for variant in [json!({"idempotent_key": "same-key"}), json!({})] {
        let body = job(&target.url("/ok?race"), variant.clone());
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (api, body) = (api.clone(), body.clone());
                tokio::spawn(async move { api.submit(&body).await })
            })
            .collect();
        let mut ids = HashSet::new();
        let mut created = 0;
        for task in tasks {
            let (status, answer) = task.await.unwrap();
            assert!(status == 201 || status == 200, "{status} {answer}");
            if status == 201 {
                created += 1;
            } else {
                assert_eq!(answer["duplicate"], true);
            }
            ids.insert(answer["job_id"].as_str().unwrap().to_owned());
        }
        assert_eq!((created, ids.len()), (1, 1), "{variant:?}");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_distinct_concurrent_submissions_create_fifty() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let api = api.clone();
            let body = job(&target.url("/ok"), json!({"body": format!("n={i}")}));
            tokio::spawn(async move { api.submit(&body).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert_eq!(status, 201, "{answer}");
        ids.insert(answer["job_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 50);
    for id in &ids {
        assert_eq!(api.wait_terminal(id).await["status"], "success");
    }
    assert_eq!(target.hits("/ok").len(), 50);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_keys_derive_from_url_method_body_and_tenant() {
    let (target, engine, api) = target_and(fast_engine().api_key("ck_second")).await;
    let base = job(&target.url("/ok"), json!({"method": "POST", "body": "b"}));
    let (status, first) = api.submit(&base).await;
    assert_eq!(status, 201);
    let key = first["idempotent_key"].as_str().unwrap();
    assert!(key.starts_with("hash_") && key.len() == 5 + 64, "{key}");
    let (status, again) = api.submit(&base).await;
    assert_eq!((status, &again["job_id"], &again["idempotent_key"]), (200, &first["job_id"], &first["idempotent_key"]));
    for changed in [
        job(&target.url("/ok"), json!({"method": "PUT", "body": "b"})),
        job(&target.url("/ok"), json!({"method": "POST", "body": "c"})),
        job(&target.url("/ok?x"), json!({"method": "POST", "body": "b"})),
    ] {
        let (status, other) = api.submit(&changed).await;
        assert_eq!(status, 201, "{changed}");
        assert_ne!(other["idempotent_key"], first["idempotent_key"]);
    }
    // Another tenant: its own key space.
    let (status, theirs) = api.with_key("ck_second").submit(&base).await;
    assert_eq!(status, 201);
    assert_ne!(theirs["job_id"], first["job_id"]);
    // Jobs are per tenant too.
    let path = format!("/api/v1/jobs/{}", first["job_id"].as_str().unwrap());
    assert_eq!(api.status_of("GET", &path, Some("Bearer ck_second"), String::new()).await, 404);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_after_the_ttl() {
    let (target, engine, api) = target_and(fast_engine().idempotency_ttl(Duration::from_millis(300))).await;
    let body = job(&target.url("/ok"), json!({"idempotent_key": "short-lived"}));
    let first = api.submit_ok(&body).await;
    let (status, dup) = api.submit(&body).await;
    assert_eq!((status, dup["job_id"].as_str().unwrap()), (200, first.as_str()));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, answer) = api.submit(&body).await;
        if status == 201 {
            assert_ne!(answer["job_id"].as_str().unwrap(), first);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await;
}
