//! The EZThrottle client described by the connection flags.

use ezthrottle_core::{ENV_API_KEY, EZThrottle};

use crate::args::Connection;
use crate::output::CliError;

impl Connection {
    /// Builds the client, with the semantics of `EZThrottle::from_env`: a TrackTags URL
    /// means cloud mode through it; an EZThrottle URL alone means direct mode; neither
    /// means cloud with the default URLs (an API key is then required).
    pub(crate) fn client(&self) -> Result<EZThrottle, CliError> {
        let set = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let (api_key, tracktags, ezthrottle) =
            (set(&self.api_key), set(&self.tracktags_url), set(&self.ezthrottle_url));
        let direct = tracktags.is_none() && ezthrottle.is_some();
        let mut builder = EZThrottle::builder().timeout(self.request_timeout);
        match (tracktags, ezthrottle) {
            (Some(tracktags), ezthrottle) => {
                builder = builder.tracktags_url(tracktags);
                if let Some(ezthrottle) = ezthrottle {
                    builder = builder.ezthrottle_url(ezthrottle);
                }
            }
            (None, Some(direct)) => builder = builder.direct(direct),
            (None, None) => {}
        }
        match api_key {
            Some(key) => builder = builder.api_key(key),
            None if !direct => {
                return Err(CliError::usage(format!(
                    "an API key is required for EZThrottle cloud: pass --api-key or set {ENV_API_KEY} \
                     (or pass --ezthrottle-url URL to talk to a local engine)"
                )));
            }
            None => {}
        }
        Ok(builder.build()?)
    }
}
