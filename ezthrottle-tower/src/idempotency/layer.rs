//! [`IdempotencyLayer`] and its options.

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::DEFAULT_TTL;
use super::key::KeySource;
use super::memory::MemoryIdempotencyStore;
use super::service::Idempotency;
use super::store::IdempotencyStore;

/// What a concurrent repeat gets while the first request with its key is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InFlight {
    /// Wait for the first request's answer (up to the wait timeout, then 409).
    #[default]
    Wait,
    /// Answer `409 Conflict` with `Retry-After` at once.
    Conflict,
}

/// A tower layer suppressing duplicate requests. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct IdempotencyLayer<St = MemoryIdempotencyStore> {
    config: Arc<IdempotencyConfig<St>>,
}

/// The configuration one layer and its services share (and the actix middleware, through
/// `ezthrottle-actix`).
#[derive(Debug, Clone)]
pub struct IdempotencyConfig<St> {
    pub(crate) store: St,
    pub(crate) key_source: KeySource,
    pub(crate) ttl: Duration,
    pub(crate) lock_ttl: Duration,
    pub(crate) wait_timeout: Duration,
    pub(crate) in_flight: InFlight,
    pub(crate) max_body: usize,
    pub(crate) max_stored_body: usize,
}

impl IdempotencyLayer<MemoryIdempotencyStore> {
    /// A layer with a fresh [`MemoryIdempotencyStore`].
    #[must_use]
    pub fn memory() -> Self {
        Self::new(MemoryIdempotencyStore::new())
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// A layer over `store` with the defaults: [`KeySource::Auto`], 24 h TTL, concurrent
    /// repeats wait up to 10 s, 60 s lock, 2 MiB request bodies, 1 MiB stored bodies.
    #[must_use]
    pub fn new(store: St) -> Self {
        Self {
            config: Arc::new(IdempotencyConfig {
                store,
                key_source: KeySource::Auto,
                ttl: DEFAULT_TTL,
                lock_ttl: Duration::from_secs(60),
                wait_timeout: Duration::from_secs(10),
                in_flight: InFlight::Wait,
                max_body: 2 * 1024 * 1024,
                max_stored_body: 1024 * 1024,
            }),
        }
    }

    /// The shared configuration (for the actix adapter).
    #[doc(hidden)]
    pub fn config(&self) -> &Arc<IdempotencyConfig<St>> {
        &self.config
    }

    fn with(self, change: impl FnOnce(&mut IdempotencyConfig<St>)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        change(&mut config);
        Self { config: Arc::new(config) }
    }

    /// Where keys come from (default [`KeySource::Auto`]).
    #[must_use]
    pub fn key_source(self, source: KeySource) -> Self {
        self.with(|config| config.key_source = source)
    }

    /// How long answers are kept (default 24 h).
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|config| config.ttl = ttl)
    }

    /// How long a running request holds its key at most (default 60 s): if the replica
    /// running it dies, the key frees itself after this.
    #[must_use]
    pub fn lock_ttl(self, ttl: Duration) -> Self {
        self.with(|config| config.lock_ttl = ttl)
    }

    /// What a concurrent repeat gets (default [`InFlight::Wait`]).
    #[must_use]
    pub fn in_flight(self, behaviour: InFlight) -> Self {
        self.with(|config| config.in_flight = behaviour)
    }

    /// How long a concurrent repeat waits before getting 409 (default 10 s).
    #[must_use]
    pub fn wait_timeout(self, timeout: Duration) -> Self {
        self.with(|config| config.wait_timeout = timeout)
    }

    /// The largest request body read, in bytes (default 2 MiB; larger gets 413).
    #[must_use]
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|config| config.max_body = bytes)
    }

    /// The largest answer body stored, in bytes (default 1 MiB). A larger answer is
    /// returned but not stored: the key is released and a repeat runs again.
    #[must_use]
    pub fn max_stored_body(self, bytes: usize) -> Self {
        self.with(|config| config.max_stored_body = bytes)
    }
}

impl<S, St> Layer<S> for IdempotencyLayer<St> {
    type Service = Idempotency<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency { inner, config: Arc::clone(&self.config) }
    }
}
