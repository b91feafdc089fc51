//! The EZThrottle client described by the connection flags.

use ezthrottle_core::{ENV_API_KEY, ENV_TRACKTAGS_URL, ENV_URL, EZThrottle, EZThrottleBuilder};

use crate::args::Connection;
use crate::output::CliError;

impl Connection {
    /// Builds the client, with the semantics of `EZThrottle::from_env` (the flags stand in
    /// for the variables): a TrackTags URL means cloud mode through it; an EZThrottle URL
    /// alone means direct mode; neither means cloud with the default URLs (an API key is
    /// then required).
    pub(crate) fn client(&self) -> Result<EZThrottle, CliError> {
        let flags = |name: &str| match name {
            ENV_API_KEY => self.api_key.clone(),
            ENV_TRACKTAGS_URL => self.tracktags_url.clone(),
            ENV_URL => self.ezthrottle_url.clone(),
            _ => None,
        };
        let builder = EZThrottleBuilder::from_lookup(flags).timeout(self.request_timeout);
        let client = builder.build().map_err(|error| match error {
            ezthrottle_core::Error::Config(message) if message.contains(ENV_API_KEY) => CliError::usage(format!(
                "an API key is required for EZThrottle cloud: pass --api-key or set {ENV_API_KEY} \
                 (or pass --ezthrottle-url URL to talk to a local engine)"
            )),
            other => other.into(),
        })?;
        let mode = if client.is_direct() { "direct" } else { "cloud" };
        let url = self.tracktags_url.as_deref().or(self.ezthrottle_url.as_deref()).unwrap_or("the default");
        tracing::info!(mode, url, "talking to EZThrottle");
        Ok(client)
    }
}
