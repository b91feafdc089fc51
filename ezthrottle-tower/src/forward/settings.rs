//! The job settings shared by [`ForwardLayer`](super::ForwardLayer),
//! [`Forward`](super::Forward) and the reqwest `ForwardMiddleware`.

use std::fmt;
use std::sync::Arc;

use ezthrottle_core::protocol::Metadata;
use ezthrottle_core::{EZThrottle, ExecutionMode, RegionPolicy, RetryPolicy, StepType, Webhook};
use http::HeaderName;
use http::request::Parts;

use super::breaker::CircuitBreaker;

/// The default of `max_replay_bytes`: 1 MiB (the most a job body may carry).
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 1024 * 1024;

/// How a forwarded job's idempotency key is chosen. Two submissions with the same key are
/// one job: the second answers the first job's id with `duplicate: true`.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum IdempotencyKey {
    /// The request's `Idempotency-Key` header when it has one, else [`IdempotencyKey::Hash`]
    /// (the default).
    #[default]
    HeaderThenHash,
    /// No key is sent: EZThrottle derives one from the method, URL and body, so identical
    /// requests are one job.
    Hash,
    /// A fresh UUID v4 for every forwarded call: every call is its own job.
    Unique,
    /// A key computed from the request head and body; `None` falls back to
    /// [`IdempotencyKey::Hash`]. Build it with [`IdempotencyKey::from_fn`].
    Fn(IdempotencyKeyFn),
}

impl IdempotencyKey {
    /// A key computed from the request head (without extensions) and its body.
    ///
    /// ```
    /// use ezthrottle_tower::IdempotencyKey;
    /// let by_order = IdempotencyKey::from_fn(|parts, _body| {
    ///     parts.headers.get("x-order-id").and_then(|v| v.to_str().ok()).map(|id| format!("order-{id}"))
    /// });
    /// # let _ = by_order;
    /// ```
    pub fn from_fn<F>(key: F) -> Self
    where
        F: Fn(&Parts, &[u8]) -> Option<String> + Send + Sync + 'static,
    {
        Self::Fn(IdempotencyKeyFn(Arc::new(key)))
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderThenHash => f.write_str("HeaderThenHash"),
            Self::Hash => f.write_str("Hash"),
            Self::Unique => f.write_str("Unique"),
            Self::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}

/// A key function for [`IdempotencyKey::Fn`].
#[derive(Clone)]
pub struct IdempotencyKeyFn(pub(crate) Arc<KeyFn>);

pub(crate) type KeyFn = dyn Fn(&Parts, &[u8]) -> Option<String> + Send + Sync;

impl fmt::Debug for IdempotencyKeyFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdempotencyKeyFn(..)")
    }
}

pub(crate) type MetadataFn = Arc<dyn Fn(&Parts) -> Metadata + Send + Sync>;

