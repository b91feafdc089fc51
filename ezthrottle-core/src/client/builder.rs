//! Building an [`EZThrottle`] client.

use std::sync::Arc;
use std::time::Duration;

use super::{ClientInner, EZThrottle, Endpoint};
use crate::error::Error;
use crate::protocol::check_absolute_url;

/// Default TrackTags proxy URL.
pub const DEFAULT_TRACKTAGS_URL: &str = "https://tracktags.fly.dev";
/// Default EZThrottle URL.
pub const DEFAULT_EZTHROTTLE_URL: &str = "https://ezthrottle.fly.dev";
/// Default timeout for every call to EZThrottle.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Timeout of every call to EZThrottle (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Use this `reqwest::Client` (its pool, proxy and TLS settings) for every call,
    /// including FRUGAL local requests.
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
