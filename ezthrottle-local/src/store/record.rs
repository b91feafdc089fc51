//! A job as the engine keeps it: the submitted [`Job`] plus its progress.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use ezthrottle_core::protocol::{
    Attempt, AttemptOutcome, ChildJob, Job, JobSnapshot, JobStatus, TargetResponse, WebhookDeliveries, WebhookQuorum,
};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoredJob, StoredProgress};
use crate::util::lock;

/// One request made to a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    pub(crate) job_path: Arc<str>,
    pub(crate) url: Arc<str>,
    pub(crate) region: Arc<str>,
    pub(crate) started_at_ms: u64,
    pub(crate) latency_ms: Option<u64>,
    pub(crate) status_code: Option<u16>,
    pub(crate) error: Option<String>,
    pub(crate) outcome: AttemptOutcome,
}

impl AttemptRecord {
    fn to_wire(&self, number: u32) -> Attempt {
        let mut attempt = Attempt::new(number, &*self.job_path, &*self.url, &*self.region, instant(self.started_at_ms));
        attempt.latency = self.latency_ms.map(std::time::Duration::from_millis);
        attempt.status_code = self.status_code;
        attempt.error.clone_from(&self.error);
        attempt.outcome = self.outcome;
        attempt
    }
}

/// Progress details, allocated only once the job starts (keeps queued jobs small).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Detail {
    pub(crate) attempts: Vec<AttemptRecord>,
    pub(crate) response: Option<TargetResponse>,
    pub(crate) error: Option<String>,
    pub(crate) deliveries: Vec<WebhookDeliveries>,
    pub(crate) quorum_met: Option<bool>,
    pub(crate) children: Vec<ChildJob>,
    pub(crate) on_failure_spawned: bool,
    /// The children the outcome calls for were submitted.
    pub(crate) children_submitted: bool,
    /// When the job's next request is due (a retry's backoff), Unix ms: what a job resumed
    /// after a restart waits for.
    pub(crate) due_at_ms: Option<u64>,
    /// When the next delivery attempt of the pending webhooks is due, Unix ms.
    pub(crate) deliveries_due_at_ms: Option<u64>,
    /// The `on_timeout` deadline of each step that has one (by its path), Unix ms.
    pub(crate) timeout_deadlines_ms: std::collections::BTreeMap<String, u64>,
    pub(crate) events: Vec<String>,
    /// Cancelled before its turn: failed, with no webhook delivery and no child owed.
    pub(crate) cancelled: bool,
}

/// The mutable part of a job: what its progress document holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobState {
    pub(crate) status: JobStatus,
    pub(crate) started_at_ms: u64,
    pub(crate) finished_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<Box<Detail>>,
}

impl JobState {
    pub(crate) fn detail(&mut self) -> &mut Detail {
        self.detail.get_or_insert_with(Box::default)
    }

    pub(crate) fn detail_ref(&self) -> Option<&Detail> {
        self.detail.as_deref()
    }

    /// Queued and never started: what [`NEW_PROGRESS`] says.
    fn is_new(&self) -> bool {
        self.status == JobStatus::Queued && self.started_at_ms == 0 && self.finished_at_ms == 0 && self.detail.is_none()
    }

    /// Nothing is left to do: finished, children submitted, every delivery ended.
    pub(crate) fn settled(&self, has_children: bool, webhooks: usize) -> bool {
        if !self.status.is_finished() {
            return false;
        }
        let detail = self.detail_ref();
        if detail.is_some_and(|d| d.cancelled) {
            return true;
        }
        let children_done = !has_children || detail.is_some_and(|d| d.children_submitted);
        let delivered = webhooks == 0
            || detail.is_some_and(|d| {
                d.quorum_met.is_some()
                    && d.deliveries.len() == webhooks
                    && d.deliveries.iter().all(|d| d.outcome != ezthrottle_core::protocol::DeliveryOutcome::Pending)
            });
        children_done && delivered
    }
}

/// The progress document of a job just accepted.
const NEW_PROGRESS: &[u8] = br#"{"status":"queued","started_at_ms":0,"finished_at_ms":0}"#;

/// The submission document: what a job was, written once.
#[derive(Serialize, Deserialize)]
struct Submission<'a> {
    tenant: std::borrow::Cow<'a, str>,
    idempotent_key: std::borrow::Cow<'a, str>,
    accepted_at_ms: u64,
    job: std::borrow::Cow<'a, Job>,
}

