//! The events of a job, as `GET /api/v1/jobs/{id}/events` streams them (server-sent
//! events, `docs/protocol.md` §5.1).
//!
//! Every event but `position` is derived from the job's saved history ([`JobSnapshot`]),
//! with an id that names its place in it: the same job gives the same ids on any replica,
//! and a client that reconnects with `Last-Event-ID` gets exactly what came after.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::job_snapshot::{Attempt, AttemptOutcome, JobSnapshot, JobStatus};

/// What happened, with the self-hosted peers' event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobEventKind {
    /// Accepted and waiting for its turn.
    Queued,
    /// Its place in its host's queue (not part of the history: sent without an id).
    Position,
    /// An attempt was sent to the target.
    Dispatching,
    /// An attempt failed; the job tries again in the same region.
    Retrying,
    /// An attempt failed; the job goes on in another region or with a fallback job.
    Rerouted,
    /// The job finished with a 2xx answer.
    Completed,
    /// The job finished without one.
    Failed,
    /// An event this version does not know.
    #[serde(other)]
    Unknown,
}

impl JobEventKind {
    /// The SSE event name: `queued`, `position`, `dispatching`, `retrying`, `rerouted`,
    /// `completed`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Position => "position",
            Self::Dispatching => "dispatching",
            Self::Retrying => "retrying",
            Self::Rerouted => "rerouted",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    /// The kind named `name` (`Unknown` for a name this version does not know).
    pub fn from_name(name: &str) -> Self {
        match name {
            "queued" => Self::Queued,
            "position" => Self::Position,
            "dispatching" => Self::Dispatching,
            "retrying" => Self::Retrying,
            "rerouted" => Self::Rerouted,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => Self::Unknown,
        }
    }

    /// Whether the job's stream ends with this event.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One event of a job's stream: the SSE `data` is this as JSON, without `id` and `kind`
/// (they are the SSE `id` and `event` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobEvent {
    /// Its place in the job's history; ids only grow. `None` for `position`.
    #[serde(skip)]
    pub id: Option<u64>,
    /// What happened.
    #[serde(skip, default = "unknown_kind")]
    pub kind: JobEventKind,
    /// The job.
    pub job_id: String,
    /// The attempt it is about (1 for the first), for `dispatching`, `retrying`,
    /// `rerouted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The region of that attempt (for `rerouted`: the region it failed in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The target's status code: of the failed attempt, or of the final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why the attempt or the job failed without an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `position`: how many jobs are ahead of this one at its host, plus one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// When it happened (Unix milliseconds on the wire).
    #[serde(default, with = "super::time::unix_ms_opt", skip_serializing_if = "Option::is_none")]
    pub at: Option<SystemTime>,
}

fn unknown_kind() -> JobEventKind {
    JobEventKind::Unknown
}

impl JobEvent {
    /// An event of `kind` about `job_id`, with no detail.
    pub fn new(id: Option<u64>, kind: JobEventKind, job_id: impl Into<String>) -> Self {
        Self {
            id,
            kind,
            job_id: job_id.into(),
            attempt: None,
            region: None,
            status_code: None,
            error: None,
            position: None,
            at: None,
        }
    }

    /// A `position` event: `position` - 1 jobs are ahead of this one at its host.
    pub fn position(job_id: impl Into<String>, position: u64) -> Self {
        Self { position: Some(position), ..Self::new(None, JobEventKind::Position, job_id) }
    }

    /// Every event the history `snapshot` holds, in order. Attempt `n` (1-based) is
    /// `dispatching` with id `2n` and, once it failed and the job goes on, `retrying` or
    /// `rerouted` with id `2n + 1`; the job's end is `completed` or `failed` with the id
    /// after its last attempt's; `queued` is id 1.
    pub fn history(snapshot: &JobSnapshot) -> Vec<Self> {
        let job_id = snapshot.job_id.as_str();
        let mut events =
            vec![Self { at: Some(snapshot.created_at), ..Self::new(Some(1), JobEventKind::Queued, job_id) }];
        let attempts = &snapshot.attempts;
        for (index, attempt) in attempts.iter().enumerate() {
            let n = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
            events.push(Self {
                attempt: Some(attempt.attempt),
                region: Some(attempt.region.clone()),
                at: Some(attempt.started_at),
                ..Self::new(Some(n.saturating_mul(2)), JobEventKind::Dispatching, job_id)
            });
            if let Some(kind) = after_attempt(attempt, attempts.get(index.saturating_add(1))) {
                events.push(Self {
                    attempt: Some(attempt.attempt),
                    region: Some(attempt.region.clone()),
                    status_code: attempt.status_code,
                    error: attempt.error.clone(),
                    at: attempt.latency.and_then(|latency| attempt.started_at.checked_add(latency)),
                    ..Self::new(Some(n.saturating_mul(2).saturating_add(1)), kind, job_id)
                });
            }
        }
        let end = match snapshot.status {
            JobStatus::Success => Some(JobEventKind::Completed),
            JobStatus::Failed => Some(JobEventKind::Failed),
            _ => None,
        };
        if let Some(kind) = end {
            let last = u64::try_from(attempts.len()).unwrap_or(u64::MAX);
            events.push(Self {
                status_code: snapshot.response.as_ref().map(|response| response.status_code),
                error: snapshot.error.clone(),
                at: snapshot.finished_at,
                ..Self::new(Some(last.saturating_mul(2).saturating_add(2)), kind, job_id)
            });
        }
        events
    }
}

