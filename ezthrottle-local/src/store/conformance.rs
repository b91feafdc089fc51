//! The contract every [`JobStore`] must keep, as a test suite: run [`check`] against a
//! fresh, empty instance of your store.
//!
//! ```
//! use ezthrottle_local::store::{MemoryStore, conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), conformance::Violation> {
//! conformance::check(&MemoryStore::new()).await?;
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::join_all;

use super::{Insert, JobQuery, JobStatus, JobStore, StoreError, StoredJob, StoredProgress};

/// A broken rule of the contract: what was expected, and what the store did.
#[derive(Debug, thiserror::Error)]
#[error("the store breaks its contract: {0}")]
pub struct Violation(String);

impl From<StoreError> for Violation {
    fn from(err: StoreError) -> Self {
        Self(format!("a call failed: {}", ezthrottle_core::ErrorChain(&err)))
    }
}

fn expect(holds: bool, what: impl FnOnce() -> String) -> Result<(), Violation> {
    if holds { Ok(()) } else { Err(Violation(what())) }
}

fn job(id: &str, key: &str, settled: bool, finished_at: Option<SystemTime>) -> StoredJob {
    StoredJob {
        id: id.to_owned(),
        key: key.to_owned(),
        host: format!("{key}.example:443"),
        accepted_at: at(0),
        submission: Bytes::from(format!("submission of {id}")),
        progress: StoredProgress {
            status: if settled { JobStatus::Success } else { JobStatus::Queued },
            settled,
            finished_at,
            document: Bytes::from(format!("progress of {id}")),
        },
    }
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

const TTL: Duration = Duration::from_secs(60);

/// Runs every rule against `store`, which must be empty.
///
/// # Errors
///
/// The first [`Violation`] found (a failed call counts as one).
pub async fn check(store: &dyn JobStore) -> Result<(), Violation> {
    bindings(store).await?;
    progress(store).await?;
    concurrent_inserts(store).await?;
    sweeping(store).await?;
    webhook_secrets(store).await?;
    conditional_saves(store).await?;
    listing(store).await?;
    Ok(())
}

async fn conditional_saves(store: &dyn JobStore) -> Result<(), Violation> {
    let queued = job("job_cas", "t\nkey-cas", false, None);
    store.insert_if_absent(&queued, TTL, at(0)).await?;
    let running = StoredProgress { status: JobStatus::Running, ..queued.progress.clone() };
    let cancelled = StoredProgress { status: JobStatus::Failed, ..queued.progress.clone() };
    let (dispatch, cancel) = futures_util::join!(
        store.save_if("job_cas", &running, &[JobStatus::Queued, JobStatus::Running]),
        store.save_if("job_cas", &cancelled, &[JobStatus::Queued]),
    );
    let (dispatch, cancel) = (dispatch?, cancel?);
    expect(dispatch != cancel, || format!("a dispatch ({dispatch}) and a cancel ({cancel}) racing: exactly one wins"))?;
    let status = store.get("job_cas").await?.map(|job| job.progress.status);
    let winner = if dispatch { JobStatus::Running } else { JobStatus::Failed };
    expect(status == Some(winner), || format!("the saved status is {status:?}, not the winner's"))?;
    let missing = store.save_if("job_missing_cas", &running, &[JobStatus::Queued]).await?;
    expect(!missing, || "a conditional save of an unknown job answered true".into())
}

async fn listing(store: &dyn JobStore) -> Result<(), Violation> {
    let mut jobs: Vec<StoredJob> =
        (0..5).map(|n| job(&format!("job_list_{n}"), &format!("lister\nk{n}"), false, None)).collect();
    for (n, job) in jobs.iter_mut().enumerate() {
        job.accepted_at = at(u64::try_from(n).unwrap_or(0) * 10);
        if n == 3 {
            job.host = "other.example:443".into();
            job.progress.status = JobStatus::Running;
        }
        store.insert_if_absent(job, TTL, at(0)).await?;
    }
    store.insert_if_absent(&job("job_list_x", "outsider\nk0", false, None), TTL, at(0)).await?;
    let ids = |found: Vec<StoredJob>| found.into_iter().map(|job| job.id).collect::<Vec<_>>();
    let mut query = JobQuery::new("lister\n", 2);
    let first = ids(store.list(&query).await?);
    expect(first == ["job_list_0", "job_list_1"], || format!("the first page is {first:?}"))?;
    query.after_id = first.last().cloned();
    let second = ids(store.list(&query).await?);
    expect(second == ["job_list_2", "job_list_3"], || format!("the page after the cursor is {second:?}"))?;
    let mut query = JobQuery::new("lister\n", 10);
    query.status = Some(JobStatus::Running);
    let running = ids(store.list(&query).await?);
    expect(running == ["job_list_3"], || format!("by status: {running:?}"))?;
    let mut query = JobQuery::new("lister\n", 10);
    query.host = Some("other.example:443".into());
    let by_host = ids(store.list(&query).await?);
    expect(by_host == ["job_list_3"], || format!("by host: {by_host:?}"))?;
    let mut query = JobQuery::new("lister\n", 10);
    query.accepted = at(10)..at(30);
    let by_time = ids(store.list(&query).await?);
    expect(by_time == ["job_list_1", "job_list_2"], || format!("by acceptance: {by_time:?}"))
}

async fn webhook_secrets(store: &dyn JobStore) -> Result<(), Violation> {
    let none = store.webhook_secrets("tenant-s").await?;
    expect(none.is_none(), || format!("a tenant never saved has secrets {none:?}"))?;
    for document in [Bytes::from_static(b"first secrets"), Bytes::from_static(b"rotated")] {
        store.save_webhook_secrets("tenant-s", &document).await?;
        let saved = store.webhook_secrets("tenant-s").await?;
        expect(saved.as_ref() == Some(&document), || format!("webhook_secrets answered {saved:?} after a save"))?;
    }
    let other = store.webhook_secrets("tenant-t").await?;
    expect(other.is_none(), || "one tenant's secrets answered for another".into())
}

async fn bindings(store: &dyn JobStore) -> Result<(), Violation> {
    let first = job("job_a", "t\nkey-a", false, None);
    let inserted = store.insert_if_absent(&first, TTL, at(0)).await?;
    expect(matches!(inserted, Insert::Inserted), || format!("a new key answered {inserted:?}"))?;
    let stored = store.get("job_a").await?;
    expect(stored.as_ref() == Some(&first), || format!("get answered {stored:?} for the job just inserted"))?;

    let second = job("job_b", "t\nkey-a", false, None);
    match store.insert_if_absent(&second, TTL, at(59)).await? {
        Insert::Duplicate(existing) => expect(existing == first, || format!("the duplicate is {existing:?}"))?,
        Insert::Inserted => return Err(Violation("a live key was bound twice".into())),
    }
    let ghost = store.get("job_b").await?;
    expect(ghost.is_none(), || "a duplicate's job was stored".into())?;
    let found = store.find("t\nkey-a", TTL, at(30)).await?;
    expect(found.as_ref().map(|job| job.id.as_str()) == Some("job_a"), || format!("find answered {found:?}"))?;
    let other_tenant = store.find("u\nkey-a", TTL, at(30)).await?;
    expect(other_tenant.is_none(), || "find matched another key".into())?;

    // At `ttl` the binding has expired: the key binds anew, the old job stays.
    let expired = store.find("t\nkey-a", TTL, at(60)).await?;
    expect(expired.is_none(), || "a binding outlived its ttl".into())?;
    let third = job("job_c", "t\nkey-a", false, None);
    let rebound = store.insert_if_absent(&third, TTL, at(60)).await?;
    expect(matches!(rebound, Insert::Inserted), || format!("an expired key answered {rebound:?}"))?;
    let found = store.find("t\nkey-a", TTL, at(61)).await?;
    expect(found.as_ref().map(|job| job.id.as_str()) == Some("job_c"), || format!("find answered {found:?}"))?;
    let old = store.get("job_a").await?;
    expect(old.is_some(), || "rebinding a key dropped the old job".into())?;
    // A clock that steps back does not expire a binding.
    let back = store.find("t\nkey-a", TTL, at(10)).await?;
    expect(back.is_some(), || "a binding expired when the clock stepped back".into())
}

async fn progress(store: &dyn JobStore) -> Result<(), Violation> {
    let job = job("job_p", "t\nkey-p", false, None);
    store.insert_if_absent(&job, TTL, at(0)).await?;
    let unsettled = store.unsettled().await?;
    expect(unsettled.iter().any(|j| j.id == "job_p"), || "a new job is not unsettled".into())?;
    let settled = StoredProgress {
        status: JobStatus::Success,
        settled: true,
        finished_at: Some(at(5)),
        document: Bytes::from_static(b"finished"),
    };
    store.save("job_p", &settled).await?;
    let saved = store.get("job_p").await?.map(|job| job.progress);
    expect(saved.as_ref() == Some(&settled), || format!("get answered {saved:?} after save"))?;
    let unsettled = store.unsettled().await?;
    expect(!unsettled.iter().any(|j| j.id == "job_p"), || "a settled job is still unsettled".into())?;
    store.save("job_missing", &settled).await?;
    let missing = store.get("job_missing").await?;
    expect(missing.is_none(), || "saving an unknown job created it".into())
}

async fn concurrent_inserts(store: &dyn JobStore) -> Result<(), Violation> {
    let jobs: Vec<StoredJob> = (0..32).map(|n| job(&format!("job_race_{n}"), "t\nkey-race", false, None)).collect();
    let answers = join_all(jobs.iter().map(|job| store.insert_if_absent(job, TTL, at(0)))).await;
    let mut winners = Vec::new();
    let mut duplicates_of = Vec::new();
    for (job, answer) in jobs.iter().zip(answers) {
        match answer? {
            Insert::Inserted => winners.push(job.id.clone()),
            Insert::Duplicate(existing) => duplicates_of.push(existing.id),
        }
    }
    expect(winners.len() == 1, || format!("{} concurrent inserts of one key stored a job", winners.len()))?;
    expect(duplicates_of.iter().all(|id| winners.contains(id)), || "a duplicate named another job".into())
}

async fn sweeping(store: &dyn JobStore) -> Result<(), Violation> {
    let before = store.count().await?;
    let old = job("job_old", "t\nkey-old", true, Some(at(0)));
    let running = job("job_running", "t\nkey-running", false, None);
    store.insert_if_absent(&old, TTL, at(0)).await?;
    store.insert_if_absent(&running, TTL, at(0)).await?;
    expect(store.count().await? == before + 2, || "len did not count two new jobs".into())?;
    let removed = store.sweep(at(3_600), TTL, Duration::from_secs(600)).await?;
    expect(removed > 0, || "sweep removed nothing".into())?;
    expect(store.get("job_old").await?.is_none(), || "a settled job past retention survived".into())?;
    expect(store.get("job_running").await?.is_some(), || "sweep removed an unsettled job".into())?;
    let key = store.find("t\nkey-running", Duration::from_secs(86_400), at(3_600)).await?;
    expect(key.is_none(), || "sweep kept a binding older than its ttl".into())
}
