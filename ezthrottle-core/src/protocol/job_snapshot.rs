//! What `GET /api/v1/jobs/{id}` answers: a job's state and history (`docs/protocol.md` §5).
//!
//! The local engine answers with every field; the self-hosted peers answer a subset
//! (`job_id`, `status`, `url`, `method`, `created_at`, with `in_flight`/`completed` for
//! statuses), which deserializes into the same type with the rest left empty.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::job::{ExecutionMode, RegionPolicy};
use super::webhook_payload::TargetResponse;

/// A job's state and history, as `GET /api/v1/jobs/{id}` reports it.
///
/// Instants and durations are integer milliseconds on the wire (Unix milliseconds for
/// instants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobSnapshot {
    /// The job's id.
    pub job_id: String,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// The key the job was deduplicated on (given or derived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_key: Option<String>,
    /// The target URL.
    pub url: String,
    /// The HTTP method.
    pub method: String,
    /// The regions the job may run in.
    #[serde(default)]
    pub regions: Vec<String>,
    /// How several regions are used.
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    /// What happens when a region is down.
    #[serde(default)]
    pub region_policy: RegionPolicy,
    /// When the job was accepted.
    #[serde(with = "super::time::unix_ms")]
    pub created_at: SystemTime,
    /// When its first attempt started.
    #[serde(default, with = "super::time::unix_ms_opt")]
    pub started_at: Option<SystemTime>,
    /// When it finished.
    #[serde(default, with = "super::time::unix_ms_opt")]
    pub finished_at: Option<SystemTime>,
    /// Every request made to a target, fallbacks included, in order.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The target's final answer, once there is one.
    #[serde(default)]
    pub response: Option<TargetResponse>,
    /// Why the job failed without an answer from the target.
    #[serde(default)]
    pub error: Option<String>,
    /// What happened, in words, in order (retries, reroutes, fallbacks, children).
    #[serde(default)]
    pub events: Vec<String>,
    /// The delivery of the result to each webhook.
    #[serde(default)]
    pub webhooks: Vec<WebhookDeliveries>,
    /// How many voting webhooks must accept the result.
    #[serde(default)]
    pub webhook_quorum: WebhookQuorum,
    /// Jobs this one spawned (`on_success` / `on_failure`).
    #[serde(default)]
    pub children: Vec<ChildJob>,
}

impl JobSnapshot {
    /// A snapshot of a job accepted at `created_at` and not started yet.
    pub fn new(
        job_id: impl Into<String>,
        url: impl Into<String>,
        method: impl Into<String>,
        created_at: SystemTime,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            status: JobStatus::Queued,
            idempotent_key: None,
            url: url.into(),
            method: method.into(),
            regions: Vec::new(),
            execution_mode: ExecutionMode::default(),
            region_policy: RegionPolicy::default(),
            created_at,
            started_at: None,
            finished_at: None,
            attempts: Vec::new(),
            response: None,
            error: None,
            events: Vec::new(),
            webhooks: Vec::new(),
            webhook_quorum: WebhookQuorum::default(),
            children: Vec::new(),
        }
    }

    /// Whether the job has finished executing (its webhooks may still be in delivery).
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// The child spawned as `relation`, if any.
    pub fn child(&self, relation: ChildRelation) -> Option<&ChildJob> {
        self.children.iter().find(|child| child.relation == relation)
    }
}

