//! [`ForwardLayer`]: the tower layer.

use std::sync::Arc;

use ezthrottle_core::EZThrottle;
use tower_layer::Layer;

use super::policy::DefaultForwardPolicy;
use super::service::Forward;
use super::settings::{Config, Settings, config_handle_impls, policy_setters, settings_setters};

/// Applies [`Forward`] to a service: calls that fail in a way the policy `P` selects (by
/// default 429, 500, 502, 503, 504 and transport errors) and that may run again (the
/// replay rule, see [Which calls forward](crate::forward#which-calls-forward)) are
/// submitted to EZThrottle as jobs and answered `202 Accepted` (or as
/// [`respond_with`](Self::respond_with) says).
///
/// Setters take and return the layer by value. The configuration sits behind an `Arc`:
/// cloning the layer, or the services it makes, is cheap, and they share their
/// [`CircuitBreaker`](crate::CircuitBreaker).
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_core::{EZThrottle, RetryPolicy, Webhook};
/// use ezthrottle_tower::{CircuitBreaker, ForwardLayer};
/// use http::{HeaderName, StatusCode};
///
/// # fn main() -> Result<(), ezthrottle_core::Error> {
/// let client = EZThrottle::builder().direct("http://127.0.0.1:8080").build()?;
/// let layer = ForwardLayer::new(client)
///     .forward_on_status(StatusCode::REQUEST_TIMEOUT)
///     // Every job option is set on the template, a `Step`:
///     .with_template(|job| {
///         job.webhook(Webhook::new("https://app.example.com/ezthrottle"))
///             .retry_policy(RetryPolicy::new().max_retries(5).retry_codes([429, 503]))
///     })
///     .deny_header(HeaderName::from_static("x-internal-token"))
///     .circuit_breaker(CircuitBreaker::new(5, Duration::from_secs(30)));
/// # let _ = layer; Ok(()) }
/// ```
pub struct ForwardLayer<P = DefaultForwardPolicy> {
    pub(crate) config: Arc<Config<P>>,
}

impl ForwardLayer {
    /// Forwards to `client` with the default policy and settings: FRUGAL (call the target
    /// first), idempotency from the `Idempotency-Key` header else the credential hash,
    /// bodies up to 1 MiB captured, no webhooks, no circuit breaker.
    pub fn new(client: EZThrottle) -> Self {
        Self { config: Arc::new(Config { settings: Settings::new(client), policy: DefaultForwardPolicy::new() }) }
    }
}

impl<P: Clone> ForwardLayer<P> {
    settings_setters!();
}

policy_setters!(ForwardLayer);
config_handle_impls!(ForwardLayer);

impl<S, P> Layer<S> for ForwardLayer<P> {
    type Service = Forward<S, P>;

    fn layer(&self, inner: S) -> Forward<S, P> {
        Forward::from_config(inner, Arc::clone(&self.config))
    }
}
