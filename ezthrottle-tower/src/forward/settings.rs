//! The settings shared by [`ForwardLayer`](super::ForwardLayer),
//! [`Forward`](super::Forward) and the reqwest `ForwardMiddleware`: the job template (a
//! [`Step`], the one place job options are set) and what only a layer decides.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ezthrottle_core::protocol::{MAX_RETRY_AT_HORIZON, Metadata};
use ezthrottle_core::{EZThrottle, Step, StepType};
use http::HeaderName;
use http::request::Parts;

use super::breaker::CircuitBreaker;
use super::extension::ForwardResponse;
use super::replay::NotSentFn;

/// The default of `max_replay_bytes`: 1 MiB (the most a job body may carry).
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 1024 * 1024;

pub(crate) type KeyFn = dyn Fn(&Parts, &[u8]) -> Option<String> + Send + Sync;
pub(crate) type MetadataFn = Arc<dyn Fn(&Parts) -> Metadata + Send + Sync>;

/// The template of every job, and where and how calls are forwarded.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) client: EZThrottle,
    /// Every option of a forwarded job; its request (URL, method, body) is the call's.
    pub(crate) template: Step,
    pub(crate) metadata_fn: Option<MetadataFn>,
    pub(crate) key_fn: Option<Arc<KeyFn>>,
    pub(crate) max_replay_bytes: usize,
    pub(crate) deny_headers: Vec<HeaderName>,
    pub(crate) breaker: Option<CircuitBreaker>,
    /// How far ahead a target's `Retry-After` may put a job's `retry_at`.
    pub(crate) retry_at_horizon: Duration,
    /// What a forwarded call answers.
    pub(crate) respond_with: ForwardResponse,
    /// The user's tests for errors that prove a request was not sent.
    pub(crate) not_sent: Vec<NotSentFn>,
}