/// A page of a tenant's jobs, as `GET /api/v1/jobs` answers it (newest ids last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobList {
    /// The jobs of this page, by id.
    pub jobs: Vec<JobSnapshot>,
    /// Pass it as `cursor` for the next page; `None` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl JobList {
    /// A page of `jobs`, followed by the page after `next_cursor` if any.
    pub fn new(jobs: Vec<JobSnapshot>, next_cursor: Option<String>) -> Self {
        Self { jobs, next_cursor }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Accepted, waiting for its turn at the target host (or for `retry_at`).
    Queued,
    /// Being executed (attempts, retries, fallbacks); the peers say `in_flight`.
    #[serde(alias = "in_flight")]
    Running,
    /// Finished: the target answered 2xx; the peers say `completed`.
    #[serde(alias = "completed")]
    Success,
    /// Finished: every attempt failed.
    Failed,
    /// A status this version does not know.
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    /// The wire name: `queued`, `running`, `success`, `failed` (or `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the job has finished (`success` or `failed`).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }

    /// The status whose wire name is `name` (`Unknown` for one this version does not know).
    pub fn from_name(name: &str) -> Self {
        match name {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "success" => Self::Success,
            "failed" => Self::Failed,
            _ => Self::Unknown,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request made to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first attempt of the job, counting fallbacks' attempts too.
    pub attempt: u32,
    /// Which part of the job made it: `primary`, `fallback 1`, `fallback 2`, ...
    pub job: String,
    /// The URL requested.
    pub url: String,
    /// The region it ran in.
    pub region: String,
    /// When it started.
    #[serde(with = "super::time::unix_ms")]
    pub started_at: SystemTime,
    /// How long the target took, once it answered or failed (`latency_ms` on the wire).
    #[serde(default, rename = "latency_ms", with = "super::time::duration_ms_opt")]
    pub latency: Option<Duration>,
    /// The target's status code, when it answered.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// The transport failure, when it did not answer.
    #[serde(default)]
    pub error: Option<String>,
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
}

impl Attempt {
    /// An attempt of `job` (e.g. `primary`) at `url` in `region`, started at `started_at`.
    pub fn new(
        attempt: u32,
        job: impl Into<String>,
        url: impl Into<String>,
        region: impl Into<String>,
        started_at: SystemTime,
    ) -> Self {
        Self {
            attempt,
            job: job.into(),
            url: url.into(),
            region: region.into(),
            started_at,
            latency: None,
            status_code: None,
            error: None,
            outcome: AttemptOutcome::InFlight,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// Still waiting for the target.
    InFlight,
    /// The target answered 2xx.
    Success,
    /// Failed; the job retries in the same region.
    Retry,
    /// Failed; the job moves to another region.
    Reroute,
    /// Failed for good.
    Failed,
    /// Stopped: another region won the race, or the attempt timed out.
    Cancelled,
    /// The engine stopped (a crash, a restart) while waiting for the target: whether the
    /// target acted is unknown, and the job ran again (at-least-once).
    Interrupted,
    /// An outcome this version does not know.
    #[serde(other)]
    Unknown,
}

impl AttemptOutcome {
    /// The wire name, e.g. `in_flight` or `reroute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Success => "success",
            Self::Retry => "retry",
            Self::Reroute => "reroute",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
            Self::Unknown => "unknown",
        }
    }
}

/// Every POST of a job's result to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookDeliveries {
    /// The webhook URL.
    pub url: String,
    /// Whether it counts towards the quorum.
    pub has_quorum_vote: bool,
    /// Where the delivery stands.
    pub outcome: DeliveryOutcome,
    /// Each POST, in order.
    #[serde(default)]
    pub attempts: Vec<DeliveryAttempt>,
}

impl WebhookDeliveries {
    /// A delivery to `url` not attempted yet.
    pub fn new(url: impl Into<String>, has_quorum_vote: bool) -> Self {
        Self { url: url.into(), has_quorum_vote, outcome: DeliveryOutcome::Pending, attempts: Vec::new() }
    }
}

/// Where one webhook's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// Not accepted yet (still trying).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every POST failed.
    Failed,
    /// An outcome this version does not know.
    #[serde(other)]
    Unknown,
}

impl DeliveryOutcome {
    /// The wire name: `pending`, `delivered`, `failed` (or `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// One POST to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryAttempt {
    /// When it was sent.
    #[serde(with = "super::time::unix_ms")]
    pub at: SystemTime,
    /// How long the receiver took (`latency_ms` on the wire).
    #[serde(rename = "latency_ms", with = "super::time::duration_ms")]
    pub latency: Duration,
    /// The receiver's status code, when it answered.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// The transport failure, when it did not answer.
    #[serde(default)]
    pub error: Option<String>,
}

