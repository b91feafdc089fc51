//! The `Step` builder: one request, how it runs, and what follows it.

mod carried;
mod frugal;
mod key;
mod outcome;
mod request;

use std::time::{Duration, SystemTime};

use http::Method;
use serde::{Deserialize, Serialize};

pub(crate) use carried::check_carried;
pub use carried::{Continuation, MAX_CARRIED_LOCAL_TIMEOUT};
pub use frugal::MAX_LOCAL_BODY_BYTES;
pub use key::credential_key;
pub use outcome::{LocalFailure, LocalResponse, StepOutcome, StepResult};

use crate::client::EZThrottle;
use crate::error::Error;
use crate::protocol::headers::IDEMPOTENCY_KEY_HEADERS;
use crate::protocol::redact::RedactedJob;
use crate::protocol::{
    ExecutionMode, Job, LOCAL_STEPS_METADATA_KEY, Metadata, RegionPolicy, RetryPolicy, Trigger, Webhook,
};
use crate::replay::{CallFailure, ReplayPolicy, is_blank_key};

/// Where a step runs first (`"performance"` / `"frugal"` in a carried step).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    /// Submit to EZThrottle straight away (the default, as in the Python and Node SDKs).
    #[default]
    Performance,
    /// Run the request here first; forward to EZThrottle only when it fails with a
    /// status of [`Step::fallback_on_error`], a transport error or a timeout.
    Frugal,
}

/// How the idempotency key of a job is chosen when the caller sets none.
///
/// One default for every entry point ([`Step`], [`ForwardToEZThrottle`](crate::ForwardToEZThrottle),
/// the tower `ForwardLayer` and `ForwardMiddleware`, `#[auto_forward]`). An explicit key
/// ([`Step::idempotent_key`], or a forwarded request's `Idempotency-Key` header) always wins.
///
/// Why [`CredentialHash`](Self::CredentialHash) is the default: EZThrottle's own derivation
/// ([`Hash`](Self::Hash)) covers URL, method, body and the *account*, not the end user. Two
/// users of one backend calling `GET /me` with their own tokens would become one job, run
/// with the first user's token, and the second would receive the first user's data. The
/// SDK's key adds the credential headers, so two users never share a job, while the same
/// user repeating the same call within EZThrottle's idempotency window (its idempotency
/// TTL) is still one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdempotentStrategy {
    /// The SDK computes the key ([`credential_key`]): SHA-256 over the method, the full URL
    /// (query included), the body and the credential headers (`Authorization`,
    /// `Proxy-Authorization`, `Cookie`, `X-Api-Key`, plus those named with
    /// [`Step::credential_header`]). The default.
    #[default]
    CredentialHash,
    /// Send no key: EZThrottle derives one from (url, method, body, account), so identical
    /// requests of *all* callers of the account are one job (what the Python SDK does).
    Hash,
    /// Send a fresh UUID v4 on every execution, so repeats are new jobs (polling, pings).
    Unique,
}

