//! Building an [`EZThrottle`] client.

use std::sync::Arc;
use std::time::Duration;

use super::breaker::Breaker;
use super::{ClientInner, EZThrottle, Endpoint};
use crate::error::Error;
use crate::protocol::check_absolute_url;

/// Default TrackTags proxy URL.
pub const DEFAULT_TRACKTAGS_URL: &str = "https://tracktags.fly.dev";
/// Default EZThrottle URL.
pub const DEFAULT_EZTHROTTLE_URL: &str = "https://ezthrottle.fly.dev";
/// Default timeout of each call to EZThrottle other than a submission
/// ([`DEFAULT_SUBMIT_DEADLINE`] bounds those).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline of a whole [`EZThrottle::submit_job`], its retries included.
pub const DEFAULT_SUBMIT_DEADLINE: Duration = Duration::from_secs(5);
/// The longest submission deadline: a longer one is cut to this.
pub const MAX_SUBMIT_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// Default connect timeout of the built-in HTTP client: past it, a call counts as not sent.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of submissions in a row that fail to connect before the client's
/// breaker for EZThrottle opens.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// Default time the client's breaker for EZThrottle stays open before one call probes.
pub const DEFAULT_BREAKER_COOL_DOWN: Duration = Duration::from_secs(10);
/// The longest cool-down of the client's breaker: a longer one is cut to this.
pub const MAX_BREAKER_COOL_DOWN: Duration = Duration::from_secs(10 * 60);

/// Environment variable holding the API key.
pub const ENV_API_KEY: &str = "EZTHROTTLE_API_KEY";
/// Environment variable holding the EZThrottle (or local engine) URL.
pub const ENV_URL: &str = "EZTHROTTLE_URL";
/// Environment variable holding the TrackTags proxy URL.
pub const ENV_TRACKTAGS_URL: &str = "EZTHROTTLE_TRACKTAGS_URL";

/// Configures an [`EZThrottle`] client. Setters take and return the builder by value.
///
/// ```
/// use std::time::Duration;
/// # fn main() -> Result<(), ezthrottle_core::Error> {
/// let cloud = ezthrottle_core::EZThrottle::builder()
///     .api_key("ck_live_example")
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// let local = ezthrottle_core::EZThrottle::builder().direct("http://127.0.0.1:8080").build()?;
/// # let _ = (cloud, local); Ok(()) }
/// ```
#[derive(Default)]
#[must_use]
pub struct EZThrottleBuilder {
    api_key: Option<String>,
    tracktags_url: Option<String>,
    ezthrottle_url: Option<String>,
    direct_url: Option<String>,
    timeout: Option<Duration>,
    submit_deadline: Option<Duration>,
    connect_timeout: Option<Duration>,
    breaker_threshold: Option<u32>,
    breaker_cool_down: Option<Duration>,
    http: Option<reqwest::Client>,
}

