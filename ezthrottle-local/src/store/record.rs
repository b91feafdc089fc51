//! A job as the engine keeps it: the submitted [`Job`] plus its progress.

use std::sync::{Arc, Mutex, MutexGuard};

use ezthrottle_core::protocol::{
    Attempt, AttemptOutcome, ChildJob, Job, JobSnapshot, JobStatus, TargetResponse, WebhookDeliveries, WebhookQuorum,
};

use crate::util::lock;

/// One request made to a target.
#[derive(Debug, Clone)]
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
#[derive(Debug, Default)]
pub(crate) struct Detail {
    pub(crate) attempts: Vec<AttemptRecord>,
    pub(crate) response: Option<TargetResponse>,
    pub(crate) error: Option<String>,
    pub(crate) deliveries: Vec<WebhookDeliveries>,
    pub(crate) quorum_met: Option<bool>,
    pub(crate) children: Vec<ChildJob>,
    pub(crate) on_failure_spawned: bool,
    pub(crate) events: Vec<String>,
}

/// The mutable part of a job.
#[derive(Debug)]
pub(crate) struct JobState {
    pub(crate) status: JobStatus,
    pub(crate) started_at_ms: u64,
    pub(crate) finished_at_ms: u64,
    detail: Option<Box<Detail>>,
}

impl JobState {
    pub(crate) fn detail(&mut self) -> &mut Detail {
        self.detail.get_or_insert_with(Box::default)
    }

    pub(crate) fn detail_ref(&self) -> Option<&Detail> {
        self.detail.as_deref()
    }
}

/// A job held by a [`JobStore`](super::JobStore): the submission and its progress.
///
/// The submitted job is immutable; the progress sits behind a lock the engine updates as
/// the job runs. A durable store persists it from [`JobStore::updated`](super::JobStore::updated).
#[derive(Debug)]
pub struct JobRecord {
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
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tenant (API key) the job belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn tenant_arc(&self) -> &Arc<str> {
        &self.tenant
    }

    /// The idempotency key the job was deduplicated on (given or derived).
    pub fn idempotent_key(&self) -> &str {
        &self.idempotent_key
    }

    /// The job as submitted.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// When the job was accepted, Unix milliseconds.
    pub fn accepted_at_ms(&self) -> u64 {
        self.accepted_at_ms
    }

    /// Whether the submission answered `racing` (several regions in race mode).
    pub fn racing(&self) -> bool {
        self.racing
    }

    /// The job's current status.
    pub fn status(&self) -> JobStatus {
        self.state().status
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, JobState> {
        lock(&self.state)
    }

    /// What `GET /api/v1/jobs/{id}` answers.
    pub fn snapshot(&self) -> JobSnapshot {
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
