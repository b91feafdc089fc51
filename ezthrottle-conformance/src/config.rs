//! The app's configuration: [`Config`], read from the environment or built in code.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ezthrottle::{EZThrottle, EZThrottleBuilder};

/// Port listened on when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 8000;

/// Environment variable: the port to listen on (default 8000).
pub const ENV_PORT: &str = "PORT";
/// Environment variable: the address to listen on (default `127.0.0.1`).
pub const ENV_HOST: &str = "HOST";
/// Environment variable: the public base URL of this app.
pub const ENV_APP_URL: &str = "APP_URL";
/// Environment variable: an httpbin-compatible base URL for the scenarios' targets.
pub const ENV_UPSTREAM_URL: &str = "UPSTREAM_URL";
/// Environment variable: the webhook secret deliveries are verified with.
pub const ENV_WEBHOOK_SECRET: &str = "EZTHROTTLE_WEBHOOK_SECRET";
/// Environment variable: a second accepted webhook secret (during a rotation).
pub const ENV_WEBHOOK_SECRET_SECONDARY: &str = "EZTHROTTLE_WEBHOOK_SECONDARY_SECRET";

/// How the app is configured. Every field has a default; [`Config::from_env`] reads them
/// from the environment, the setters set them in code.
///
/// ```
/// use ezthrottle_conformance::Config;
///
/// let config = Config::new()
///     .port(0)
///     .ezthrottle_url("http://127.0.0.1:4000")
///     .webhook_secret("whsec_0123456789abcdef");
/// assert_eq!(config.bind.port(), 0);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen (`HOST`:`PORT`, default `127.0.0.1:8000`).
    pub bind: SocketAddr,
    /// The public base URL of this app (`APP_URL`); webhook URLs are `{app_url}/webhook`.
    /// Default `http://127.0.0.1:<bound port>`.
    pub app_url: Option<String>,
    /// A direct engine URL (`EZTHROTTLE_URL`): a local or self-hosted engine, or with
    /// [`tracktags_url`](Self::tracktags_url) the EZThrottle URL behind the proxy.
    pub ezthrottle_url: Option<String>,
    /// The API key (`EZTHROTTLE_API_KEY`): required for the cloud, optional for a direct engine.
    pub api_key: Option<String>,
    /// The TrackTags proxy URL (`EZTHROTTLE_TRACKTAGS_URL`); cloud mode through it.
    pub tracktags_url: Option<String>,
    /// An httpbin-compatible base URL (`UPSTREAM_URL`). Unset: a built-in one is started.
    pub upstream_url: Option<String>,
    /// The secret webhook deliveries must be signed with (`EZTHROTTLE_WEBHOOK_SECRET`).
    /// Unset: deliveries are stored unverified, as the official SDKs' test apps do.
    pub webhook_secret: Option<String>,
    /// A second accepted secret (`EZTHROTTLE_WEBHOOK_SECONDARY_SECRET`), for rotations.
    pub webhook_secret_secondary: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            app_url: None,
            ezthrottle_url: None,
            api_key: None,
            tracktags_url: None,
            upstream_url: None,
            webhook_secret: None,
            webhook_secret_secondary: None,
        }
    }
}

