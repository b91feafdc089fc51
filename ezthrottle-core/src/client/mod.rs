//! The asynchronous EZThrottle client.

mod admin;
mod breaker;
mod builder;
mod events;
mod retry;
mod sse;
mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

pub use admin::JobFilter;
pub use builder::{
    DEFAULT_BREAKER_COOL_DOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EZTHROTTLE_URL,
    DEFAULT_SUBMIT_DEADLINE, DEFAULT_TIMEOUT, DEFAULT_TRACKTAGS_URL, ENV_API_KEY, ENV_TRACKTAGS_URL, ENV_URL,
    EZThrottleBuilder, MAX_BREAKER_COOL_DOWN, MAX_SUBMIT_DEADLINE,
};
pub use events::JobEvents;
pub use transport::USER_AGENT;
pub(crate) use transport::read_capped;

use crate::error::Error;
use crate::protocol::{CreateWebhookSecrets, Job, JobSnapshot, SubmitReceipt, Webhook, WebhookSecretsView, paths};
use crate::telemetry;

/// The EZThrottle client: submits jobs and manages webhook secrets.
///
/// Cheap to clone (one `Arc`), `Send + Sync`. Two modes, one API:
/// - **cloud** (default): calls go through the TrackTags proxy envelope and EZThrottle's
///   answer is unwrapped from `forwarded_response`;
/// - **direct** ([`EZThrottleBuilder::direct`]): calls go straight to a self-hosted or
///   local engine's `/api/v1/...` routes.
///
/// ```no_run
/// use ezthrottle_core::{EZThrottle, Job, Webhook};
/// # async fn run() -> Result<(), ezthrottle_core::Error> {
/// let client = EZThrottle::from_env()?;
/// let mut job = Job::new("https://api.example.com/charge");
/// job.webhooks.push(Webhook::new("https://app.example.com/webhook"));
/// let receipt = client.submit_job(&job).await?;
/// println!("queued as {}", receipt.job_id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EZThrottle {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    http: reqwest::Client,
    /// `Bearer <key>`, kept out of `Debug`.
    authorization: Option<String>,
    endpoint: Endpoint,
    timeout: Duration,
    /// Bounds a whole submission, retries included.
    submit_deadline: Duration,
    /// Shared by every clone: EZThrottle is down for all of them at once.
    breaker: breaker::Breaker,
}

#[derive(Debug)]
enum Endpoint {
    Cloud { tracktags: String, ezthrottle: String },
    Direct { base: String },
}

/// What [`EZThrottle::forward_or_fallback`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardOrFallback<T> {
    /// EZThrottle accepted the job.
    Forwarded(SubmitReceipt),
    /// Nothing reached EZThrottle ([`Error::is_not_sent`]), so the fallback ran.
    FellBack {
        /// What the fallback returned.
        value: T,
        /// Why nothing was sent: a connection failure, or the client's open breaker.
        reason: Error,
    },
}

impl EZThrottle {
    /// Starts configuring a client.
    pub fn builder() -> EZThrottleBuilder {
        EZThrottleBuilder::new()
    }

    /// A cloud client with this API key and the default URLs.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the key is empty.
    pub fn new(api_key: impl Into<String>) -> Result<Self, Error> {
        Self::builder().api_key(api_key).build()
    }

    /// A client configured from `EZTHROTTLE_API_KEY`, `EZTHROTTLE_URL` and
    /// `EZTHROTTLE_TRACKTAGS_URL` (see [`EZThrottleBuilder::from_env`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the variables do not make a usable configuration.
    pub fn from_env() -> Result<Self, Error> {
        EZThrottleBuilder::from_env().build()
    }

