//! [`IdempotencyEvent`]: what the layer's audit hook
//! ([`IdempotencyLayer::on_decision`](super::IdempotencyLayer::on_decision)) sees.

/// What the layer decided for a keyed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdempotencyOutcome {
    /// The first request with its key: the handler runs.
    Run,
    /// A repeat: the stored answer is replayed, the handler does not run.
    Replayed,
    /// A concurrent repeat got `409` (another request with the key is running).
    InProgress,
    /// A repeat got `409` because an earlier request's lock lapsed: its outcome is unknown.
    OutcomeUnknown,
    /// The key came with a different request (method, path, query or body): `422`.
    Mismatch,
    /// The store failed: `503`, the handler does not run.
    StoreFailed,
}

impl IdempotencyOutcome {
    /// The outcome's name in telemetry: `run`, `replayed`, `in_progress`,
    /// `outcome_unknown`, `mismatch`, `store_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Replayed => "replayed",
            Self::InProgress => "in_progress",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Mismatch => "mismatch",
            Self::StoreFailed => "store_failed",
        }
    }
}

/// One keyed request's decision, for an audit trail or metrics (replays, conflicts): given
/// to the hook of [`IdempotencyLayer::on_decision`](super::IdempotencyLayer::on_decision),
/// in the actix middleware made from the layer too. Requests without a key pass through
/// unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyEvent<'a> {
    /// What was decided.
    pub outcome: IdempotencyOutcome,
    /// The key as stored: a SHA-256 digest of the caller's scope and the key (neither the
    /// client's key nor a credential), the same for every request of that caller and key.
    pub key: &'a str,
}

/// The hook, shared by every service of a layer.
pub(crate) type IdempotencyHook = crate::hook::Hook<dyn Fn(&IdempotencyEvent<'_>) + Send + Sync>;