impl Settings {
    pub(crate) fn new(client: EZThrottle) -> Self {
        Self {
            client,
            // A layer calls the target first: FRUGAL is its default, where a `Step`'s is
            // PERFORMANCE.
            template: Step::default().step_type(StepType::Frugal),
            metadata_fn: None,
            key_fn: None,
            max_replay_bytes: DEFAULT_MAX_REPLAY_BYTES,
            deny_headers: Vec::new(),
            breaker: None,
            retry_at_horizon: MAX_RETRY_AT_HORIZON,
            respond_with: ForwardResponse::Receipt,
            not_sent: Vec::new(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("client", &self.client)
            .field("template", &self.template)
            .field("metadata_fn", &self.metadata_fn.as_ref().map(|_| ".."))
            .field("key_fn", &self.key_fn.as_ref().map(|_| ".."))
            .field("max_replay_bytes", &self.max_replay_bytes)
            .field("deny_headers", &self.deny_headers)
            .field("breaker", &self.breaker)
            .field("retry_at_horizon", &self.retry_at_horizon)
            .field("respond_with", &self.respond_with)
            .field("not_sent", &self.not_sent.len())
            .finish()
    }
}

/// The settings and the policy, shared (behind an `Arc`) by every clone of a layer,
/// service or middleware.
#[derive(Debug, Clone)]
pub(crate) struct Config<P> {
    pub(crate) settings: Settings,
    pub(crate) policy: P,
}

impl<P> Config<P> {
    /// `config`'s settings with `policy` instead of its own (the settings are moved out
    /// when nothing else shares them, cloned otherwise).
    pub(crate) fn with_policy<P2>(config: Arc<Self>, policy: P2) -> Arc<Config<P2>> {
        let settings = match Arc::try_unwrap(config) {
            Ok(config) => config.settings,
            Err(shared) => shared.settings.clone(),
        };
        Arc::new(Config { settings, policy })
    }
}

/// The setters, identical on the layer, the service and the middleware (one definition).
/// The type must have a `config: Arc<Config<P>>` field with `P: Clone`.
macro_rules! settings_setters {
    () => {
        /// The settings, unshared first if clones share them (copy on write).
        fn settings_mut(&mut self) -> &mut crate::forward::settings::Settings {
            &mut ::std::sync::Arc::make_mut(&mut self.config).settings
        }

        /// Changes the template of every forwarded job: a [`Step`](::ezthrottle_core::Step)
        /// whose options (webhooks, quorum, regions, region policy, execution mode, retry
        /// policy, metadata, idempotency strategy, step type, replay policy, ...) every job
        /// gets; the request itself (method, URL, end-to-end headers, body) is the call's.
        /// Its [`ReplayPolicy`](::ezthrottle_core::ReplayPolicy) (default `WhenSafe`) decides
        /// which selected failures may run again (see
        /// [Which calls forward](crate::forward#which-calls-forward)): `job.replay(ReplayPolicy::Always)`
        /// forwards a `POST` that may have run, for APIs that de-duplicate it themselves.
        ///
        /// The template starts as `Step::default()` with
        /// [`StepType::Frugal`](::ezthrottle_core::StepType::Frugal): call the target first,
        /// forward only the outcomes the policy selects. With `Performance` every request is
        /// submitted without calling the target (requests whose body cannot be captured
        /// still go to the target).
        ///
        /// The job's idempotency key is the request's `Idempotency-Key` header when it has
        /// one (the caller's key wins), else the template's strategy decides (by default
        /// [`IdempotentStrategy::CredentialHash`](::ezthrottle_core::IdempotentStrategy::CredentialHash):
        /// two callers with different credentials never share a job).
        pub fn with_template(
            mut self,
            change: impl FnOnce(::ezthrottle_core::Step) -> ::ezthrottle_core::Step,
        ) -> Self {
            let settings = self.settings_mut();
            let template = ::std::mem::take(&mut settings.template);
            settings.template = change(template);
            self
        }

        /// The template of every forwarded job (see [`with_template`](Self::with_template)).
        pub fn template(&self) -> &::ezthrottle_core::Step {
            &self.config.settings.template
        }

        /// Metadata computed from each forwarded request's head (method, URI, version,
        /// headers; extensions are not available). Its entries win over the template's.
        pub fn metadata_fn<F>(mut self, metadata: F) -> Self
        where
            F: Fn(&::http::request::Parts) -> ::ezthrottle_core::protocol::Metadata + Send + Sync + 'static,
        {
            self.settings_mut().metadata_fn = Some(::std::sync::Arc::new(metadata));
            self
        }

        /// Computes the job's idempotency key from the request head (without extensions)
        /// and its body, for requests without an `Idempotency-Key` header; `None` leaves
        /// it to the template's strategy.
        ///
        /// ```
        /// # let client = ezthrottle_core::EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap();
        /// let layer = ezthrottle_tower::ForwardLayer::new(client).idempotency_key_fn(|parts, _body| {
        ///     parts.headers.get("x-order-id").and_then(|v| v.to_str().ok()).map(|id| format!("order-{id}"))
        /// });
        /// # let _ = layer;
        /// ```
        pub fn idempotency_key_fn<F>(mut self, key: F) -> Self
        where
            F: Fn(&::http::request::Parts, &[u8]) -> Option<String> + Send + Sync + 'static,
        {
            self.settings_mut().key_fn = Some(::std::sync::Arc::new(key));
            self
        }

        /// The largest request body captured for forwarding (default 1 MiB). A body with
        /// a larger or unknown size is passed through untouched and cannot be forwarded.
        pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
            self.settings_mut().max_replay_bytes = bytes;
            self
        }

        /// A request header never copied into a job (on top of the hop-by-hop headers,
        /// which are always dropped). The target still receives it on the direct call.
        pub fn deny_header(mut self, name: ::http::HeaderName) -> Self {
            self.settings_mut().deny_headers.push(name);
            self
        }

        /// Enables the per-host [`CircuitBreaker`](crate::CircuitBreaker).
        pub fn circuit_breaker(mut self, breaker: crate::CircuitBreaker) -> Self {
            self.settings_mut().breaker = Some(breaker);
            self
        }

        /// The furthest ahead a target's `Retry-After` may put a forwarded job's
        /// `retry_at` (default and most:
        /// [`MAX_RETRY_AT_HORIZON`](::ezthrottle_core::protocol::MAX_RETRY_AT_HORIZON), 24 h;
        /// a longer `horizon` is clamped to it). A `Retry-After: 99999999999` is a job
        /// that runs within the horizon, not one that never runs.
        pub fn retry_at_horizon(mut self, horizon: ::std::time::Duration) -> Self {
            // Clamped where it is used (`retry_at_within`), the one place of the cap.
            self.settings_mut().retry_at_horizon = horizon;
            self
        }

        /// What a forwarded call answers: the `202 Accepted` receipt (the default), or
        /// the target's original answer with the [`ForwardedJob`](crate::ForwardedJob)
        /// extension (see [`ForwardResponse`](crate::ForwardResponse)).
        pub fn respond_with(mut self, response: crate::ForwardResponse) -> Self {
            self.settings_mut().respond_with = response;
            self
        }

        /// Tells which errors of the wrapped client, of type `E`, prove that the request
        /// was never written (a refused connection, DNS, TLS): such a call counts as
        /// *not sent* for the replay rule
        /// ([`ezthrottle_core::replay`]), so even a `POST` is forwarded.
        ///
        /// The layer reads by itself hyper-util's client error (`is_connect()`) and the
        /// chains of boxed errors, `io::Error`, `reqwest::Error` and
        /// `reqwest_middleware::Error`; any other error type counts as *sent, no answer*
        /// unless a test given here says otherwise. For a client of your own:
        ///
        /// ```
        /// #[derive(Debug)]
        /// enum ClientError { Connect(std::io::Error), Protocol(String) }
        ///
        /// # let client = ezthrottle_core::EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap();
        /// let layer = ezthrottle_tower::ForwardLayer::new(client)
        ///     .not_sent_when(|error: &ClientError| matches!(error, ClientError::Connect(_)));
        /// # let _ = (layer, ClientError::Protocol(String::new()));
        /// ```
        pub fn not_sent_when<E: 'static>(mut self, test: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
            self.settings_mut().not_sent.push(crate::forward::replay::not_sent_fn(test));
            self
        }
    };
}

