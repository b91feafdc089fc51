//! The tenant's admin API: list (filters, pages, tenants apart), cancel a queued job,
//! redeliver a finished job's webhooks; through the client.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use ezthrottle_core::protocol::JobStatus;
use ezthrottle_core::{EZThrottle, Error, JobFilter, Pace};
use serde_json::json;

use crate::support::*;

const OTHER: &str = "ck_live_other_admin_tenant";

fn client(base: &str, key: &str) -> EZThrottle {
    EZThrottle::builder().api_key(key).direct(base).build().expect("a direct client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lists_its_own_jobs_by_page_status_host_and_time() {
    let (target, engine, api) = target_and(fast_engine().api_key(OTHER)).await;
    let other_target = Server::start().await;
    let before = SystemTime::now();
    let ids = api.submit_all((0..5).map(|n| target.url(&format!("/ok?n={n}")))).await;
    let failed = api.submit_ok(&job(&other_target.url("/status/404"), json!({}))).await;
    api.with_key(OTHER).submit_ok(&job(&target.url("/ok?other"), json!({}))).await;
    api.wait_all_terminal(&ids).await;
    api.wait_terminal(&failed).await;
    let client = client(&engine.base_url(), KEY);

    // Pages of two, oldest id first, ending without a cursor.
    let mut seen = Vec::new();
    let mut filter = JobFilter::new().limit(2);
    loop {
        let page = client.list_jobs(&filter).await.expect("a page");
        assert!(page.jobs.len() <= 2);
        seen.extend(page.jobs.iter().map(|job| job.job_id.clone()));
        match page.next_cursor {
            Some(cursor) => filter = filter.cursor(cursor),
            None => break,
        }
    }
    let mut all: Vec<String> = ids.iter().cloned().chain([failed.clone()]).collect();
    all.sort();
    assert_eq!(seen, all, "every job of the tenant once, by id, and none of the other tenant's");

    let failures = client.list_jobs(&JobFilter::new().status(JobStatus::Failed)).await.expect("by status");
    assert_eq!(failures.jobs.iter().map(|job| job.job_id.as_str()).collect::<Vec<_>>(), [failed.as_str()]);
    let by_host = client.list_jobs(&JobFilter::new().host(other_target.host())).await.expect("by host");
    assert_eq!(by_host.jobs.len(), 1);
    let none_yet = client.list_jobs(&JobFilter::new().accepted(None, Some(before))).await.expect("by time");
    assert!(none_yet.jobs.is_empty(), "nothing was accepted before the test began");

    let refused = api.status_of("GET", "/api/v1/jobs?colour=red", Some(&format!("Bearer {KEY}")), String::new()).await;
    assert_eq!(refused, 400);
    let too_many = api.status_of("GET", "/api/v1/jobs?limit=501", Some(&format!("Bearer {KEY}")), String::new()).await;
    assert_eq!(too_many, 400);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_is_cancelled_and_never_runs_nor_delivers_and_a_running_one_is_not() {
    let one_at_a_time = Pace::new(100.0, 1).expect("a pace");
    let (target, engine, api) = target_and(fast_engine().api_key(OTHER).default_pace(one_at_a_time)).await;
    let client = client(&engine.base_url(), KEY);
    let running = api.submit_ok(&job(&target.url("/slow/1500"), json!({}))).await;
    let queued =
        api.submit_ok(&job(&target.url("/ok?cancelled"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    target.wait_hits("/slow/1500", 1).await;

    let other = client_for_other(&engine);
    assert!(matches!(other.cancel_job(&queued).await, Err(Error::JobNotFound { .. })), "another tenant's job");
    let cancelled = client.cancel_job(&queued).await.expect("cancelled");
    assert_eq!((cancelled.status, cancelled.error.as_deref()), (JobStatus::Failed, Some("cancelled")));
    let refused = client.cancel_job(&running).await.expect_err("a running job");
    assert_eq!(refused.status().map(|status| status.as_u16()), Some(409), "{refused}");

    api.wait_terminal(&running).await;
    // The cancelled job's turn has come and gone: one more job behind it has run.
    let after = api.submit_ok(&job(&target.url("/ok?after"), json!({}))).await;
    api.wait_terminal(&after).await;
    assert!(target.hits("/ok?cancelled").is_empty(), "a cancelled job reached its target");
    assert!(target.hits("/hook").is_empty(), "a cancelled job delivered a webhook");
    assert_eq!(api.job(&queued).await["status"], "failed");
    engine.shutdown().await;
}

fn client_for_other(engine: &ezthrottle_local::RunningEngine) -> EZThrottle {
    client(&engine.base_url(), OTHER)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_s_webhooks_are_delivered_again_on_request() {
    let (target, engine, api) = target_and(fast_engine().webhook_secret("whsec_admin_redelivery_secret")).await;
    let admin = client(&engine.base_url(), KEY);
    let id = api.submit_ok(&job(&target.url("/ok?hooked"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    api.wait_delivered(&id).await;
    target.wait_hits("/hook", 1).await;
    admin.redeliver_job(&id).await.expect("redelivered");
    let hooks = target.wait_hits("/hook", 2).await;
    let ids: HashSet<String> =
        hooks.iter().map(|hit| hit.json()["job_id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(ids, HashSet::from([id.clone()]));
    let done = api.wait_delivered(&id).await;
    assert!(done["events"].to_string().contains("redelivery asked"), "{done:#}");
    assert_eq!(target.hits("/ok?hooked").len(), 1, "the job itself did not run again");

    let paced = Pace::new(0.01, 1).expect("a pace");
    let (slow_target, slow_engine, slow_api) = target_and(fast_engine().default_pace(paced)).await;
    slow_api.submit_ok(&job(&slow_target.url("/ok?first"), json!({}))).await;
    let queued = slow_api
        .submit_ok(&job(&slow_target.url("/ok?second"), json!({"webhooks": [{"url": slow_target.url("/hook")}]})))
        .await;
    let refused = client(&slow_engine.base_url(), KEY).redeliver_job(&queued).await.expect_err("not finished");
    assert_eq!(refused.status().map(|status| status.as_u16()), Some(409), "{refused}");
    tokio::time::timeout(Duration::from_secs(1), slow_engine.shutdown()).await.ok();
    engine.shutdown().await;
}