    /// The HTTP client used for every call (and for FRUGAL local requests).
    pub fn http_client(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Whether this client talks to an engine directly (no proxy).
    pub fn is_direct(&self) -> bool {
        matches!(self.inner.endpoint, Endpoint::Direct { .. })
    }

    /// Submits a job.
    ///
    /// The job is validated first: nothing is sent if any field (at any depth) is invalid.
    /// A duplicate submission answers with the original job's id and `duplicate: true`.
    ///
    /// A submission never holds the caller past its deadline
    /// ([`EZThrottleBuilder::submit_deadline`], 5 s by default), bounded retries
    /// included; while EZThrottle cannot be reached, the client's breaker
    /// ([`EZThrottleBuilder::breaker_threshold`]) makes it return at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] before any network call; [`Error::EZThrottleUnavailable`]
    /// while the breaker is open; otherwise the proxy's or EZThrottle's refusal,
    /// [`Error::Unreachable`] (not sent) or [`Error::Transport`] (sent, answer unknown).
    pub async fn submit_job(&self, job: &Job) -> Result<SubmitReceipt, Error> {
        use tracing::Instrument as _;
        job.validate()?;
        crate::step::check_carried(job)?;
        let span = tracing::debug_span!(
            target: telemetry::TARGET_CLIENT,
            "submit",
            method = %job.method,
            host = %telemetry::host_of(&job.url),
            job_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = self.submit_admitted(job).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(receipt) if receipt.duplicate => "duplicate",
            Ok(_) => "accepted",
            Err(error) if error.is_not_sent() => "not_sent",
            Err(Error::Transport { .. }) => "unknown",
            Err(_) => "refused",
        };
        if let Ok(receipt) = &result {
            span.record("job_id", receipt.job_id.as_str());
        }
        span.record("outcome", outcome);
        metrics::counter!(telemetry::SUBMISSIONS_TOTAL, "outcome" => outcome).increment(1);
        metrics::histogram!(telemetry::SUBMISSION_SECONDS).record(started.elapsed().as_secs_f64());
        result
    }

    async fn submit_admitted(&self, job: &Job) -> Result<SubmitReceipt, Error> {
        let admission = self.inner.breaker.admit(self.inner.submit_deadline).inspect_err(|error| {
            tracing::debug!(target: telemetry::TARGET_CLIENT, %error, "not submitting: EZThrottle is unavailable");
        })?;
        let result = self.submit_with_retries(job.to_json(), admission).await;
        self.inner.breaker.record(admission, breaker::Health::of(&result));
        let receipt = result?;
        tracing::debug!(target: telemetry::TARGET_CLIENT, job_id = %receipt.job_id, duplicate = receipt.duplicate, "job accepted");
        Ok(receipt)
    }

    /// Submits `job` with one voting webhook at `webhook_url` (the peers' legacy call).
    ///
    /// # Errors
    ///
    /// As [`submit_job`](Self::submit_job).
    #[deprecated(since = "0.1.0", note = "use `submit_job` with `Job::webhooks` (or `Step`) instead")]
    pub async fn queue_request(&self, mut job: Job, webhook_url: impl Into<String>) -> Result<SubmitReceipt, Error> {
        job.webhooks.push(Webhook::new(webhook_url));
        self.submit_job(&job).await
    }

    /// Submits `job`; if nothing reached EZThrottle ([`Error::is_not_sent`]: the connection
    /// failed, or the client's breaker is open), runs `fallback` instead.
    ///
    /// This makes EZThrottle a reliability layer, not a single point of failure.
    ///
    /// When the submission was sent and no answer came ([`Error::is_answer_unknown`]: a
    /// timeout, a reset), the fallback does **not** run and the error is returned:
    /// EZThrottle may have accepted the job and will run it, so the fallback could make
    /// the work run twice. An answer from EZThrottle, even an error, does not run it either.
    ///
    /// # Errors
    ///
    /// Any error of [`submit_job`](Self::submit_job) that is not "not sent".
    pub async fn forward_or_fallback<F, Fut, T>(&self, job: &Job, fallback: F) -> Result<ForwardOrFallback<T>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        match self.submit_job(job).await {
            Ok(receipt) => Ok(ForwardOrFallback::Forwarded(receipt)),
            Err(reason) if reason.is_not_sent() => {
                tracing::warn!(target: telemetry::TARGET_CLIENT, error = %reason, "nothing reached EZThrottle; running the fallback");
                Ok(ForwardOrFallback::FellBack { value: fallback().await, reason })
            }
            Err(other) => Err(other),
        }
    }

