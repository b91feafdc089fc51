//! The job: what EZThrottle executes (`docs/protocol.md` §2).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use http::Method;
use serde::{Deserialize, Serialize};

/// Headers of a job: forwarded to the target as written.
pub type Headers = BTreeMap<String, String>;

/// Free-form metadata echoed back in the webhook payload.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The metadata entry reserved for the FRUGAL children of a job EZThrottle runs: they
/// travel with the job and come back in its webhook, to run where it is received
/// ([`Continuation`](crate::step::Continuation)).
pub const LOCAL_STEPS_METADATA_KEY: &str = "ezthrottle_local_steps";

/// The field path of [`LOCAL_STEPS_METADATA_KEY`] in errors: `metadata.ezthrottle_local_steps`.
pub(crate) fn local_steps_field() -> String {
    format!("metadata.{LOCAL_STEPS_METADATA_KEY}")
}

/// One HTTP request for EZThrottle to execute, with everything that governs how.
///
/// The JSON form is snake_case at every depth and omits every field left at its default,
/// exactly as the Python SDK 1.3.0 builds it. Nested jobs (`fallback_job`, `on_success`,
/// `on_failure`) are the same type, so they can never drift to another casing.
///
/// Reading, it also accepts the camelCase names the official Node SDK writes inside nested
/// jobs (`fallbackJob`, `idempotentKey`, `onSuccess`, `onFailureTimeoutMs`, ...) and the Go
/// SDK writes for webhooks and retry policies (`hasQuorumVote`, `maxRetries`, ...), at every
/// depth; it always writes snake_case. The same field under both names is an error.
///
/// Most users build jobs through [`Step`](crate::Step); the fields are public so that
/// servers (such as `ezthrottle-local`) and tools can read and adjust them.
// `Debug` by hand: credential header values and the body stay out of logs (`redact`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Absolute `http`/`https` URL of the target.
    pub url: String,
    /// HTTP method, serialized upper-case (`post` is sent as `POST`). Defaults to `GET`.
    #[serde(default = "default_method", with = "method_serde")]
    pub method: Method,
    /// Request headers forwarded to the target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: Headers,
    /// Raw request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Echoed back in the webhook payload.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: Metadata,
    /// Where the result is delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// How many voting webhooks must answer 2xx for the delivery to count (default 1).
    #[serde(alias = "webhookQuorum", default = "default_quorum", skip_serializing_if = "is_default_quorum")]
    pub webhook_quorum: u32,
    /// Regions to execute in, e.g. `["iad", "lax"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// What to do when a region is down.
    #[serde(alias = "regionPolicy", default, skip_serializing_if = "is_default")]
    pub region_policy: RegionPolicy,
    /// How several regions execute.
    #[serde(alias = "executionMode", default, skip_serializing_if = "is_default")]
    pub execution_mode: ExecutionMode,
    /// Server-side retry and reroute policy.
    #[serde(alias = "retryPolicy", default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Do not execute before this instant (Unix milliseconds on the wire).
    #[serde(alias = "retryAt", default, skip_serializing_if = "Option::is_none", with = "super::time::unix_ms_opt")]
    pub retry_at: Option<SystemTime>,
    /// Deduplication key; absent means the server derives one (HASH strategy).
    #[serde(alias = "idempotentKey", default, skip_serializing_if = "Option::is_none")]
    pub idempotent_key: Option<String>,
    /// When this job runs as a fallback: the condition that fires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The next job in the fallback chain (it carries its own `trigger`).
    #[serde(alias = "fallbackJob", default, skip_serializing_if = "Option::is_none")]
    pub fallback_job: Option<Box<Job>>,
    /// Spawned as a new job when this one succeeds.
    #[serde(alias = "onSuccess", default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Box<Job>>,
    /// Spawned as a new job when this one fails.
    #[serde(alias = "onFailure", default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Box<Job>>,
    /// Run `on_failure` if this job has not succeeded within this time
    /// (`on_failure_timeout_ms` on the wire).
    #[serde(
        default,
        rename = "on_failure_timeout_ms",
        alias = "onFailureTimeoutMs",
        skip_serializing_if = "Option::is_none",
        with = "super::time::duration_ms_opt"
    )]
    pub on_failure_timeout: Option<Duration>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::redact::RedactedJob { job: self, extra: &[] }.fmt(f)
    }
}

