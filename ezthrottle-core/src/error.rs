//! The one error type of the client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use crate::protocol::InvalidJob;

/// Which server produced an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The TrackTags proxy in front of EZThrottle (cloud mode).
    Proxy,
    /// EZThrottle itself (directly, or unwrapped from the proxy's `forwarded_response`).
    EZThrottle,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Proxy => "the EZThrottle proxy",
            Self::EZThrottle => "EZThrottle",
        })
    }
}

/// Everything that can go wrong talking to EZThrottle.
///
/// Input that cannot be sent is refused before any network call
/// ([`Error::InvalidInput`], [`Error::Config`]). Answers from the proxy or from
/// EZThrottle keep their status and message; [`Error::retry_at`] tells when a rate-limited
/// call may be repeated. A failure without an answer is one of two cases, told apart by
/// [`Error::is_not_sent`] (nothing reached EZThrottle: [`Error::Unreachable`],
/// [`Error::EZThrottleUnavailable`]) and [`Error::is_answer_unknown`] (the request was sent
/// and no answer came: [`Error::Transport`]; EZThrottle may have accepted the job).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was configured with something unusable.
    #[error("invalid EZThrottle client configuration: {0}")]
    Config(String),

    /// A value was refused before anything was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Path of the offending field, e.g. `fallback_job.url`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// 401: the API key was refused.
    #[error("invalid API key ({origin} answered 401: {message})")]
    Unauthorized {
        /// Who refused it.
        origin: Origin,
        /// The server's message.
        message: String,
    },

    /// 403: the key may not do this (e.g. a business key on the proxy).
    #[error("forbidden by {origin}: {message}")]
    Forbidden {
        /// Who refused it.
        origin: Origin,
        /// The server's message.
        message: String,
    },

    /// 413: the job is larger than the server accepts.
    #[error("job too large for {origin}: {message}")]
    PayloadTooLarge {
        /// Who refused it.
        origin: Origin,
        /// The server's message.
        message: String,
    },

    /// 429: a plan limit, an IP limit or a full queue.
    #[error("{}", rate_limited_message(*.origin, message, *.retry_at))]
    RateLimited {
        /// Who refused it.
        origin: Origin,
        /// The server's message, e.g. `Plan limit exceeded`.
        message: String,
        /// When to try again, if the server said.
        retry_at: Option<SystemTime>,
    },

    /// Any other error answer (400, 404, 409, 5xx, ...).
    #[error("{origin} answered {status}: {message}")]
    Api {
        /// Who answered.
        origin: Origin,
        /// The HTTP status.
        status: StatusCode,
        /// The server's message, or the start of its body.
        message: String,
    },

    /// `get_job` asked for a job EZThrottle does not know (or no longer keeps).
    #[error("job {job_id} not found")]
    JobNotFound {
        /// The id asked for.
        job_id: String,
    },

    /// `get_webhook_secret` found none configured.
    #[error("no webhook secrets configured; call create_webhook_secret first")]
    NoWebhookSecrets,

    /// Not sent: connecting to EZThrottle failed (refused, DNS, TLS, or the connect
    /// timeout), so the request was never written and EZThrottle cannot have accepted the
    /// job. [`is_not_sent`](Error::is_not_sent) is true.
    #[error("EZThrottle unreachable at {url}: {}", describe_transport(source))]
    Unreachable {
        /// The URL that was called.
        url: String,
        /// The underlying failure.
        #[source]
        source: reqwest::Error,
    },

    /// Sent, answer unknown: the call failed after the connection was made (a timeout, a
    /// reset, a body cut short), so EZThrottle may have accepted the job.
    /// [`is_answer_unknown`](Error::is_answer_unknown) is true.
    #[error("request to {url} failed: {}", describe_transport(source))]
    Transport {
        /// The URL that was called.
        url: String,
        /// The underlying failure.
        #[source]
        source: reqwest::Error,
    },

    /// Not sent: the client's circuit breaker for EZThrottle is open after consecutive
    /// connection failures, so the submission returned at once without connecting.
    /// [`is_not_sent`](Error::is_not_sent) is true. After the cool-down one call probes
    /// EZThrottle again; its success closes the breaker (see
    /// [`EZThrottleBuilder::breaker_threshold`](crate::EZThrottleBuilder::breaker_threshold)).
    #[error(
        "EZThrottle unavailable: nothing sent, the client's circuit breaker is open after {failures} consecutive \
         connection failures; it probes again in {}",
        humantime::format_duration(whole_millis(*.probe_in))
    )]
    EZThrottleUnavailable {
        /// How many submissions in a row failed to connect.
        failures: u32,
        /// How long until a call may probe EZThrottle again (zero: the next call does).
        probe_in: Duration,
    },

    /// A FRUGAL step failed here and forwarding it to EZThrottle failed too: both causes.
    #[error("{local_failure}; forwarding to EZThrottle failed too: {source}")]
    Forward {
        /// Why the request made here failed.
        local_failure: Box<crate::step::LocalFailure>,
        /// Why the forward failed.
        #[source]
        source: Box<Error>,
    },

    /// [`queue_and_wait`](crate::EZThrottle::queue_and_wait) or
    /// [`Step::execute_and_wait`](crate::Step::execute_and_wait): the job was accepted but
    /// its webhook did not reach the inbox in time (the job may still complete later).
    #[error("job {job_id} was accepted but its webhook did not arrive within {waited:?}")]
    WaitTimedOut {
        /// The accepted job.
        job_id: String,
        /// How long it waited.
        waited: Duration,
    },

    /// [`EZThrottle::queue_and_wait`](crate::EZThrottle::queue_and_wait): the job was
    /// accepted but the inbox it is awaited in failed (its shared store is unreachable).
    #[error("job {job_id} was accepted but its inbox failed: {message}")]
    InboxUnavailable {
        /// The accepted job.
        job_id: String,
        /// What failed.
        message: String,
    },

    /// The server answered something this client cannot read.
    #[error("unexpected answer from {origin} (HTTP {status}): {message}")]
    InvalidResponse {
        /// Who answered.
        origin: Origin,
        /// The HTTP status.
        status: StatusCode,
        /// What was wrong with it.
        message: String,
    },
}

