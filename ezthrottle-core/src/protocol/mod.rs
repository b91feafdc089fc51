//! The wire types of EZThrottle, shared by the client and the local engine.
//!
//! Every type serializes snake_case at every depth and omits fields left at their
//! default, matching what the Python SDK 1.3.0 sends (`docs/protocol.md` in the repository).

mod envelope;
pub mod headers;
mod job;
pub(crate) use job::local_steps_field;
mod job_events;
mod job_snapshot;
mod pace;
mod receipt;
pub mod redact;
mod retry_after;
mod secrets;
pub mod time;
mod validate;
mod webhook_payload;

pub use envelope::{ErrorBody, ProxyAllowed, ProxyEnvelope};
pub use job::{
    ExecutionMode, Headers, Job, LOCAL_STEPS_METADATA_KEY, Metadata, RegionPolicy, RetryPolicy, Trigger, Webhook,
};
pub use job_events::{JobEvent, JobEventKind};
pub use job_snapshot::{
    Attempt, AttemptOutcome, ChildJob, ChildRelation, DeliveryAttempt, DeliveryOutcome, JobList, JobSnapshot,
    JobStatus, WebhookDeliveries, WebhookQuorum,
};
pub use pace::{AnnouncedPace, InvalidPace, Pace, lane_key, lane_key_of_uri, lane_key_of_url};
pub use receipt::{SubmissionStatus, SubmitReceipt};
pub use retry_after::{MAX_RETRY_AT_HORIZON, parse_retry_after, retry_after_delay, retry_at_from, retry_at_within};
pub use secrets::{
    CreateWebhookSecrets, MIN_SECRET_LEN, StatusMessage, WeakSecret, WebhookSecretsView, check_secret, mask_secret,
};
pub use validate::{InvalidJob, MAX_JOB_DEPTH, SUPPORTED_METHODS, check_absolute_url};
pub use webhook_payload::{DeliveryStatus, TargetResponse, WebhookPayload};

/// Paths of the EZThrottle HTTP API.
pub mod paths {
    /// Job submission.
    pub const JOBS: &str = "/api/v1/jobs";
    /// Webhook-secret management.
    pub const WEBHOOK_SECRETS: &str = "/api/v1/webhook-secrets";
    /// The TrackTags proxy.
    pub const PROXY: &str = "/api/v1/proxy";
}

/// The signature header, also at the root of the module (where the webhook code has always
/// found it).
pub use headers::SIGNATURE_HEADER;