    /// A job's state and history: attempts, the target's answer, webhook deliveries and
    /// the children it spawned (`GET /api/v1/jobs/{id}`).
    ///
    /// The local engine answers with every field of [`JobSnapshot`]; the self-hosted
    /// peers answer `job_id`, `status`, `url`, `method` and `created_at` only.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an id that cannot be a path segment (nothing sent);
    /// [`Error::JobNotFound`] when EZThrottle does not know the job; otherwise the
    /// server's refusal or unreachability.
    pub async fn get_job(&self, job_id: &str) -> Result<JobSnapshot, Error> {
        check_job_id(job_id)?;
        let answer = self.call(Method::GET, &format!("{}/{job_id}", paths::JOBS), None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::JobNotFound { job_id: job_id.to_owned() });
        }
        answer.success_json()
    }

    /// Sets the account's webhook secrets (create or replace). Each must be at least 16
    /// characters.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a short secret (nothing sent); otherwise the server's refusal.
    pub async fn create_webhook_secret(&self, primary: &str, secondary: Option<&str>) -> Result<(), Error> {
        let request = CreateWebhookSecrets::new(primary, secondary.map(str::to_owned));
        request.validate()?;
        let body = serde_json::to_string(&request).unwrap_or_else(|_| unreachable!("strings only"));
        let answer = self.call(Method::POST, paths::WEBHOOK_SECRETS, Some(body)).await?;
        if answer.status.is_success() { Ok(()) } else { Err(answer.into_error()) }
    }

    /// The account's webhook secrets, masked (the server never returns them in clear).
    ///
    /// # Errors
    ///
    /// [`Error::NoWebhookSecrets`] when none are configured.
    pub async fn get_webhook_secret(&self) -> Result<WebhookSecretsView, Error> {
        let answer = self.call(Method::GET, paths::WEBHOOK_SECRETS, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::NoWebhookSecrets);
        }
        answer.success_json()
    }

    /// Deletes the account's webhook secrets. Deleting when none exist succeeds.
    ///
    /// # Errors
    ///
    /// The server's refusal or unreachability.
    pub async fn delete_webhook_secret(&self) -> Result<(), Error> {
        let answer = self.call(Method::DELETE, paths::WEBHOOK_SECRETS, None).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(answer.into_error())
        }
    }

    /// Rotates: `new` becomes the primary secret and `previous` the secondary, so
    /// receivers holding either keep verifying during the switch.
    ///
    /// The caller passes the previous secret because the server only ever returns masked
    /// secrets: a rotation that reads it back (as the peer SDKs do) can never keep it.
    ///
    /// # Errors
    ///
    /// As [`create_webhook_secret`](Self::create_webhook_secret).
    pub async fn rotate_webhook_secret(&self, new: &str, previous: &str) -> Result<(), Error> {
        self.create_webhook_secret(new, Some(previous)).await
    }
}

/// Job ids are path segments: refuse what would change the path or the query.
pub(crate) fn check_job_id(job_id: &str) -> Result<(), Error> {
    let reason = if job_id.is_empty() {
        "must not be empty"
    } else if job_id.bytes().all(|b| b == b'.') {
        "must not be a relative path segment"
    } else if job_id.len() > 256 {
        "must be at most 256 characters"
    } else if !job_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')) {
        "may hold only ASCII letters, digits, '_', '-', '.' and ':'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput { field: "job_id".to_owned(), reason: reason.to_owned() })
}

impl std::fmt::Debug for EZThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EZThrottle")
            .field("endpoint", &self.inner.endpoint)
            .field("api_key", &self.inner.authorization.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.inner.timeout)
            .field("submit_deadline", &self.inner.submit_deadline)
            .finish_non_exhaustive()
    }
}