impl DeliveryAttempt {
    /// A POST sent at `at` that took `latency`.
    pub fn new(at: SystemTime, latency: Duration, status_code: Option<u16>, error: Option<String>) -> Self {
        Self { at, latency, status_code, error }
    }
}

/// The webhook quorum of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookQuorum {
    /// How many voting webhooks must accept the result.
    #[serde(default)]
    pub required: u32,
    /// How many webhooks vote.
    #[serde(default)]
    pub voters: u32,
    /// Whether the quorum was met, once delivery has ended.
    #[serde(default)]
    pub met: Option<bool>,
}

impl WebhookQuorum {
    /// A quorum of `required` out of `voters` voting webhooks.
    pub fn new(required: u32, voters: u32, met: Option<bool>) -> Self {
        Self { required, voters, met }
    }
}

/// A job spawned by another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChildJob {
    /// The child's id.
    pub job_id: String,
    /// Why it was spawned.
    pub relation: ChildRelation,
    /// Whether the child matched an earlier job with the same key (and so was not run again).
    #[serde(default)]
    pub duplicate: bool,
}

impl ChildJob {
    /// A child `job_id` spawned as `relation`.
    pub fn new(job_id: impl Into<String>, relation: ChildRelation, duplicate: bool) -> Self {
        Self { job_id: job_id.into(), relation, duplicate }
    }
}

/// Why a child job was spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChildRelation {
    /// The parent succeeded.
    OnSuccess,
    /// The parent failed.
    OnFailure,
    /// A relation this version does not know.
    #[serde(other)]
    Unknown,
}

impl ChildRelation {
    /// The wire name: `on_success`, `on_failure` (or `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnSuccess => "on_success",
            Self::OnFailure => "on_failure",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_status_answer_deserializes_with_the_rest_empty() {
        let body = r#"{"job_id":"a1","status":"in_flight","url":"https://x.test/","method":"GET","created_at":5}"#;
        let snapshot: JobSnapshot = serde_json::from_str(body).unwrap();
        assert_eq!(snapshot.status, JobStatus::Running);
        assert!(snapshot.attempts.is_empty() && snapshot.children.is_empty());
        let completed: JobStatus = serde_json::from_str(r#""completed""#).unwrap();
        assert_eq!(completed, JobStatus::Success);
        assert!(completed.is_finished());
    }

    #[test]
    fn unknown_enum_values_do_not_fail_the_answer() {
        let status: JobStatus = serde_json::from_str(r#""paused""#).unwrap();
        assert_eq!(status, JobStatus::Unknown);
        let outcome: AttemptOutcome = serde_json::from_str(r#""throttled""#).unwrap();
        assert_eq!(outcome, AttemptOutcome::Unknown);
        let relation: ChildRelation = serde_json::from_str(r#""on_timeout""#).unwrap();
        assert_eq!(relation, ChildRelation::Unknown);
    }

    #[test]
    fn a_snapshot_round_trips() {
        let at = |ms| crate::protocol::time::from_unix_ms(ms).unwrap();
        let mut snapshot = JobSnapshot::new("job_1_1", "https://x.test/a", "POST", at(10));
        snapshot.status = JobStatus::Success;
        let mut attempt = Attempt::new(1, "primary", "https://x.test/a", "iad", at(11));
        attempt.latency = Some(Duration::from_millis(7));
        snapshot.attempts.push(attempt);
        snapshot.children.push(ChildJob::new("job_1_2", ChildRelation::OnSuccess, false));
        let json = serde_json::to_string(&snapshot).unwrap();
        assert!(json.contains(r#""relation":"on_success""#) && json.contains(r#""outcome":"in_flight""#));
        assert!(json.contains(r#""created_at":10,"#) && json.contains(r#""started_at":11,"latency_ms":7,"#), "{json}");
        assert_eq!(serde_json::from_str::<JobSnapshot>(&json).unwrap(), snapshot);
        assert_eq!(snapshot.child(ChildRelation::OnSuccess).map(|c| c.job_id.as_str()), Some("job_1_2"));
    }
}