/// Codes that make a FRUGAL step fall back to EZThrottle, unless changed.
pub const DEFAULT_FALLBACK_ON_ERROR: [u16; 5] = [429, 500, 502, 503, 504];
/// How long a FRUGAL step waits for its local request, unless changed.
pub const DEFAULT_LOCAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A request and the workflow around it, built fluently and run with [`Step::execute`].
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_core::{Method, Step, StepType, Trigger, Webhook};
///
/// let step = Step::new("https://api.example.com/charge")
///     .method(Method::POST)
///     .body(r#"{"amount":100}"#)
///     .step_type(StepType::Frugal)
///     .webhook(Webhook::new("https://app.example.com/webhook"))
///     .fallback(Step::new("https://backup.example.com/charge"), Trigger::on_error([500, 502]))
///     .on_success(Step::new("https://api.example.com/receipt").idempotent_key("receipt-1"));
/// let job = step.to_job();
/// assert_eq!(job.fallback_job.as_ref().map(|f| f.url.as_str()), Some("https://backup.example.com/charge"));
/// ```
///
/// `Step` is the one place job options are set: [`ForwardToEZThrottle`](crate::ForwardToEZThrottle)
/// wraps one, and the tower `ForwardLayer` / `ForwardMiddleware` hold one as the template
/// of every job they forward.
// `Debug` by hand: the request's credential header values (including the step's own
// `credential_header` names) and its body stay out of logs (`protocol::redact`).
#[derive(Clone, PartialEq)]
#[must_use]
pub struct Step {
    /// The request fields; nested jobs are built from the fields below.
    request: Job,
    step_type: StepType,
    idempotent_strategy: IdempotentStrategy,
    credential_headers: Vec<String>,
    replay: ReplayPolicy,
    fallback_on_error: Vec<u16>,
    local_timeout: Duration,
    fallbacks: Vec<(Step, Trigger)>,
    on_success: Option<Box<Step>>,
    on_failure: Option<Box<Step>>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("request", &RedactedJob { job: &self.request, extra: &self.credential_headers })
            .field("step_type", &self.step_type)
            .field("idempotent_strategy", &self.idempotent_strategy)
            .field("credential_headers", &self.credential_headers)
            .field("replay", &self.replay)
            .field("fallback_on_error", &self.fallback_on_error)
            .field("local_timeout", &self.local_timeout)
            .field("fallbacks", &self.fallbacks)
            .field("on_success", &self.on_success)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

impl Step {
    /// A `GET` of `url`, PERFORMANCE, [`IdempotentStrategy::CredentialHash`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            request: Job::new(url),
            step_type: StepType::default(),
            idempotent_strategy: IdempotentStrategy::default(),
            credential_headers: Vec::new(),
            replay: ReplayPolicy::default(),
            fallback_on_error: DEFAULT_FALLBACK_ON_ERROR.to_vec(),
            local_timeout: DEFAULT_LOCAL_TIMEOUT,
            fallbacks: Vec::new(),
            on_success: None,
            on_failure: None,
        }
    }

    /// FRUGAL or PERFORMANCE.
    pub fn step_type(mut self, step_type: StepType) -> Self {
        self.step_type = step_type;
        self
    }

    /// The target URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.request.url = url.into();
        self
    }

    /// The HTTP method (default `GET`).
    pub fn method(mut self, method: Method) -> Self {
        self.request.method = method;
        self
    }

    /// Replaces the request headers.
    pub fn headers<I, K, V>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.request.headers = headers.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// Adds one request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.headers.insert(name.into(), value.into());
        self
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.request.body = Some(body.into());
        self
    }

    /// Replaces the metadata echoed back in the webhook.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.request.metadata = metadata;
        self
    }

    /// Adds one metadata entry.
    pub fn metadata_entry(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.request.metadata.insert(key.into(), value.into());
        self
    }

    /// Replaces the webhooks.
    pub fn webhooks(mut self, webhooks: impl IntoIterator<Item = Webhook>) -> Self {
        self.request.webhooks = webhooks.into_iter().collect();
        self
    }

    /// Adds one webhook.
    pub fn webhook(mut self, webhook: Webhook) -> Self {
        self.request.webhooks.push(webhook);
        self
    }

    /// How many voting webhooks must answer 2xx (default 1).
    pub fn webhook_quorum(mut self, quorum: u32) -> Self {
        self.request.webhook_quorum = quorum;
        self
    }

    /// Regions to execute in.
    pub fn regions<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.regions = regions.into_iter().map(Into::into).collect();
        self
    }

    /// What to do when a region is down (default [`RegionPolicy::Fallback`]).
    pub fn region_policy(mut self, policy: RegionPolicy) -> Self {
        self.request.region_policy = policy;
        self
    }

    /// How several regions execute (default [`ExecutionMode::Race`]).
    pub fn execution_mode(mut self, mode: ExecutionMode) -> Self {
        self.request.execution_mode = mode;
        self
    }

    /// The server-side retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.request.retry_policy = Some(policy);
        self
    }

    /// Do not execute before this instant (e.g. from the target's `Retry-After`).
    pub fn retry_at(mut self, at: SystemTime) -> Self {
        self.request.retry_at = Some(at);
        self
    }

    /// An explicit idempotency key (wins over the strategy).
    pub fn idempotent_key(mut self, key: impl Into<String>) -> Self {
        self.request.idempotent_key = Some(key.into());
        self
    }

    /// How the key is chosen when none is set (default [`IdempotentStrategy::CredentialHash`]).
    pub fn idempotent_strategy(mut self, strategy: IdempotentStrategy) -> Self {
        self.idempotent_strategy = strategy;
        self
    }

    /// Adds a request header that identifies the caller (a tenant id, a session header) to
    /// those the computed key covers ([`IdempotentStrategy::CredentialHash`]).
    pub fn credential_header(mut self, name: impl Into<String>) -> Self {
        self.credential_headers.push(name.into());
        self
    }

    /// Which failed calls of this request may be run again by EZThrottle (default
    /// [`ReplayPolicy::WhenSafe`]; see [`replay`](crate::replay) for the rule and its
    /// table). Held by the templates of the tower `ForwardLayer` and `ForwardMiddleware`
    /// too, so one setting governs every entry point.
    pub fn replay(mut self, policy: ReplayPolicy) -> Self {
        self.replay = policy;
        self
    }

    /// The [`ReplayPolicy`] of this step.
    pub fn replay_policy(&self) -> ReplayPolicy {
        self.replay
    }

    /// Whether this step's request, failed with `failure`, may be run again by EZThrottle:
    /// its [`ReplayPolicy`] applied to its method and its `Idempotency-Key` header.
    pub fn may_replay(&self, failure: CallFailure) -> bool {
        let has_key = self.request.headers.iter().any(|(name, value)| {
            IDEMPOTENCY_KEY_HEADERS.iter().any(|key| name.eq_ignore_ascii_case(key)) && !is_blank_key(value.as_bytes())
        });
        self.replay.allows(&self.request.method, has_key, failure)
    }

    /// FRUGAL: the local statuses that hand the step to its fallbacks and then to
    /// EZThrottle (default 429, 500, 502, 503, 504).
    pub fn fallback_on_error(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.fallback_on_error = codes.into_iter().collect();
        self
    }

    /// FRUGAL: how long to wait for the local request (default 30 s).
    pub fn local_timeout(mut self, timeout: Duration) -> Self {
        self.local_timeout = timeout;
        self
    }

    /// Adds a fallback run when `trigger` fires. Repeated calls build a chain: the first
    /// fallback is tried first, each later one after the one before it failed.
    pub fn fallback(mut self, step: Step, trigger: Trigger) -> Self {
        self.fallbacks.push((step, trigger));
        self
    }

    /// A step spawned when this one succeeds.
    ///
    /// A PERFORMANCE child is a child job that EZThrottle runs. A FRUGAL child runs here:
    /// right after a FRUGAL step that succeeded here, or, when this step runs on
    /// EZThrottle, where its webhook is received (it is carried in the job's metadata; see
    /// [`Continuation`] and [`WorkflowInbox`](crate::inbox::WorkflowInbox)), so the job
    /// needs a webhook.
    pub fn on_success(mut self, step: Step) -> Self {
        self.on_success = Some(Box::new(step));
        self
    }

    /// A step spawned when this one fails, or, with `timeout`, when it has not succeeded
    /// within that time.
    ///
    /// FRUGAL and PERFORMANCE children run where [`on_success`](Self::on_success) says.
    /// A FRUGAL `on_failure` run at the webhook receiver runs on a failed delivery, so it
    /// takes no `timeout` (the job is refused).
    pub fn on_failure(mut self, step: Step, timeout: Option<Duration>) -> Self {
        self.on_failure = Some(Box::new(step));
        self.request.on_failure_timeout = timeout;
        self
    }

    /// Whether the step runs here first ([`StepType::Frugal`]).
    pub fn is_frugal(&self) -> bool {
        self.step_type == StepType::Frugal
    }

    /// This step's own request and options (without its fallbacks, children and computed
    /// key): the URL, method, headers, body, webhooks, regions, ...
    pub fn request(&self) -> &Job {
        &self.request
    }

    /// The job this step submits, with its fallback chain and children.
    ///
    /// Without an explicit key, each job (nested steps included) gets the key of its
    /// step's strategy: computed from the request, or under [`IdempotentStrategy::Unique`]
    /// a fresh one on every call.
    pub fn to_job(&self) -> Job {
        let mut job = self.request_job();
        job.fallback_job = self.fallback_chain_job();
        job
    }

    /// This step's own job: its request, key and children, without fallbacks.
    ///
    /// A FRUGAL child is not a child job: EZThrottle would run it. It is carried in the
    /// job's metadata, to run where the job's webhook is received
    /// ([`Continuation`]).
    fn request_job(&self) -> Job {
        let mut job = self.request.clone();
        job.idempotent_key = self.resolved_key();
        let performance = |child: &Option<Box<Step>>| {
            child.as_deref().filter(|child| !child.is_frugal()).map(|child| Box::new(child.to_job()))
        };
        job.on_success = performance(&self.on_success);
        job.on_failure = performance(&self.on_failure);
        carried::carry_children(self, &mut job);
        job
    }

    /// The explicit key, else the strategy's.
    fn resolved_key(&self) -> Option<String> {
        if let Some(key) = &self.request.idempotent_key {
            return Some(key.clone());
        }
        match self.idempotent_strategy {
            IdempotentStrategy::CredentialHash => Some(credential_key(&self.request, &self.credential_headers)),
            IdempotentStrategy::Hash => None,
            IdempotentStrategy::Unique => Some(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// The fallbacks, depth first (a fallback's own fallbacks follow it), each with the
    /// trigger that fires it.
    fn flattened_fallbacks(&self) -> Vec<(&Step, &Trigger)> {
        let mut chain = Vec::new();
        for (step, trigger) in &self.fallbacks {
            chain.push((step, trigger));
            chain.extend(step.flattened_fallbacks());
        }
        chain
    }

    /// The fallback chain as nested `fallback_job`s, outermost first.
    fn fallback_chain_job(&self) -> Option<Box<Job>> {
        self.flattened_fallbacks().into_iter().rev().fold(None, |inner, (step, trigger)| {
            let mut job = step.request_job();
            job.trigger = Some(trigger.clone());
            job.fallback_job = inner;
            Some(Box::new(job))
        })
    }

    /// Runs the step: PERFORMANCE submits it; FRUGAL runs it here first.
    ///
    /// The whole job (fallbacks and children included) is validated before anything runs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an invalid step; a submission's error; for a FRUGAL
    /// step whose forward failed, [`Error::Forward`] carrying the local failure too (so
    /// also when a FRUGAL step with a FRUGAL child and no webhook has to be forwarded:
    /// the child could not run).
    pub async fn execute(&self, client: &EZThrottle) -> StepResult {
        let job = self.to_job();
        match self.step_type {
            // `submit_job` validates the whole job before anything is sent.
            StepType::Performance => client.submit_job(&job).await.map(StepOutcome::Forwarded),
            StepType::Frugal => {
                // Its own FRUGAL children run here unless it is forwarded: what they need
                // of a forwarded job (a webhook) is checked if it is.
                if job.metadata.contains_key(LOCAL_STEPS_METADATA_KEY) {
                    let mut run_here = job.clone();
                    run_here.metadata.remove(LOCAL_STEPS_METADATA_KEY);
                    run_here.validate()?;
                } else {
                    job.validate()?;
                }
                frugal::execute(self, job, client).await
            }
        }
    }
}

impl Default for Step {
    /// A template: no URL yet (a layer or [`Step::for_http_request`] sets the request),
    /// every option at its default.
    fn default() -> Self {
        Self::new("")
    }
}

impl From<&Step> for Job {
    fn from(step: &Step) -> Self {
        step.to_job()
    }
}

impl Error {
    /// Wraps a failed forward with the local failure that caused it.
    pub(crate) fn forward(local_failure: LocalFailure, source: Error) -> Self {
        Error::Forward { local_failure: Box::new(local_failure), source: Box::new(source) }
    }
}