/// A variable of the environment that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Config {
    /// Every setting at its default (`127.0.0.1:8000`, built-in upstream, no engine yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `PORT`, `HOST`, `APP_URL`, `EZTHROTTLE_URL`, `EZTHROTTLE_API_KEY`,
    /// `EZTHROTTLE_TRACKTAGS_URL`, `UPSTREAM_URL`, `EZTHROTTLE_WEBHOOK_SECRET` and
    /// `EZTHROTTLE_WEBHOOK_SECONDARY_SECRET`. Empty values count as unset.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a `PORT` that is not a port number or a `HOST` that is not an
    /// IP address.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut config = Self::default();
        if let Some(port) = read(ENV_PORT) {
            let parsed = port.parse::<u16>().map_err(|_| ConfigError {
                name: ENV_PORT,
                value: port.clone(),
                reason: "not a port number (0-65535)",
            })?;
            config.bind.set_port(parsed);
        }
        if let Some(host) = read(ENV_HOST) {
            let ip = host.parse::<IpAddr>().map_err(|_| ConfigError {
                name: ENV_HOST,
                value: host.clone(),
                reason: "not an IP address",
            })?;
            config.bind.set_ip(ip);
        }
        config.app_url = read(ENV_APP_URL);
        config.ezthrottle_url = read(ezthrottle::ENV_URL);
        config.api_key = read(ezthrottle::ENV_API_KEY);
        config.tracktags_url = read(ezthrottle::ENV_TRACKTAGS_URL);
        config.upstream_url = read(ENV_UPSTREAM_URL);
        config.webhook_secret = read(ENV_WEBHOOK_SECRET);
        config.webhook_secret_secondary = read(ENV_WEBHOOK_SECRET_SECONDARY);
        Ok(config)
    }

    /// Listens on this address.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Listens on this port of the configured address (`0`: any free port).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// The public base URL of this app.
    #[must_use]
    pub fn app_url(mut self, url: impl Into<String>) -> Self {
        self.app_url = Some(url.into());
        self
    }

    /// Submits jobs to the engine at this URL (direct mode, unless a proxy URL is set too).
    #[must_use]
    pub fn ezthrottle_url(mut self, url: impl Into<String>) -> Self {
        self.ezthrottle_url = Some(url.into());
        self
    }

    /// The API key.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Cloud mode through this TrackTags proxy.
    #[must_use]
    pub fn tracktags_url(mut self, url: impl Into<String>) -> Self {
        self.tracktags_url = Some(url.into());
        self
    }

    /// The httpbin-compatible target of the scenarios (instead of the built-in one).
    #[must_use]
    pub fn upstream_url(mut self, url: impl Into<String>) -> Self {
        self.upstream_url = Some(url.into());
        self
    }

    /// Verifies every delivery against this secret.
    #[must_use]
    pub fn webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// Also accepts deliveries signed with this secret.
    #[must_use]
    pub fn webhook_secret_secondary(mut self, secret: impl Into<String>) -> Self {
        self.webhook_secret_secondary = Some(secret.into());
        self
    }

    /// The EZThrottle client these settings describe, with the SDK's precedence: a proxy
    /// URL means cloud mode through it; otherwise an engine URL means direct mode;
    /// otherwise cloud mode with the default URLs (which needs the API key).
    ///
    /// # Errors
    ///
    /// [`ezthrottle::Error::Config`] when the settings do not make a usable client.
    pub fn client(&self) -> Result<EZThrottle, ezthrottle::Error> {
        let settings = |name: &str| match name {
            ezthrottle::ENV_API_KEY => self.api_key.clone(),
            ezthrottle::ENV_TRACKTAGS_URL => self.tracktags_url.clone(),
            ezthrottle::ENV_URL => self.ezthrottle_url.clone(),
            _ => None,
        };
        let builder = EZThrottleBuilder::from_lookup(settings);
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults() {
        let config = from(&[]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8000".parse().unwrap());
        assert!(config.app_url.is_none() && config.upstream_url.is_none() && config.webhook_secret.is_none());
        assert!(config.client().is_err(), "cloud mode without a key is refused");
    }

    #[test]
    fn reads_every_variable() {
        let config = from(&[
            ("PORT", "9001"),
            ("HOST", "0.0.0.0"),
            ("APP_URL", "https://app.example.com"),
            ("EZTHROTTLE_URL", "http://127.0.0.1:4000"),
            ("UPSTREAM_URL", "https://httpbin.org"),
            ("EZTHROTTLE_WEBHOOK_SECRET", "  s1  "),
            ("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", " s2 "),
        ])
        .unwrap();
        assert_eq!(config.bind, "0.0.0.0:9001".parse().unwrap());
        assert_eq!(config.app_url.as_deref(), Some("https://app.example.com"));
        assert_eq!(config.upstream_url.as_deref(), Some("https://httpbin.org"));
        assert_eq!(config.webhook_secret.as_deref(), Some("s1"));
        // The CLI's spelling (`ezthrottle submit --wait`, `verify`, `secrets`): one name for both.
        assert_eq!(config.webhook_secret_secondary.as_deref(), Some("s2"));
        assert!(config.client().unwrap().is_direct());
        let empty = from(&[("EZTHROTTLE_WEBHOOK_SECONDARY_SECRET", "")]).unwrap();
        assert!(empty.webhook_secret_secondary.is_none(), "empty counts as unset");
    }

    #[test]
    fn an_api_key_alone_means_cloud() {
        let config = from(&[("EZTHROTTLE_API_KEY", "ck_live_x")]).unwrap();
        assert!(!config.client().unwrap().is_direct());
    }

    #[test]
    fn bad_values_are_named() {
        let error = from(&[("PORT", "eighty")]).unwrap_err();
        assert!(error.to_string().starts_with("PORT=\"eighty\""), "{error}");
        assert!(from(&[("HOST", "localhost")]).is_err());
    }
}