impl StoredJob {
    /// The job as it was submitted (decoded from [`submission`](Self::submission)).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the document is not one this engine wrote.
    pub fn job(&self) -> Result<Job, StoreError> {
        let submission: Submission<'_> = serde_json::from_slice(&self.submission)
            .map_err(|err| StoreError::with_source(format!("job {}: an unreadable submission", self.id), err))?;
        Ok(submission.job.into_owned())
    }
}

/// A job as the engine runs it: the submission and its progress (a [`StoredJob`] decoded).
///
/// The submitted job is immutable; the progress sits behind a lock the engine updates as
/// the job runs, and the engine saves it ([`Shared::persist`](crate::engine::Shared::persist)) after each change.
#[derive(Debug)]
pub(crate) struct JobRecord {
    id: Box<str>,
    tenant: Arc<str>,
    idempotent_key: Arc<str>,
    job: Job,
    accepted_at_ms: u64,
    racing: bool,
    state: Mutex<JobState>,
}

impl JobRecord {
    pub(crate) fn new(id: String, tenant: Arc<str>, idempotent_key: Arc<str>, job: Job, accepted_at_ms: u64) -> Self {
        let racing = job.regions.len() > 1 && job.execution_mode == ezthrottle_core::protocol::ExecutionMode::Race;
        Self {
            id: id.into_boxed_str(),
            tenant,
            idempotent_key,
            job,
            accepted_at_ms,
            racing,
            state: Mutex::new(JobState {
                status: JobStatus::Queued,
                started_at_ms: 0,
                finished_at_ms: 0,
                detail: None,
            }),
        }
    }

    /// The job id (`job_<unix ms>_<sequence>`).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The tenant (API key) the job belongs to.
    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn tenant_arc(&self) -> &Arc<str> {
        &self.tenant
    }

    /// The idempotency key the job was deduplicated on (given or derived).
    pub(crate) fn idempotent_key(&self) -> &str {
        &self.idempotent_key
    }

    /// The job as submitted.
    pub(crate) fn job(&self) -> &Job {
        &self.job
    }

    /// When the job was accepted, Unix milliseconds.
    pub(crate) fn accepted_at_ms(&self) -> u64 {
        self.accepted_at_ms
    }

    /// Whether the submission answered `racing` (several regions in race mode).
    pub(crate) fn racing(&self) -> bool {
        self.racing
    }

    /// The job's current status.
    pub(crate) fn status(&self) -> JobStatus {
        self.state().status
    }

    /// The row a store keeps for this job, bound to `key` (the tenant-scoped key).
    pub(crate) fn to_stored(&self, key: &str, host: &str) -> Result<StoredJob, StoreError> {
        let submission = Submission {
            tenant: (&*self.tenant).into(),
            idempotent_key: (&*self.idempotent_key).into(),
            accepted_at_ms: self.accepted_at_ms,
            job: std::borrow::Cow::Borrowed(&self.job),
        };
        let submission =
            serde_json::to_vec(&submission).map_err(|err| StoreError::with_source("encoding a submission", err))?;
        Ok(StoredJob {
            id: self.id.to_string(),
            key: key.to_owned(),
            host: host.to_owned(),
            accepted_at: instant(self.accepted_at_ms),
            // Exact size: a store holding it in memory keeps no spare capacity per job.
            submission: Bytes::from(submission.into_boxed_slice()),
            progress: self.progress()?,
        })
    }

    /// The job's progress as a store keeps it.
    pub(crate) fn progress(&self) -> Result<StoredProgress, StoreError> {
        let state = self.state();
        // Every queued job shares one document: the memory store holds no copy per job.
        let document = if state.is_new() {
            Bytes::from_static(NEW_PROGRESS)
        } else {
            let document =
                serde_json::to_vec(&*state).map_err(|err| StoreError::with_source("encoding a job's progress", err))?;
            Bytes::from(document.into_boxed_slice())
        };
        let has_children = self.job.on_success.is_some() || self.job.on_failure.is_some();
        Ok(StoredProgress {
            status: state.status,
            settled: state.settled(has_children, self.job.webhooks.len()),
            finished_at: (state.finished_at_ms != 0).then(|| instant(state.finished_at_ms)),
            document,
        })
    }

