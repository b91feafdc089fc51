//! [`IdempotencyLayer`] and its options.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use tower_layer::Layer;

use super::audit::{IdempotencyEvent, IdempotencyHook};
use super::inspect::IdempotencyKeys;
use super::key::{KeySource, ScopeFn, credential_scope};
use super::memory::MemoryIdempotencyStore;
use super::service::Idempotency;
use super::store::IdempotencyStore;
use super::{CACHED_HEADER, DEFAULT_NON_SUCCESS_TTL, DEFAULT_TTL};

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
    pub(crate) scope: Scope,
    pub(crate) safe_methods: bool,
    pub(crate) ttl: Duration,
    pub(crate) non_success_ttl: Duration,
    pub(crate) lock_ttl: Duration,
    pub(crate) wait_timeout: Duration,
    pub(crate) in_flight: InFlight,
    pub(crate) max_body: usize,
    pub(crate) max_stored_body: usize,
    pub(crate) replay_header: HeaderName,
    pub(crate) on_decision: Option<IdempotencyHook>,
}

/// Whose a key is: [`credential_scope`] unless [`IdempotencyLayer::scope`] says otherwise.
#[derive(Clone)]
pub(crate) struct Scope(Option<ScopeFn>);

impl Scope {
    pub(crate) fn of(&self, parts: &http::request::Parts) -> String {
        match &self.0 {
            Some(scope) => scope(parts),
            None => credential_scope(parts),
        }
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Scope(custom)" } else { "Scope(credentials)" })
    }
}

impl IdempotencyLayer<MemoryIdempotencyStore> {
    /// A layer with a fresh [`MemoryIdempotencyStore`].
    #[must_use]
    pub fn memory() -> Self {
        Self::new(MemoryIdempotencyStore::new())
    }
}

impl<St: IdempotencyStore> IdempotencyLayer<St> {
    /// A layer over `store` with the defaults: [`KeySource::Auto`], keys scoped by
    /// [`credential_scope`], safe methods not keyed, 24 h TTL (5 min for answers other
    /// than 2xx), concurrent repeats wait up to 10 s, 60 s lock (renewed while the handler
    /// runs), 2 MiB request bodies, 1 MiB stored bodies.
    #[must_use]
    pub fn new(store: St) -> Self {
        Self {
            config: Arc::new(IdempotencyConfig {
                store,
                key_source: KeySource::Auto,
                scope: Scope(None),
                safe_methods: false,
                ttl: DEFAULT_TTL,
                non_success_ttl: DEFAULT_NON_SUCCESS_TTL,
                lock_ttl: Duration::from_secs(60),
                wait_timeout: Duration::from_secs(10),
                in_flight: InFlight::Wait,
                max_body: 2 * 1024 * 1024,
                max_stored_body: 1024 * 1024,
                replay_header: HeaderName::from_static(crate::REPLAY_HEADER),
                on_decision: None,
            }),
        }
    }

    /// The shared configuration (for the actix adapter).
    #[doc(hidden)]
    pub fn config(&self) -> &Arc<IdempotencyConfig<St>> {
        &self.config
    }

