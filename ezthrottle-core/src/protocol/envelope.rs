//! The TrackTags proxy envelope and its answers (`docs/protocol.md` §1.1).

use serde::{Deserialize, Serialize};

use super::job::Headers;
use super::redact::{BodyLen, RedactedHeaders};
use super::webhook_payload::TargetResponse;

/// The body of `POST /api/v1/proxy`: a request for the proxy to make on the caller's behalf.
///
/// Its `Debug` shows header names without the values of credential headers, and the body's
/// length only (the body is a job, with the job's own headers).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProxyEnvelope {
    /// Always `customer` for SDK calls (the proxy overrides it from the key).
    pub scope: String,
    /// Empty: check every plan limit.
    #[serde(default)]
    pub metric_name: String,
    /// The EZThrottle URL the proxy forwards to.
    pub target_url: String,
    /// The forwarded method.
    #[serde(default = "default_method")]
    pub method: String,
    /// The forwarded headers.
    #[serde(default)]
    pub headers: Headers,
    /// The forwarded body: the inner JSON *as a string*, or `""`.
    #[serde(default)]
    pub body: String,
}

impl std::fmt::Debug for ProxyEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyEnvelope")
            .field("scope", &self.scope)
            .field("metric_name", &self.metric_name)
            .field("target_url", &self.target_url)
            .field("method", &self.method)
            .field("headers", &RedactedHeaders::new(&self.headers))
            .field("body", &BodyLen::of(&self.body))
            .finish_non_exhaustive()
    }
}

fn default_method() -> String {
    "GET".to_owned()
}

impl ProxyEnvelope {
    /// An envelope carrying `body` to `target_url` with `method`.
    ///
    /// A non-empty body is labelled `Content-Type: application/json`; an empty one
    /// carries no headers (as every peer SDK sends it).
    pub fn new(target_url: impl Into<String>, method: &str, body: String) -> Self {
        let mut headers = Headers::new();
        if !body.is_empty() {
            headers.insert("Content-Type".into(), "application/json".into());
        }
        Self {
            scope: "customer".into(),
            metric_name: String::new(),
            target_url: target_url.into(),
            method: method.to_owned(),
            headers,
            body,
        }
    }
}

/// The proxy's 200 answer: the request was allowed and forwarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProxyAllowed {
    /// `allowed`.
    pub status: String,
    /// The proxy's plan-limit bookkeeping, passed through untouched.
    #[serde(default)]
    pub breach_status: serde_json::Value,
    /// EZThrottle's own answer, including its errors.
    pub forwarded_response: TargetResponse,
}

impl ProxyAllowed {
    /// An `allowed` answer carrying `forwarded_response`.
    pub fn new(forwarded_response: TargetResponse) -> Self {
        Self {
            status: "allowed".into(),
            breach_status: serde_json::json!({
                "is_breached": false, "current_usage": 0.0, "limit_value": 0.0,
                "limit_operator": "gte", "breach_action": "allow"
            }),
            forwarded_response,
        }
    }
}

/// The body of an error answer from the proxy or from EZThrottle.
///
/// Every field is optional: the peers each fill a different subset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// `denied` for a plan-limit denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Short error name, e.g. `Plan limit exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Longer explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Retry instant, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// Seconds to wait (plan limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Seconds to wait (IP limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl ErrorBody {
    /// `{"error": error}`.
    pub fn new(error: impl Into<String>) -> Self {
        Self { error: Some(error.into()), ..Self::default() }
    }

    /// The most specific human text the body carries.
    pub fn text(&self) -> Option<&str> {
        match (self.error.as_deref(), self.message.as_deref()) {
            (Some(error), Some(message)) if error != message && !message.is_empty() => Some(message),
            (Some(error), _) => Some(error),
            (None, message) => message,
        }
    }
}