    /// The job a store row holds.
    pub(crate) fn from_stored(stored: &StoredJob) -> Result<Self, StoreError> {
        let submission: Submission<'_> = serde_json::from_slice(&stored.submission)
            .map_err(|err| StoreError::with_source(format!("job {}: an unreadable submission", stored.id), err))?;
        let state: JobState = serde_json::from_slice(&stored.progress.document)
            .map_err(|err| StoreError::with_source(format!("job {}: unreadable progress", stored.id), err))?;
        let mut record = Self::new(
            stored.id.clone(),
            Arc::from(submission.tenant.as_ref()),
            Arc::from(submission.idempotent_key.as_ref()),
            submission.job.into_owned(),
            submission.accepted_at_ms,
        );
        record.state = Mutex::new(state);
        Ok(record)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, JobState> {
        lock(&self.state)
    }

    /// What `GET /api/v1/jobs/{id}` answers.
    pub(crate) fn snapshot(&self) -> JobSnapshot {
        let state = self.state();
        let nonzero = |ms: u64| if ms == 0 { None } else { Some(instant(ms)) };
        let mut snapshot =
            JobSnapshot::new(&*self.id, &self.job.url, self.job.method.as_str(), instant(self.accepted_at_ms));
        snapshot.status = state.status;
        snapshot.idempotent_key = Some(self.idempotent_key.to_string());
        snapshot.regions.clone_from(&self.job.regions);
        snapshot.execution_mode = self.job.execution_mode;
        snapshot.region_policy = self.job.region_policy;
        snapshot.started_at = nonzero(state.started_at_ms);
        snapshot.finished_at = nonzero(state.finished_at_ms);
        let voters = self.job.webhooks.iter().filter(|w| w.has_quorum_vote).count();
        let voters = u32::try_from(voters).unwrap_or(u32::MAX);
        let mut quorum_met = None;
        if let Some(detail) = state.detail_ref() {
            snapshot.attempts = detail.attempts.iter().zip(1..).map(|(a, number)| a.to_wire(number)).collect();
            snapshot.response.clone_from(&detail.response);
            snapshot.error.clone_from(&detail.error);
            snapshot.events.clone_from(&detail.events);
            snapshot.webhooks.clone_from(&detail.deliveries);
            snapshot.children.clone_from(&detail.children);
            quorum_met = detail.quorum_met;
        }
        snapshot.webhook_quorum = WebhookQuorum::new(self.job.webhook_quorum, voters, quorum_met);
        snapshot
    }
}

/// The instant of an engine timestamp (Unix ms, always representable: it was read from the
/// clock).
fn instant(unix_ms: u64) -> std::time::SystemTime {
    ezthrottle_core::protocol::time::from_unix_ms(unix_ms).unwrap_or(std::time::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_jobs_progress_is_the_shared_document() {
        let record = JobRecord::new("job_1".into(), Arc::from("t"), Arc::from("k"), Job::new("http://a/"), 5);
        let encoded = serde_json::to_vec(&*record.state()).unwrap();
        assert_eq!(encoded, NEW_PROGRESS);
        let stored = record.to_stored("t\nk", "example.com:443").unwrap();
        assert_eq!(stored.progress.document, NEW_PROGRESS);
        let back = JobRecord::from_stored(&stored).unwrap();
        assert_eq!(back.status(), JobStatus::Queued);
        assert_eq!(back.job().url, "http://a/");
    }

    #[test]
    fn debug_hides_the_jobs_credentials_and_body() {
        let mut job = Job::new("https://api.example.com/charge");
        job.headers.insert("Authorization".into(), "Bearer sk_live_secret123".into());
        job.headers.insert("Cookie".into(), "session=abc".into());
        job.headers.insert("X-Api-Key".into(), "key_456".into());
        job.body = Some("card=4242".into());
        let record = JobRecord::new("job_1".into(), Arc::from("tenant"), Arc::from("key"), job, 5);
        for shown in [format!("{record:?}"), format!("{record:#?}")] {
            for secret in ["sk_live_secret123", "session=abc", "key_456", "card=4242"] {
                assert!(!shown.contains(secret), "shows {secret:?}: {shown}");
            }
            for name in ["Authorization", "Cookie", "X-Api-Key", "job_1"] {
                assert!(shown.contains(name), "hides {name:?}: {shown}");
            }
        }
    }
}
