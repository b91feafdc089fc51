//! What EZThrottle answers to a submission (`docs/protocol.md` §2.3).

use serde::{Deserialize, Serialize};

/// The answer to a job submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SubmitReceipt {
    /// The job's id, e.g. `job_1763674210055_853341`. For a duplicate, the original job's id.
    pub job_id: String,
    /// `queued`, or `racing` for a multi-region race.
    pub status: SubmissionStatus,
    /// The key the server deduplicated on. Server-generated keys may contain `:` and `/`:
    /// never assume they are URL-safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_key: Option<String>,
    /// Whether this submission matched an earlier job with the same key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

impl SubmitReceipt {
    /// A receipt for a newly queued job.
    pub fn new(job_id: impl Into<String>, status: SubmissionStatus) -> Self {
        Self { job_id: job_id.into(), status, idempotent_key: None, duplicate: false }
    }

    /// Sets the idempotency key the server used.
    #[must_use]
    pub fn with_idempotent_key(mut self, key: impl Into<String>) -> Self {
        self.idempotent_key = Some(key.into());
        self
    }

    /// Marks the receipt as answering a duplicate submission.
    #[must_use]
    pub fn with_duplicate(mut self, duplicate: bool) -> Self {
        self.duplicate = duplicate;
        self
    }
}

/// The state a job is in when its submission is answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum SubmissionStatus {
    /// Waiting for its turn at the target host.
    Queued,
    /// Several regions are racing to execute it.
    Racing,
    /// A status this version does not know, kept verbatim.
    Other(String),
}

impl SubmissionStatus {
    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Queued => "queued",
            Self::Racing => "racing",
            Self::Other(other) => other,
        }
    }
}

impl From<String> for SubmissionStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "queued" => Self::Queued,
            "racing" => Self::Racing,
            _ => Self::Other(value),
        }
    }
}

impl From<SubmissionStatus> for String {
    fn from(value: SubmissionStatus) -> Self {
        match value {
            SubmissionStatus::Other(other) => other,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for SubmissionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
