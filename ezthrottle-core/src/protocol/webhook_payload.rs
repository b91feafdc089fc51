//! The body EZThrottle POSTs to webhooks (`docs/protocol.md` §3).

use serde::{Deserialize, Serialize};

use super::job::{Headers, Metadata};

/// A webhook delivery: the result of one job.
///
/// Delivery is at least once: the same payload may arrive twice.
///
/// Its `Debug` shows the metadata without the FRUGAL steps it may carry
/// ([`RedactedMetadata`](super::redact::RedactedMetadata)).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookPayload {
    /// The job this result belongs to.
    pub job_id: String,
    /// The job's idempotency key (server-generated keys may contain `:` and `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_key: Option<String>,
    /// `success` or `failed`.
    pub status: DeliveryStatus,
    /// The target's final answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<TargetResponse>,
    /// The job's metadata, echoed back.
    #[serde(default)]
    pub metadata: Metadata,
    /// Why the job failed, when it did without an answer from the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl std::fmt::Debug for WebhookPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookPayload")
            .field("job_id", &self.job_id)
            .field("idempotent_key", &self.idempotent_key)
            .field("status", &self.status)
            .field("response", &self.response)
            .field("metadata", &super::redact::RedactedMetadata(&self.metadata))
            .field("error", &self.error)
            .finish()
    }
}

impl WebhookPayload {
    /// A payload for `job_id` with the given outcome.
    pub fn new(job_id: impl Into<String>, status: DeliveryStatus) -> Self {
        Self {
            job_id: job_id.into(),
            idempotent_key: None,
            status,
            response: None,
            metadata: Metadata::new(),
            error: None,
        }
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn with_idempotent_key(mut self, key: impl Into<String>) -> Self {
        self.idempotent_key = Some(key.into());
        self
    }

    /// Sets the target's answer.
    #[must_use]
    pub fn with_response(mut self, response: TargetResponse) -> Self {
        self.response = Some(response);
        self
    }

    /// Sets the echoed metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the failure reason.
    #[must_use]
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// The outcome of a job as delivered to webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The target answered 2xx.
    Success,
    /// Every attempt failed.
    Failed,
}

/// An HTTP answer from a target, as carried in payloads and proxy answers.
///
/// Its `Debug` shows the header names without the value of `Set-Cookie` (nor of the
/// request credential headers, should a target echo them) and the body's length without
/// its text: an answer may hold one end user's session or data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetResponse {
    /// The HTTP status code.
    pub status_code: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: Headers,
    /// Response body as text.
    #[serde(default)]
    pub body: String,
}

impl std::fmt::Debug for TargetResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::redact::{BodyLen, RedactedHeaders, response_credential_headers};
        f.debug_struct("TargetResponse")
            .field("status_code", &self.status_code)
            .field(
                "headers",
                &RedactedHeaders::new(&self.headers).with_credential_headers(response_credential_headers()),
            )
            .field("body", &BodyLen::of(&self.body))
            .finish()
    }
}

impl TargetResponse {
    /// A response with this status, headers and body.
    pub fn new(status_code: u16, headers: Headers, body: impl Into<String>) -> Self {
        Self { status_code, headers, body: body.into() }
    }
}