impl Error {
    /// The HTTP status of an error answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            Self::Forbidden { .. } => Some(StatusCode::FORBIDDEN),
            Self::PayloadTooLarge { .. } => Some(StatusCode::PAYLOAD_TOO_LARGE),
            Self::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            Self::NoWebhookSecrets | Self::JobNotFound { .. } => Some(StatusCode::NOT_FOUND),
            Self::Api { status, .. } | Self::InvalidResponse { status, .. } => Some(*status),
            Self::Forward { source, .. } => source.status(),
            Self::Config(_)
            | Self::InvalidInput { .. }
            | Self::Unreachable { .. }
            | Self::Transport { .. }
            | Self::EZThrottleUnavailable { .. }
            | Self::WaitTimedOut { .. }
            | Self::InboxUnavailable { .. } => None,
        }
    }

    /// When a rate-limited call may be repeated.
    ///
    /// Computed from, in order: a `Retry-After` header (seconds or HTTP date), `retry_at`
    /// (ms) in the body, `retry_after` or `retry_after_seconds` (s) in the body.
    pub fn retry_at(&self) -> Option<SystemTime> {
        match self {
            Self::RateLimited { retry_at, .. } => *retry_at,
            Self::Forward { source, .. } => source.retry_at(),
            _ => None,
        }
    }

    /// Whether nothing reached EZThrottle: the connection failed (refused, DNS, TLS, the
    /// connect timeout) before the request was written ([`Error::Unreachable`]), or the
    /// client's breaker is open and nothing was tried ([`Error::EZThrottleUnavailable`]).
    /// The job was certainly not accepted, so running a fallback cannot make the work run
    /// twice: this is the only case in which
    /// [`forward_or_fallback`](crate::EZThrottle::forward_or_fallback) runs its fallback.
    pub fn is_not_sent(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::EZThrottleUnavailable { .. } => true,
            Self::Forward { source, .. } => source.is_not_sent(),
            _ => false,
        }
    }

    /// Whether the request was sent and no answer came (a timeout, a reset): EZThrottle
    /// may have accepted the job ([`Error::Transport`]).
    pub fn is_answer_unknown(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Forward { source, .. } => source.is_answer_unknown(),
            _ => false,
        }
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Unreachable { source, .. } | Self::Transport { source, .. } => source.is_timeout(),
            Self::Forward { source, .. } => source.is_timeout(),
            _ => false,
        }
    }

    /// A failed call: not sent when reqwest failed to connect (a connect timeout
    /// included), otherwise sent with the answer unknown (any other timeout included).
    pub(crate) fn transport(url: &str, source: reqwest::Error) -> Self {
        let url = url.to_owned();
        if source.is_connect() { Self::Unreachable { url, source } } else { Self::Transport { url, source } }
    }
}