    /// Its keys, to inspect and clear in a caller's scope (see [`IdempotencyKeys`]). Shares
    /// the layer's store and options, later setters excepted.
    #[must_use]
    pub fn keys(&self) -> IdempotencyKeys<St> {
        IdempotencyKeys { config: Arc::clone(&self.config) }
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

    /// Whose keys are: requests share a stored answer (or a lock) only when they have the
    /// same key **and** the same scope. The default, [`credential_scope`], is a digest of
    /// the credential headers; a scope from the authenticated user (an extension an
    /// authentication layer outside this one set) is better where there is one. The store
    /// keeps a digest of scope and key, never the values.
    ///
    /// ```
    /// use ezthrottle_tower::idempotency::IdempotencyLayer;
    ///
    /// #[derive(Clone)]
    /// struct UserId(u64); // set by the authentication layer, outside this one
    ///
    /// let layer = IdempotencyLayer::memory()
    ///     .scope(|parts| parts.extensions.get::<UserId>().map(|user| user.0.to_string()).unwrap_or_default());
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn scope(self, scope: impl Fn(&http::request::Parts) -> String + Send + Sync + 'static) -> Self {
        self.with(|config| config.scope = Scope(Some(Arc::new(scope))))
    }

    /// Whether safe methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`) are keyed too (default
    /// `false`: they pass through untouched, their `Idempotency-Key` ignored, so a
    /// streaming `GET` is never held).
    #[must_use]
    pub fn key_safe_methods(self, keyed: bool) -> Self {
        self.with(|config| config.safe_methods = keyed)
    }

    /// How long 2xx answers are kept (default 24 h).
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|config| config.ttl = ttl)
    }

    /// How long other stored answers (3xx, and 4xx that do not refuse the request, such as
    /// 404) are kept (default [`DEFAULT_NON_SUCCESS_TTL`], 5 minutes): junk requests do not
    /// hold their keys for a day.
    #[must_use]
    pub fn non_success_ttl(self, ttl: Duration) -> Self {
        self.with(|config| config.non_success_ttl = ttl)
    }

    /// How long a running request holds its key without a renewal (default 60 s). The
    /// layer renews the lock every third of this while the handler runs and its answer is
    /// read; if the replica running it dies (or cannot reach the store), the lock lapses
    /// and for another `lock_ttl` a repeat gets `409` (the outcome is unknown) rather than
    /// running the handler a second time; then the key is free.
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

    /// The largest answer body stored, in bytes (default 1 MiB). At most this much of the
    /// handler's answer is buffered: a larger answer is streamed through (the buffered
    /// part, then the rest) but not stored, the key released, and a repeat runs again.
    #[must_use]
    pub fn max_stored_body(self, bytes: usize) -> Self {
        self.with(|config| config.max_stored_body = bytes)
    }

    /// The header marking a replayed answer, sent as `<name>: true` (default
    /// [`REPLAY_HEADER`](crate::REPLAY_HEADER), `X-Idempotent-Replay`); see also
    /// [`x_cached`](Self::x_cached).
    ///
    /// ```
    /// use ezthrottle_tower::idempotency::IdempotencyLayer;
    /// use http::HeaderName;
    ///
    /// let layer = IdempotencyLayer::memory().replay_header(HeaderName::from_static("x-replayed"));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn replay_header(self, name: HeaderName) -> Self {
        self.with(|config| config.replay_header = name)
    }

    /// Calls `hook` with the decision for every keyed request (run, replayed, in progress,
    /// outcome unknown, mismatch, store failed; see [`IdempotencyEvent`]), for an audit
    /// trail of every attempt or the design's `idempotent_replays_total` and
    /// `concurrent_conflicts_total`. It runs on the request's task before the handler (or
    /// the answer): keep it quick. The event holds the key's digest, never the key.
    ///
    /// ```
    /// use ezthrottle_tower::idempotency::{IdempotencyLayer, IdempotencyOutcome};
    ///
    /// let layer = IdempotencyLayer::memory().on_decision(|event| {
    ///     if event.outcome == IdempotencyOutcome::Replayed {
    ///         tracing::info!(key = event.key, "replayed a stored answer");
    ///     }
    /// });
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn on_decision(self, hook: impl Fn(&IdempotencyEvent<'_>) + Send + Sync + 'static) -> Self {
        self.with(|config| config.on_decision = Some(crate::hook::Hook(Arc::new(hook))))
    }

    /// Marks replayed answers `X-Cached: true` ([`CACHED_HEADER`](super::CACHED_HEADER)), as
    /// the idempotent webhook handler design does: the same as
    /// `replay_header(HeaderName::from_static("x-cached"))`.
    ///
    /// ```
    /// let layer = ezthrottle_tower::idempotency::IdempotencyLayer::memory().x_cached();
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn x_cached(self) -> Self {
        self.replay_header(HeaderName::from_static(CACHED_HEADER))
    }
}

impl<S, St> Layer<S> for IdempotencyLayer<St> {
    type Service = Idempotency<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency { inner, config: Arc::clone(&self.config) }
    }
}
