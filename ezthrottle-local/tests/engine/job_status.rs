//! `GET /api/v1/jobs/{id}` read through the SDK's typed `EZThrottle::get_job`, in both modes.

use ezthrottle_core::protocol::{AttemptOutcome, ChildRelation, DeliveryOutcome, JobSnapshot, JobStatus};
use ezthrottle_core::{EZThrottle, Error};
use serde_json::json;

use crate::support::*;

fn direct(engine_base: &str) -> EZThrottle {
    EZThrottle::builder().direct(engine_base).api_key(KEY).build().unwrap()
}

/// Cloud mode pointed at the engine: every call goes through the proxy envelope.
fn through_proxy(engine_base: &str) -> EZThrottle {
    EZThrottle::builder().api_key(KEY).tracktags_url(engine_base).ezthrottle_url(engine_base).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_job_reports_attempts_deliveries_and_children_typed_in_both_modes() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let parent = api
        .submit_ok(&job(
            &target.url("/status/500"),
            json!({
                "idempotent_key": "snapshot-parent",
                "fallback_job": {"url": target.url("/ok?fallback"), "trigger": {"type": "on_error", "codes": [500]}},
                "webhooks": [{"url": target.url("/hook")}],
                "on_success": {"url": target.url("/ok?child"), "idempotent_key": "snapshot-child"},
            }),
        ))
        .await;
    let raw = api.wait_job(&parent, |j| !j["webhook_quorum"]["met"].is_null() && j["children"] != json!([])).await;

    for client in [direct(&engine.base_url()), through_proxy(&engine.base_url())] {
        let snapshot = client.get_job(&parent).await.unwrap();
        assert_eq!(snapshot, serde_json::from_value::<JobSnapshot>(raw.clone()).unwrap(), "typed = the engine's JSON");
        assert_eq!((snapshot.job_id.as_str(), snapshot.status), (parent.as_str(), JobStatus::Success));
        assert!(snapshot.is_finished());
        assert_eq!(snapshot.idempotent_key.as_deref(), Some("snapshot-parent"));
        let attempts: Vec<_> =
            snapshot.attempts.iter().map(|a| (a.attempt, a.job.as_str(), a.status_code, a.outcome)).collect();
        assert_eq!(
            attempts,
            [
                (1, "primary", Some(500), AttemptOutcome::Failed),
                (2, "fallback_job", Some(200), AttemptOutcome::Success)
            ]
        );
        assert_eq!(snapshot.response.as_ref().map(|r| r.status_code), Some(200));
        assert_eq!(snapshot.webhooks.len(), 1);
        assert_eq!(snapshot.webhooks[0].outcome, DeliveryOutcome::Delivered);
        assert_eq!(snapshot.webhook_quorum.met, Some(true));
        let child = snapshot.child(ChildRelation::OnSuccess).expect("the on_success child");
        assert!(snapshot.child(ChildRelation::OnFailure).is_none());
        let child = client.get_job(&child.job_id).await.unwrap();
        assert_eq!(child.idempotent_key.as_deref(), Some("snapshot-child"));
        assert_eq!(child.url, target.url("/ok?child"));
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_job_names_unknown_and_unusable_ids() {
    let (engine, _api) = start(fast_engine()).await;
    for client in [direct(&engine.base_url()), through_proxy(&engine.base_url())] {
        let missing = client.get_job("job_0_0").await.unwrap_err();
        assert!(matches!(&missing, Error::JobNotFound { job_id } if job_id == "job_0_0"), "{missing:?}");
        assert_eq!(missing.status().map(|s| s.as_u16()), Some(404));
        for bad in ["", "..", "job/../../secrets", "job?x=1", "job 1"] {
            let error = client.get_job(bad).await.unwrap_err();
            assert!(matches!(&error, Error::InvalidInput { field, .. } if field == "job_id"), "{bad:?}: {error:?}");
        }
    }
    engine.shutdown().await;
}