impl From<InvalidJob> for Error {
    fn from(invalid: InvalidJob) -> Self {
        Self::InvalidInput { field: invalid.field, reason: invalid.reason }
    }
}

fn rate_limited_message(origin: Origin, message: &str, retry_at: Option<SystemTime>) -> String {
    let what = if message.is_empty() { "rate limited".to_owned() } else { message.to_lowercase() };
    match retry_at {
        Some(at) => format!("{what} ({origin}); retry at {}", format_instant(at)),
        None => format!("{what} ({origin}); no retry time given"),
    }
}

/// `2026-11-22T10:15:00Z`; the epoch for an earlier instant, and a phrase past the year
/// 9999, which RFC 3339 cannot write (humantime would fail there).
pub(crate) fn format_instant(at: SystemTime) -> String {
    const YEAR_10000_UNIX_SECS: u64 = 253_402_300_800;
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    if since_epoch.as_secs() >= YEAR_10000_UNIX_SECS {
        return "a time after the year 9999".to_owned();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH.checked_add(since_epoch).unwrap_or(UNIX_EPOCH)).to_string()
}

/// `d` without its sub-millisecond part, for messages.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn describe_transport(source: &reqwest::Error) -> String {
    // reqwest's Display stops at "error sending request"; the causes say why.
    let mut text = if source.is_timeout() { "timed out".to_owned() } else { source.to_string() };
    push_sources(&mut text, std::error::Error::source(source));
    text
}

/// Displays an error followed by each of its sources whose text it does not already
/// contain, `: `-separated, e.g. `error sending request: connection refused`.
///
/// ```
/// use ezthrottle_core::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("could not reach the engine")]
/// struct Unreachable(#[source] std::io::Error);
///
/// let error = Unreachable(std::io::Error::other("connection refused"));
/// assert_eq!(ErrorChain(&error).to_string(), "could not reach the engine: connection refused");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        push_sources(&mut text, self.0.source());
        f.write_str(&text)
    }
}

fn push_sources(text: &mut String, mut source: Option<&(dyn std::error::Error + 'static)>) {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_message_names_the_retry_time() {
        let err = Error::RateLimited {
            origin: Origin::Proxy,
            message: "Plan limit exceeded".into(),
            retry_at: crate::protocol::time::from_unix_ms(1_795_000_000_000),
        };
        assert_eq!(err.to_string(), "plan limit exceeded (the EZThrottle proxy); retry at 2026-11-18T11:06:40Z");
        assert_eq!(err.retry_at().map(crate::protocol::time::to_unix_ms), Some(1_795_000_000_000));
        assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    }

    #[test]
    fn the_open_breaker_is_not_sent_and_says_when_it_probes() {
        let err = Error::EZThrottleUnavailable { failures: 5, probe_in: Duration::from_micros(2_500_700) };
        assert!(err.is_not_sent() && !err.is_answer_unknown() && !err.is_timeout());
        assert_eq!(err.status(), None);
        let text = err.to_string();
        assert!(text.contains("5 consecutive") && text.ends_with("probes again in 2s 500ms"), "{text}");
        let huge = Error::EZThrottleUnavailable { failures: u32::MAX, probe_in: Duration::MAX };
        assert!(huge.to_string().contains("probes again in"));
    }

    #[test]
    fn instants_past_what_rfc3339_writes_do_not_panic() {
        let far = crate::protocol::time::from_unix_ms(u64::MAX).unwrap();
        assert_eq!(format_instant(far), "a time after the year 9999");
        assert_eq!(format_instant(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00Z");
    }
}