impl Job {
    /// A `GET` of `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: Method::GET,
            headers: Headers::new(),
            body: None,
            metadata: Metadata::new(),
            webhooks: Vec::new(),
            webhook_quorum: 1,
            regions: Vec::new(),
            region_policy: RegionPolicy::default(),
            execution_mode: ExecutionMode::default(),
            retry_policy: None,
            retry_at: None,
            idempotent_key: None,
            trigger: None,
            fallback_job: None,
            on_success: None,
            on_failure: None,
            on_failure_timeout: None,
        }
    }

    /// The method upper-cased (`post` becomes `POST`), as it is sent.
    pub fn normalized_method(&self) -> Method {
        let name = self.method.as_str();
        if name.bytes().any(|b| b.is_ascii_lowercase()) {
            Method::from_bytes(name.to_ascii_uppercase().as_bytes()).unwrap_or_else(|_| self.method.clone())
        } else {
            self.method.clone()
        }
    }

    /// The jobs of the fallback chain, outermost first (not including `self`).
    pub fn fallback_chain(&self) -> impl Iterator<Item = &Job> {
        std::iter::successors(self.fallback_job.as_deref(), |job| job.fallback_job.as_deref())
    }

    /// Serializes the job to its wire JSON.
    pub fn to_json(&self) -> String {
        // A `Job` holds only strings, numbers and string-keyed maps: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("Job serialization is infallible"))
    }
}

/// A webhook that receives the job's result.
///
/// Its `Debug` redacts credential-like query parameters of the URL
/// ([`RedactedUrl`](super::redact::RedactedUrl)): a receiver's token often rides there.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Webhook {
    /// Absolute URL the result is POSTed to.
    pub url: String,
    /// Regions the delivery is made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Whether this webhook counts toward `webhook_quorum`. Always serialized, so the
    /// intent is explicit on the wire (the Python SDK sends it the same way).
    #[serde(alias = "hasQuorumVote", default = "default_true")]
    pub has_quorum_vote: bool,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &super::redact::RedactedUrl::new(&self.url))
            .field("regions", &self.regions)
            .field("has_quorum_vote", &self.has_quorum_vote)
            .finish()
    }
}

impl Webhook {
    /// A voting webhook at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), regions: Vec::new(), has_quorum_vote: true }
    }

    /// Deliver from these regions.
    #[must_use]
    pub fn regions<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.regions = regions.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this webhook counts toward the quorum (default `true`).
    #[must_use]
    pub fn has_quorum_vote(mut self, votes: bool) -> Self {
        self.has_quorum_vote = votes;
        self
    }
}

/// How a job with several regions executes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// Run in every region at once; the first 2xx wins and the others are cancelled.
    #[default]
    Race,
    /// Run in every region; all results count.
    Fanout,
}

/// What happens when a requested region is down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionPolicy {
    /// Route around a down region.
    #[default]
    Fallback,
    /// Fail the job.
    Strict,
}

/// Server-side retries: `retry_codes` retry in the same region, `reroute_codes` move on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries in the same region at most.
    #[serde(alias = "maxRetries", default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Moves to another region at most.
    #[serde(alias = "maxReroutes", default, skip_serializing_if = "Option::is_none")]
    pub max_reroutes: Option<u32>,
    /// Status codes retried in the same region.
    #[serde(alias = "retryCodes", default, skip_serializing_if = "Vec::is_empty")]
    pub retry_codes: Vec<u16>,
    /// Status codes that move the attempt to the next region.
    #[serde(alias = "rerouteCodes", default, skip_serializing_if = "Vec::is_empty")]
    pub reroute_codes: Vec<u16>,
}

impl RetryPolicy {
    /// An empty policy: the server's defaults apply.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` retries in the same region.
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// At most `n` moves to another region.
    #[must_use]
    pub fn max_reroutes(mut self, n: u32) -> Self {
        self.max_reroutes = Some(n);
        self
    }