impl EZThrottleBuilder {
    /// A builder with every setting at its default (cloud mode, no key yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder preset from the environment.
    ///
    /// - `EZTHROTTLE_API_KEY`: the API key.
    /// - `EZTHROTTLE_TRACKTAGS_URL`: cloud mode through this proxy (with `EZTHROTTLE_URL`,
    ///   if set, as the EZThrottle URL behind it).
    /// - `EZTHROTTLE_URL` without `EZTHROTTLE_TRACKTAGS_URL`: direct mode to this engine
    ///   (a self-hosted or local engine; the API key is then optional).
    /// - Neither: cloud mode with the default URLs.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables: a CLI's flags, an
    /// app's own configuration. Blank values count as unset.
    ///
    /// ```
    /// use ezthrottle_core::{ENV_URL, EZThrottleBuilder};
    ///
    /// let flags = [(ENV_URL, "http://127.0.0.1:8080")];
    /// let lookup = |name: &str| flags.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
    /// let client = EZThrottleBuilder::from_lookup(lookup).build()?;
    /// assert!(client.is_direct());
    /// # Ok::<(), ezthrottle_core::Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut builder = Self { api_key: read(ENV_API_KEY), ..Self::default() };
        match (read(ENV_TRACKTAGS_URL), read(ENV_URL)) {
            (Some(tracktags), ezthrottle) => {
                builder.tracktags_url = Some(tracktags);
                builder.ezthrottle_url = ezthrottle;
            }
            (None, Some(direct)) => builder.direct_url = Some(direct),
            (None, None) => {}
        }
        builder
    }

    /// The API key sent as `Authorization: Bearer <key>`.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The TrackTags proxy URL (cloud mode). Default `https://tracktags.fly.dev`.
    pub fn tracktags_url(mut self, url: impl Into<String>) -> Self {
        self.tracktags_url = Some(url.into());
        self
    }

    /// The EZThrottle URL the proxy forwards to (cloud mode). Default `https://ezthrottle.fly.dev`.
    pub fn ezthrottle_url(mut self, url: impl Into<String>) -> Self {
        self.ezthrottle_url = Some(url.into());
        self
    }

    /// Direct mode: talk to the engine at `base_url` (self-hosted or `ezthrottle-local`)
    /// without the proxy. The API key is optional in this mode.
    pub fn direct(mut self, base_url: impl Into<String>) -> Self {
        self.direct_url = Some(base_url.into());
        self
    }

    /// Timeout of each call to EZThrottle (default 30 s). A submission is bounded by the
    /// [`submit_deadline`](Self::submit_deadline) as well, whichever ends first.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Deadline of a whole [`EZThrottle::submit_job`], retries included (default 5 s,
    /// [`DEFAULT_SUBMIT_DEADLINE`]; clamped to 1 ms ..= [`MAX_SUBMIT_DEADLINE`]).
    ///
    /// A submission is the hot path of forwarding: it must never hold the caller long.
    /// Within the deadline it retries, at most 4 attempts in all, with exponential backoff
    /// and full jitter (50 ms doubling, at most 1 s): after a connection failure (nothing
    /// was sent), a 502 or 503 answer, and a 429 whose `Retry-After` ends within the
    /// deadline. Retrying is safe because every attempt sends the same job with the same
    /// idempotency key (the job's own, or the one EZThrottle derives from its content), so
    /// EZThrottle de-duplicates. A timeout or a reset after the request was written is
    /// never retried: it returns at once as "answer unknown"
    /// ([`Error::is_answer_unknown`]). No wait runs past the deadline.
    pub fn submit_deadline(mut self, deadline: Duration) -> Self {
        self.submit_deadline = Some(deadline);
        self
    }

    /// Connect timeout of the built-in HTTP client (default 2 s,
    /// [`DEFAULT_CONNECT_TIMEOUT`]): a call that cannot connect in time failed before
    /// anything was sent ([`Error::is_not_sent`]). A client given with
    /// [`http_client`](Self::http_client) keeps its own settings: set one there.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How many submissions in a row must fail to connect (all their retries spent)
    /// before the client's circuit breaker for EZThrottle opens (default 5,
    /// [`DEFAULT_BREAKER_THRESHOLD`]; at least 1).
    ///
    /// While the breaker is open, [`EZThrottle::submit_job`] returns
    /// [`Error::EZThrottleUnavailable`] at once, without connecting, so a caller forwarding
    /// a failed call gets its original answer back without delay. After the
    /// [`breaker_cool_down`](Self::breaker_cool_down) one submission probes EZThrottle (a
    /// single attempt, no retries) while the others still return at once; any answer from
    /// EZThrottle closes the breaker, a failure opens it again. The breaker is shared by
    /// every clone of the client. Only connection failures count: a timeout tells nothing
    /// about whether EZThrottle is up.
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker_threshold = Some(failures);
        self
    }

    /// How long the client's breaker for EZThrottle stays open before one call probes
    /// (default 10 s, [`DEFAULT_BREAKER_COOL_DOWN`]; at most [`MAX_BREAKER_COOL_DOWN`]).
    pub fn breaker_cool_down(mut self, cool_down: Duration) -> Self {
        self.breaker_cool_down = Some(cool_down);
        self
    }

    /// Use this `reqwest::Client` (its pool, proxy, TLS and connect-timeout settings) for
    /// every call, including FRUGAL local requests. Every call to EZThrottle still sends
    /// `User-Agent: ezthrottle-rs/<version>`.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a missing API key in cloud mode, a relative or non-http URL,
    /// or an HTTP client that cannot be built.
    pub fn build(self) -> Result<EZThrottle, Error> {
        let api_key = self.api_key.filter(|key| !key.trim().is_empty());
        let endpoint = match self.direct_url {
            Some(base) => {
                if self.tracktags_url.is_some() || self.ezthrottle_url.is_some() {
                    return Err(Error::Config(
                        "direct(...) cannot be combined with tracktags_url or ezthrottle_url".into(),
                    ));
                }
                Endpoint::Direct { base: checked_base("direct URL", &base)? }
            }
            None => {
                if api_key.is_none() {
                    return Err(Error::Config(format!(
                        "an API key is required for EZThrottle cloud: call .api_key(..) or set {ENV_API_KEY} \
                         (or use .direct(url) for a local engine)"
                    )));
                }
                Endpoint::Cloud {
                    tracktags: checked_base(
                        "tracktags_url",
                        self.tracktags_url.as_deref().unwrap_or(DEFAULT_TRACKTAGS_URL),
                    )?,
                    ezthrottle: checked_base(
                        "ezthrottle_url",
                        self.ezthrottle_url.as_deref().unwrap_or(DEFAULT_EZTHROTTLE_URL),
                    )?,
                }
            }
        };
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
                .build()
                .map_err(|err| Error::Config(format!("cannot build the HTTP client: {err}")))?,
        };
        let authorization = api_key.map(|key| format!("Bearer {}", key.trim()));
        Ok(EZThrottle {
            inner: Arc::new(ClientInner {
                http,
                authorization,
                endpoint,
                timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
                submit_deadline: self
                    .submit_deadline
                    .unwrap_or(DEFAULT_SUBMIT_DEADLINE)
                    .clamp(Duration::from_millis(1), MAX_SUBMIT_DEADLINE),
                breaker: Breaker::new(
                    self.breaker_threshold.unwrap_or(DEFAULT_BREAKER_THRESHOLD).max(1),
                    self.breaker_cool_down.unwrap_or(DEFAULT_BREAKER_COOL_DOWN).min(MAX_BREAKER_COOL_DOWN),
                ),
            }),
        })
    }
}

