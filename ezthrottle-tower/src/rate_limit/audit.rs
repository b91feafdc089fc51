//! [`RateLimitEvent`]: what the layer's audit hook ([`RateLimitLayer::on_decision`]) sees.
//!
//! [`RateLimitLayer::on_decision`]: super::RateLimitLayer::on_decision

use super::algorithm::Decision;

/// One request's rate-limit decision, for an audit trail or metrics: given to the hook of
/// [`RateLimitLayer::on_decision`](super::RateLimitLayer::on_decision) for every request
/// the layer (or the actix middleware made from it) sees.
///
/// No value a client sent is in it: the scope is the key the limit is counted under (a
/// SHA-256 digest of the API key, user or address, [`ANONYMOUS`](super::ANONYMOUS) or
/// `global`), never the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitEvent<'a> {
    /// Whether the request goes on to the handler.
    pub allowed: bool,
    /// The rule that decided: the refusing one (the longest `retry_after`), or the
    /// tightest when admitted; `None` when the store could not decide (the fail mode
    /// decided) or there are no rules.
    pub rule: Option<&'a str>,
    /// That rule's scope key (a digest, `anonymous` or `global`).
    pub scope: Option<&'a str>,
    /// The store's decision for that rule: limit, remaining, reset, retry-after.
    pub decision: Option<Decision>,
}

/// The hook, shared by every service of a layer.
pub(crate) type DecisionHook = crate::hook::Hook<dyn Fn(&RateLimitEvent<'_>) + Send + Sync>;
