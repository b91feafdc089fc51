//! [`LimitStatus`]: a caller's limits and what is left of them, read without counting.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::headers::ceil_secs;
use super::layer::RateLimitLayer;
use super::scope::RequestHead;
use super::store::RateLimitStore;
use crate::StoreError;

/// One rule's limit for one caller, as [`RateLimitLayer::status`] reads it (nothing
/// counted). As JSON: `{"rule":"per_user","limit":100,"remaining":97,"reset":42}`, `reset`
/// in whole seconds rounded up (as `RateLimit-Reset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimitStatus {
    /// The rule's name.
    pub rule: String,
    /// The most requests admitted at once (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests admitted right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the limit is whole again (`RateLimit-Reset`).
    #[serde(serialize_with = "whole_seconds")]
    pub reset: Duration,
}

fn whole_seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(ceil_secs(*duration))
}

impl<St: RateLimitStore> RateLimitLayer<St> {
    /// The limits of the caller making `head` and what is left of each, one per rule, in
    /// the rules' order: the store's state read without counting a request
    /// ([`RateLimitStore::peek`]). The caller is found as the rules find it (their
    /// [`Scope`](super::Scope)s), so a caller only sees its own budget. The axum
    /// `rate_limit_status_route` serves it (features `axum`, `rate-limit`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, RequestHead, Rule, Scope};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let layer = RateLimitLayer::new()
    ///     .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(100, Duration::from_secs(60))));
    /// let request = http::Request::get("/api/v1/rate-limits").header("x-api-key", "k1").body(())?;
    /// let status = layer.status(&RequestHead::of(&request)).await?;
    /// assert_eq!((status[0].rule.as_str(), status[0].limit, status[0].remaining), ("per_key", 100, 100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn status(&self, head: &RequestHead<'_>) -> Result<Vec<LimitStatus>, StoreError> {
        let config = self.config();
        let decisions = self.store().peek(config.checks(head)).await?;
        Ok(config
            .rules
            .iter()
            .zip(decisions)
            .map(|(rule, decision)| LimitStatus {
                rule: rule.name().to_owned(),
                limit: decision.limit,
                remaining: decision.remaining,
                reset: decision.reset,
            })
            .collect())
    }
}