impl std::fmt::Debug for EZThrottleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EZThrottleBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("tracktags_url", &self.tracktags_url)
            .field("ezthrottle_url", &self.ezthrottle_url)
            .field("direct_url", &self.direct_url)
            .field("timeout", &self.timeout)
            .field("submit_deadline", &self.submit_deadline)
            .field("connect_timeout", &self.connect_timeout)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cool_down", &self.breaker_cool_down)
            .finish_non_exhaustive()
    }
}

/// Validates a base URL and drops its trailing slashes, so paths can be appended.
fn checked_base(what: &str, url: &str) -> Result<String, Error> {
    check_absolute_url(url).map_err(|reason| Error::Config(format!("{what} {reason}")))?;
    Ok(url.trim().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<EZThrottle, Error> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        EZThrottleBuilder::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())).build()
    }

    #[test]
    fn the_key_alone_means_cloud_with_default_urls() {
        let client = from(&[(ENV_API_KEY, "ck_live_1")]).unwrap();
        assert!(!client.is_direct());
        let printed = format!("{client:?}");
        assert!(printed.contains(DEFAULT_TRACKTAGS_URL) && printed.contains(DEFAULT_EZTHROTTLE_URL), "{printed}");
        assert!(!printed.contains("ck_live_1"), "{printed}");
    }

    #[test]
    fn a_url_alone_means_direct_to_a_local_engine() {
        let client = from(&[(ENV_URL, "http://127.0.0.1:8080/")]).unwrap();
        assert!(client.is_direct());
        assert!(format!("{client:?}").contains("\"http://127.0.0.1:8080\""));
    }

    #[test]
    fn a_proxy_url_means_cloud_through_it() {
        let client =
            from(&[(ENV_API_KEY, "k"), (ENV_TRACKTAGS_URL, "http://127.0.0.1:9"), (ENV_URL, "http://127.0.0.1:7")])
                .unwrap();
        assert!(!client.is_direct());
        let printed = format!("{client:?}");
        assert!(printed.contains("127.0.0.1:9") && printed.contains("127.0.0.1:7"), "{printed}");
    }

    #[test]
    fn nothing_set_is_a_clear_error() {
        let error = from(&[(ENV_API_KEY, "   ")]).unwrap_err();
        assert!(error.to_string().contains(ENV_API_KEY), "{error}");
    }
}