    /// Status codes retried in the same region.
    #[must_use]
    pub fn retry_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.retry_codes = codes.into_iter().collect();
        self
    }

    /// Status codes that move to the next region.
    #[must_use]
    pub fn reroute_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.reroute_codes = codes.into_iter().collect();
        self
    }
}

/// When a fallback job runs.
///
/// On the wire: `{"type":"on_error","codes":[..]}`, `{"type":"on_timeout","timeout_ms":N}`
/// (whole milliseconds),
/// or `{}` for [`Trigger::Any`] (what the Python SDK sends for `.fallback(step)` without a
/// condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The previous job answered one of these status codes.
    OnError {
        /// The status codes that fire the fallback.
        codes: Vec<u16>,
    },
    /// The previous job had not answered within `timeout`.
    OnTimeout {
        /// How long to wait for the previous job.
        timeout: Duration,
    },
    /// The previous job failed in any way: an error status, a transport failure or a timeout.
    Any,
}

impl Trigger {
    /// Fires on any of these status codes.
    pub fn on_error(codes: impl IntoIterator<Item = u16>) -> Self {
        Self::OnError { codes: codes.into_iter().collect() }
    }

    /// Fires when the previous job has not answered within `timeout`.
    pub fn on_timeout(timeout: Duration) -> Self {
        Self::OnTimeout { timeout }
    }

    /// Fires on any failure of the previous job.
    pub fn any() -> Self {
        Self::Any
    }
}

impl Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::OnError { codes } => {
                map.serialize_entry("type", "on_error")?;
                map.serialize_entry("codes", codes)?;
            }
            Self::OnTimeout { timeout } => {
                map.serialize_entry("type", "on_timeout")?;
                map.serialize_entry("timeout_ms", &super::time::duration_to_ms(*timeout))?;
            }
            Self::Any => {}
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(rename = "type")]
            kind: Option<String>,
            codes: Option<Vec<u16>>,
            #[serde(alias = "timeoutMs")]
            timeout_ms: Option<u64>,
        }
        const KINDS: &[&str] = &["on_error", "on_timeout"];
        let raw = Raw::deserialize(deserializer)?;
        match raw.kind.as_deref() {
            Some("on_error") => Ok(Self::OnError { codes: raw.codes.ok_or_else(|| D::Error::missing_field("codes"))? }),
            Some("on_timeout") => {
                let timeout_ms = raw.timeout_ms.ok_or_else(|| D::Error::missing_field("timeout_ms"))?;
                Ok(Self::OnTimeout { timeout: Duration::from_millis(timeout_ms) })
            }
            Some(other) => Err(D::Error::unknown_variant(other, KINDS)),
            None if raw.codes.is_none() && raw.timeout_ms.is_none() => Ok(Self::Any),
            None => Err(D::Error::missing_field("type")),
        }
    }
}

fn default_method() -> Method {
    Method::GET
}

fn default_quorum() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