/// What an attempt that ended led to: `None` while it runs, when it won, and when it was
/// the job's last (the job's end says it).
fn after_attempt(attempt: &Attempt, next: Option<&Attempt>) -> Option<JobEventKind> {
    match attempt.outcome {
        AttemptOutcome::InFlight | AttemptOutcome::Success | AttemptOutcome::Cancelled => None,
        AttemptOutcome::Retry => Some(JobEventKind::Retrying),
        AttemptOutcome::Reroute => Some(JobEventKind::Rerouted),
        // Interrupted or failed, with more to come: where the next attempt goes says which.
        _ => next.map(|next| {
            if next.region == attempt.region && next.job == attempt.job {
                JobEventKind::Retrying
            } else {
                JobEventKind::Rerouted
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn attempt(n: u32, job: &str, region: &str, outcome: AttemptOutcome) -> Attempt {
        let mut attempt = Attempt::new(n, job, "https://api.test/x", region, at(u64::from(n) * 100));
        attempt.outcome = outcome;
        attempt
    }

    fn kinds(snapshot: &JobSnapshot) -> Vec<(Option<u64>, &'static str)> {
        JobEvent::history(snapshot).iter().map(|event| (event.id, event.kind.as_str())).collect()
    }

    #[test]
    fn a_retried_then_rerouted_job_tells_each_step_with_growing_ids() {
        let mut snapshot = JobSnapshot::new("job_1", "https://api.test/x", "GET", at(0));
        assert_eq!(kinds(&snapshot), [(Some(1), "queued")]);
        snapshot.status = JobStatus::Running;
        snapshot.attempts.push(attempt(1, "primary", "us", AttemptOutcome::InFlight));
        assert_eq!(kinds(&snapshot), [(Some(1), "queued"), (Some(2), "dispatching")]);
        snapshot.attempts[0].outcome = AttemptOutcome::Retry;
        snapshot.attempts.push(attempt(2, "primary", "us", AttemptOutcome::Reroute));
        snapshot.attempts.push(attempt(3, "primary", "eu", AttemptOutcome::Failed));
        snapshot.attempts.push(attempt(4, "fallback 1", "eu", AttemptOutcome::Success));
        snapshot.status = JobStatus::Success;
        let all = kinds(&snapshot);
        assert_eq!(
            all,
            [
                (Some(1), "queued"),
                (Some(2), "dispatching"),
                (Some(3), "retrying"),
                (Some(4), "dispatching"),
                (Some(5), "rerouted"),
                (Some(6), "dispatching"),
                (Some(7), "rerouted"),
                (Some(8), "dispatching"),
                (Some(10), "completed"),
            ]
        );
        // What a client saw before is a prefix of what it sees now.
        assert!(all.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn the_last_failed_attempt_leaves_the_word_to_the_end_of_the_job() {
        let mut snapshot = JobSnapshot::new("job_2", "https://api.test/x", "GET", at(0));
        snapshot.attempts.push(attempt(1, "primary", "us", AttemptOutcome::Failed));
        snapshot.status = JobStatus::Running;
        assert_eq!(kinds(&snapshot), [(Some(1), "queued"), (Some(2), "dispatching")]);
        snapshot.status = JobStatus::Failed;
        snapshot.error = Some("503 three times".into());
        let events = JobEvent::history(&snapshot);
        let last = events.last().expect("an end");
        assert_eq!(
            (last.id, last.kind, last.error.as_deref()),
            (Some(4), JobEventKind::Failed, Some("503 three times"))
        );
    }

    #[test]
    fn the_data_is_snake_case_json_without_the_sse_fields() {
        let mut event = JobEvent::new(Some(3), JobEventKind::Retrying, "job_3");
        event.attempt = Some(1);
        event.status_code = Some(503);
        event.at = Some(at(1_700));
        let json = serde_json::to_value(&event).expect("json");
        assert_eq!(json, serde_json::json!({"job_id": "job_3", "attempt": 1, "status_code": 503, "at": 1_700}));
        let back: JobEvent = serde_json::from_value(json).expect("back");
        assert_eq!((back.job_id.as_str(), back.kind, back.id), ("job_3", JobEventKind::Unknown, None));
        assert_eq!(JobEventKind::from_name("rerouted"), JobEventKind::Rerouted);
    }
}
