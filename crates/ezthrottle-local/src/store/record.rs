//! A job as the engine keeps it: the submitted [`Job`] plus its progress.

use std::sync::{Arc, Mutex, MutexGuard};

use ezthrottle_core::protocol::{Job, TargetResponse};
use serde_json::{Value, json};

use crate::util::lock;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Accepted, waiting for its turn at the target host (or for `retry_at`).
    Queued,
    /// Being executed (attempts, retries, fallbacks).
    Running,
    /// Finished: the target answered 2xx.
    Success,
    /// Finished: every attempt failed.
    Failed,
}

impl JobStatus {
    /// The wire name: `queued`, `running`, `success` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    /// Whether the job has finished (`success` or `failed`).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    InFlight,
    Success,
    Retry,
    Reroute,
    Failed,
    Cancelled,
}

impl AttemptOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Success => "success",
            Self::Retry => "retry",
            Self::Reroute => "reroute",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

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

/// The state of one webhook's delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryOutcome {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One POST to a webhook.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryAttempt {
    pub(crate) at_ms: u64,
    pub(crate) latency_ms: u64,
    pub(crate) status_code: Option<u16>,
    pub(crate) error: Option<String>,
}

/// Every POST to one webhook.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRecord {
    pub(crate) url: String,
    pub(crate) has_quorum_vote: bool,
    pub(crate) outcome: DeliveryOutcome,
    pub(crate) attempts: Vec<DeliveryAttempt>,
}

/// A job spawned by this one (`on_success` / `on_failure`).
#[derive(Debug, Clone)]
pub(crate) struct ChildRef {
    pub(crate) job_id: String,
    pub(crate) relation: &'static str,
    pub(crate) duplicate: bool,
}

/// Progress details, allocated only once the job starts (keeps queued jobs small).
#[derive(Debug, Default)]
pub(crate) struct Detail {
    pub(crate) attempts: Vec<AttemptRecord>,
    pub(crate) response: Option<TargetResponse>,
    pub(crate) error: Option<String>,
    pub(crate) deliveries: Vec<DeliveryRecord>,
    pub(crate) quorum_met: Option<bool>,
    pub(crate) children: Vec<ChildRef>,
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

    /// The JSON answered by `GET /api/v1/jobs/{id}`.
    pub fn snapshot(&self) -> Value {
        let state = self.state();
        let detail = state.detail_ref();
        let attempts: Vec<Value> = detail
            .map(|d| {
                d.attempts
                    .iter()
                    .enumerate()
                    .map(|(index, a)| {
                        json!({
                            "attempt": index + 1,
                            "job": &*a.job_path,
                            "url": &*a.url,
                            "region": &*a.region,
                            "started_at": a.started_at_ms,
                            "latency_ms": a.latency_ms,
                            "status_code": a.status_code,
                            "error": a.error,
                            "outcome": a.outcome.as_str(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let webhooks: Vec<Value> = detail
            .map(|d| {
                d.deliveries
                    .iter()
                    .map(|w| {
                        json!({
                            "url": w.url,
                            "has_quorum_vote": w.has_quorum_vote,
                            "outcome": w.outcome.as_str(),
                            "attempts": w.attempts.iter().map(|a| json!({
                                "at": a.at_ms,
                                "latency_ms": a.latency_ms,
                                "status_code": a.status_code,
                                "error": a.error,
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let children: Vec<Value> = detail
            .map(|d| {
                d.children
                    .iter()
                    .map(|c| json!({"job_id": c.job_id, "relation": c.relation, "duplicate": c.duplicate}))
                    .collect()
            })
            .unwrap_or_default();
        let nonzero = |ms: u64| if ms == 0 { None } else { Some(ms) };
        json!({
            "job_id": &*self.id,
            "status": state.status.as_str(),
            "idempotent_key": &*self.idempotent_key,
            "url": self.job.url,
            "method": self.job.method.as_str(),
            "regions": self.job.regions,
            "execution_mode": self.job.execution_mode,
            "region_policy": self.job.region_policy,
            "created_at": self.accepted_at_ms,
            "started_at": nonzero(state.started_at_ms),
            "finished_at": nonzero(state.finished_at_ms),
            "attempts": attempts,
            "response": detail.and_then(|d| d.response.as_ref()),
            "error": detail.and_then(|d| d.error.as_ref()),
            "events": detail.map(|d| d.events.clone()).unwrap_or_default(),
            "webhooks": webhooks,
            "webhook_quorum": {
                "required": self.job.webhook_quorum,
                "voters": self.job.webhooks.iter().filter(|w| w.has_quorum_vote).count(),
                "met": detail.and_then(|d| d.quorum_met),
            },
            "children": children,
        })
    }
}