fn is_default_quorum(quorum: &u32) -> bool {
    *quorum == 1
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Serializes `http::Method` as its upper-case name; accepts any case on input.
pub(crate) mod method_serde {
    use http::Method;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(method: &Method, serializer: S) -> Result<S::Ok, S::Error> {
        let name = method.as_str();
        if name.bytes().any(|b| b.is_ascii_lowercase()) {
            serializer.serialize_str(&name.to_ascii_uppercase())
        } else {
            serializer.serialize_str(name)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Method, D::Error> {
        let name = String::deserialize(deserializer)?;
        Method::from_bytes(name.to_ascii_uppercase().as_bytes())
            .map_err(|_| D::Error::custom(format_args!("invalid HTTP method {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_have_three_wire_forms() {
        for (trigger, json) in [
            (Trigger::on_error([500, 502]), r#"{"type":"on_error","codes":[500,502]}"#),
            (Trigger::on_timeout(Duration::from_millis(250)), r#"{"type":"on_timeout","timeout_ms":250}"#),
            (Trigger::any(), "{}"),
        ] {
            assert_eq!(serde_json::to_string(&trigger).unwrap(), json);
            assert_eq!(serde_json::from_str::<Trigger>(json).unwrap(), trigger);
        }
    }

    #[test]
    fn instants_and_durations_keep_their_integer_wire_fields() {
        let mut job = Job::new("https://a.test/x");
        job.retry_at = super::super::time::from_unix_ms(1_763_674_210_055);
        job.on_failure_timeout = Some(Duration::from_millis(1500));
        let json = job.to_json();
        assert!(json.contains(r#""retry_at":1763674210055"#), "{json}");
        assert!(json.contains(r#""on_failure_timeout_ms":1500"#), "{json}");
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job);
        let far: Job = serde_json::from_str(r#"{"url":"https://a.test","retry_at":18446744073709551615}"#).unwrap();
        assert!(far.to_json().contains(r#""retry_at":18446744073709551615"#));
        assert!(serde_json::from_str::<Job>(r#"{"url":"https://a.test","retry_at":-1}"#).is_err());
    }

    #[test]
    fn the_other_sdks_spellings_read_as_the_same_job_and_write_as_snake_case() {
        let snake = r#"{"url":"https://a.test/1","webhook_quorum":2,"region_policy":"strict","execution_mode":"fanout",
            "retry_policy":{"max_retries":1,"max_reroutes":2,"retry_codes":[500],"reroute_codes":[503]},
            "retry_at":1700000000000,"idempotent_key":"k","on_failure_timeout_ms":5000,
            "webhooks":[{"url":"https://hook.test","has_quorum_vote":false}],
            "fallback_job":{"url":"https://a.test/2","trigger":{"type":"on_timeout","timeout_ms":300},
                "fallback_job":{"url":"https://a.test/3","trigger":{}}},
            "on_success":{"url":"https://a.test/4","idempotent_key":"child"},"on_failure":{"url":"https://a.test/5"}}"#;
        let camel = r#"{"url":"https://a.test/1","webhookQuorum":2,"regionPolicy":"strict","executionMode":"fanout",
            "retryPolicy":{"maxRetries":1,"maxReroutes":2,"retryCodes":[500],"rerouteCodes":[503]},
            "retryAt":1700000000000,"idempotentKey":"k","onFailureTimeoutMs":5000,
            "webhooks":[{"url":"https://hook.test","hasQuorumVote":false}],
            "fallbackJob":{"url":"https://a.test/2","trigger":{"type":"on_timeout","timeoutMs":300},
                "fallbackJob":{"url":"https://a.test/3","trigger":{}}},
            "onSuccess":{"url":"https://a.test/4","idempotentKey":"child"},"onFailure":{"url":"https://a.test/5"}}"#;
        let from_snake: Job = serde_json::from_str(snake).unwrap();
        let from_camel: Job = serde_json::from_str(camel).unwrap();
        assert_eq!(from_camel, from_snake);
        fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => map.iter().for_each(|(key, value)| {
                    out.push(key.clone());
                    keys(value, out);
                }),
                serde_json::Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
                _ => {}
            }
        }
        let mut written = Vec::new();
        keys(&serde_json::from_str(&from_camel.to_json()).unwrap(), &mut written);
        assert!(written.contains(&"on_failure_timeout_ms".to_owned()), "{written:?}");
        assert!(written.iter().all(|key| !key.chars().any(|c| c.is_ascii_uppercase())), "{written:?}");
        // One field under both names is refused, not silently resolved.
        let both = r#"{"url":"https://a.test","idempotent_key":"a","idempotentKey":"b"}"#;
        assert!(serde_json::from_str::<Job>(both).unwrap_err().to_string().contains("duplicate field"));
    }

    #[test]
    fn malformed_triggers_name_what_is_wrong() {
        let error = |json: &str| serde_json::from_str::<Trigger>(json).unwrap_err().to_string();
        assert!(error(r#"{"type":"on_fire"}"#).starts_with("unknown variant `on_fire`"));
        assert!(error(r#"{"type":"on_error"}"#).starts_with("missing field `codes`"));
        assert!(error(r#"{"codes":[500]}"#).starts_with("missing field `type`"));
        assert!(error(r#"{"type":"on_timeout","timeout_ms":1,"extra":1}"#).contains("unknown field `extra`"));
    }
}