/// Everything but the policy: where and how forwarded jobs run.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) client: EZThrottle,
    pub(crate) webhooks: Vec<Webhook>,
    pub(crate) webhook_quorum: u32,
    pub(crate) regions: Vec<String>,
    pub(crate) region_policy: RegionPolicy,
    pub(crate) execution_mode: ExecutionMode,
    pub(crate) retry_policy: Option<RetryPolicy>,
    pub(crate) metadata: Metadata,
    pub(crate) metadata_fn: Option<MetadataFn>,
    pub(crate) step_type: StepType,
    pub(crate) idempotency: IdempotencyKey,
    pub(crate) max_replay_bytes: usize,
    pub(crate) deny_headers: Vec<HeaderName>,
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl Settings {
    pub(crate) fn new(client: EZThrottle) -> Self {
        Self {
            client,
            webhooks: Vec::new(),
            webhook_quorum: 1,
            regions: Vec::new(),
            region_policy: RegionPolicy::default(),
            execution_mode: ExecutionMode::default(),
            retry_policy: None,
            metadata: Metadata::new(),
            metadata_fn: None,
            step_type: StepType::Frugal,
            idempotency: IdempotencyKey::default(),
            max_replay_bytes: DEFAULT_MAX_REPLAY_BYTES,
            deny_headers: Vec::new(),
            breaker: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("client", &self.client)
            .field("webhooks", &self.webhooks)
            .field("webhook_quorum", &self.webhook_quorum)
            .field("regions", &self.regions)
            .field("region_policy", &self.region_policy)
            .field("execution_mode", &self.execution_mode)
            .field("retry_policy", &self.retry_policy)
            .field("metadata", &self.metadata)
            .field("metadata_fn", &self.metadata_fn.as_ref().map(|_| ".."))
            .field("step_type", &self.step_type)
            .field("idempotency", &self.idempotency)
            .field("max_replay_bytes", &self.max_replay_bytes)
            .field("deny_headers", &self.deny_headers)
            .field("breaker", &self.breaker)
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

/// The job-settings setters, identical on the layer, the service and the middleware.
/// The type must have `fn settings_mut(&mut self) -> &mut Settings`.
macro_rules! settings_setters {
    () => {
        /// Webhooks that receive the result of every forwarded job (replaces the list).
        pub fn webhooks(mut self, webhooks: impl IntoIterator<Item = ::ezthrottle_core::Webhook>) -> Self {
            self.settings_mut().webhooks = webhooks.into_iter().collect();
            self
        }

        /// How many voting webhooks must answer 2xx (default 1).
        pub fn webhook_quorum(mut self, quorum: u32) -> Self {
            self.settings_mut().webhook_quorum = quorum;
            self
        }

        /// Regions the forwarded jobs execute in, e.g. `["iad", "lax"]`.
        pub fn regions<I, T>(mut self, regions: I) -> Self
        where
            I: IntoIterator<Item = T>,
            T: Into<String>,
        {
            self.settings_mut().regions = regions.into_iter().map(Into::into).collect();
            self
        }

        /// What a job does when one of its regions is down (default `fallback`).
        pub fn region_policy(mut self, policy: ::ezthrottle_core::RegionPolicy) -> Self {
            self.settings_mut().region_policy = policy;
            self
        }

        /// How a job with several regions executes (default `race`).
        pub fn execution_mode(mut self, mode: ::ezthrottle_core::ExecutionMode) -> Self {
            self.settings_mut().execution_mode = mode;
            self
        }

        /// EZThrottle's retry policy for the forwarded jobs (default: the server's).
        pub fn retry_policy(mut self, policy: ::ezthrottle_core::RetryPolicy) -> Self {
            self.settings_mut().retry_policy = Some(policy);
            self
        }

        /// Metadata added to every forwarded job (echoed back in its webhook).
        pub fn metadata(mut self, metadata: ::ezthrottle_core::protocol::Metadata) -> Self {
            self.settings_mut().metadata = metadata;
            self
        }

        /// Metadata computed from each forwarded request's head (method, URI, version,
        /// headers; extensions are not available). Its entries win over
        /// [`metadata`](Self::metadata)'s.
        pub fn metadata_fn<F>(mut self, metadata: F) -> Self
        where
            F: Fn(&::http::request::Parts) -> ::ezthrottle_core::protocol::Metadata + Send + Sync + 'static,
        {
            self.settings_mut().metadata_fn = Some(::std::sync::Arc::new(metadata));
            self
        }

        /// `Frugal` (the default): call the target first, forward only the outcomes the
        /// policy selects. `Performance`: submit every request to EZThrottle without
        /// calling the target (requests whose body cannot be captured still go to the
        /// target).
        pub fn step_type(mut self, step_type: ::ezthrottle_core::StepType) -> Self {
            self.settings_mut().step_type = step_type;
            self
        }

        /// How the job's idempotency key is chosen (default
        /// [`IdempotencyKey::HeaderThenHash`](crate::IdempotencyKey::HeaderThenHash)).
        pub fn idempotency(mut self, key: crate::IdempotencyKey) -> Self {
            self.settings_mut().idempotency = key;
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

pub(crate) use policy_setters;
pub(crate) use settings_setters;