/// The policy setters (`forward_on`, ...) for types whose policy is the default one, and
/// `policy` for every type. The type must have a `config: Arc<Config<P>>` field and take
/// its policy as the last generic parameter.
macro_rules! policy_setters {
    ($ty:ident $(< $($param:ident),* >)?) => {
        impl<$($($param,)*)?> $ty<$($($param,)*)? crate::DefaultForwardPolicy> {
            /// Replaces the statuses that forward (default 429, 500, 502, 503, 504).
            pub fn forward_on(mut self, statuses: impl Into<crate::StatusCodes>) -> Self {
                let policy = &mut ::std::sync::Arc::make_mut(&mut self.config).policy;
                *policy = policy.forward_on(statuses);
                self
            }

            /// Adds one status that forwards.
            pub fn forward_on_status(mut self, status: ::http::StatusCode) -> Self {
                let policy = &mut ::std::sync::Arc::make_mut(&mut self.config).policy;
                *policy = policy.forward_on_status(status);
                self
            }

            /// Whether errors of the wrapped client (refused or reset connections,
            /// timeouts) forward (default `true`).
            pub fn forward_on_transport_error(mut self, enabled: bool) -> Self {
                let policy = &mut ::std::sync::Arc::make_mut(&mut self.config).policy;
                *policy = policy.forward_on_transport_error(enabled);
                self
            }
        }
    };
}

/// For a type that is only a `config: Arc<Config<P>>` (the layer and the middleware):
/// `policy` and `forward_policy`, `Clone` (sharing the config, whatever `P` is) and
/// `Debug`.
macro_rules! config_handle_impls {
    ($ty:ident) => {
        impl<P> $ty<P> {
            /// Replaces the policy that decides which outcomes forward.
            pub fn policy<P2>(self, policy: P2) -> $ty<P2> {
                $ty { config: crate::forward::settings::Config::with_policy(self.config, policy) }
            }

            /// The policy.
            pub fn forward_policy(&self) -> &P {
                &self.config.policy
            }
        }

        impl<P> Clone for $ty<P> {
            fn clone(&self) -> Self {
                Self { config: ::std::sync::Arc::clone(&self.config) }
            }
        }

        impl<P: ::std::fmt::Debug> ::std::fmt::Debug for $ty<P> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("settings", &self.config.settings)
                    .field("policy", &self.config.policy)
                    .finish()
            }
        }
    };
}

pub(crate) use config_handle_impls;
pub(crate) use policy_setters;
pub(crate) use settings_setters;
