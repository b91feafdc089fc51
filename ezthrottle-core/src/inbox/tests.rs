//! The [`Inbox`] contract, exercised through the trait alone (generic code sees no
//! inherent method of the inbox it is given).

use std::time::Duration;

use super::{Inbox, WaitError, WebhookInbox};
use crate::{DeliveryStatus, SubmissionStatus, SubmitReceipt, WebhookPayload};

fn payload(job: &str, key: &str) -> WebhookPayload {
    WebhookPayload::new(job, DeliveryStatus::Success).with_idempotent_key(key)
}

/// A delivery recorded before anyone waits or subscribes: a waiter that comes later
/// still gets it (by job id and by key), a subscription that comes later sees only what
/// is recorded after it.
async fn late_waiters_find_the_stored_delivery<I: Inbox>(inbox: &I) {
    assert_eq!(inbox.record(payload("job_early", "order-early")).await, Ok(true));
    assert_eq!(inbox.record(payload("job_early", "order-early")).await, Ok(false), "a repeat is not new");

    let mut subscription = inbox.subscribe().await.expect("subscribes");
    assert_eq!(inbox.wait("job_early", Duration::ZERO).await.expect("by job id").job_id, "job_early");
    assert_eq!(inbox.wait("order-early", Duration::ZERO).await.expect("by key").job_id, "job_early");
    let duplicate = SubmitReceipt { duplicate: true, ..receipt("job_elsewhere", "order-early") };
    assert_eq!(inbox.wait_for_receipt(&duplicate, Duration::ZERO).await.expect("a duplicate").job_id, "job_early");

    // A new job reusing the key is not resolved by the older job's delivery.
    let reused = receipt("job_new", "order-early");
    let waited = inbox.wait_for_receipt(&reused, Duration::from_millis(20)).await;
    assert!(matches!(waited, Err(WaitError::TimedOut { ref key, .. }) if key == "job_new"), "{waited:?}");

    // The subscription started after the first delivery: the next thing it sees is the
    // next delivery.
    assert_eq!(inbox.record(payload("job_new", "order-early")).await, Ok(true));
    assert_eq!(subscription.recv().await.expect("open").job_id, "job_new");
    assert_eq!(inbox.wait_for_receipt(&reused, Duration::ZERO).await.expect("its own").job_id, "job_new");
}

fn receipt(job: &str, key: &str) -> SubmitReceipt {
    SubmitReceipt::new(job, SubmissionStatus::Queued).with_idempotent_key(key)
}

#[tokio::test]
async fn the_memory_inbox_keeps_the_contract_for_late_waiters() {
    late_waiters_find_the_stored_delivery(&WebhookInbox::new()).await;
}
