//! What the layer decides for a keyed request ([`IdempotencyConfig::admit`]) and how a handler's
//! answer is kept: shared by the tower service and the actix-web middleware.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use super::TARGET;
use super::audit::{IdempotencyEvent, IdempotencyOutcome};
use super::key::{KeySource, header_key, is_delivery, is_safe, store_key, webhook_key};
use super::layer::{IdempotencyConfig, InFlight};
use super::store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse};
use crate::StoreError;

/// An answer of the layer itself (refusals, replays).
pub type Answer = Response<Bytes>;

/// Answers that refuse the request instead of processing it (bad or unauthenticated
/// input, conflicts, limits). They are not stored: otherwise a forged webhook delivery
/// (refused with 401 by an extractor inside this layer) or a malformed retry would take the
/// key, and the genuine request would get its refusal replayed for the whole TTL.
pub(super) fn refuses_the_request(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 403 | 407 | 408 | 409 | 411 | 413 | 414 | 415 | 422 | 429 | 431)
}

pub(super) fn text(status: StatusCode, message: &'static str) -> Answer {
    let mut response = Response::new(Bytes::from_static(message.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn retry_later(status: StatusCode, message: &'static str) -> Answer {
    retry_after(status, message, HeaderValue::from_static("1"))
}

fn retry_after(status: StatusCode, message: &'static str, after: HeaderValue) -> Answer {
    let mut response = text(status, message);
    response.headers_mut().insert(header::RETRY_AFTER, after);
    response
}

fn in_progress() -> Decided {
    let answer = retry_later(StatusCode::CONFLICT, "a request with this Idempotency-Key is in progress");
    Decided::Answer(IdempotencyOutcome::InProgress, answer)
}

fn reused() -> Decided {
    let answer = text(StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key reused with a different request");
    Decided::Answer(IdempotencyOutcome::Mismatch, answer)
}

/// The stored answer, marked with the layer's replay header.
fn replay(stored: &StoredResponse, header: &HeaderName) -> Answer {
    let mut response = Response::new(stored.body.clone());
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.header_map();
    response.headers_mut().insert(header.clone(), HeaderValue::from_static("true"));
    response
}

/// `503` with `Retry-After`: the store failed, so the handler does not run unprotected.
fn store_failed(err: &StoreError) -> Decided {
    tracing::error!(target: TARGET, error = %err, "idempotency store failed");
    Decided::Answer(
        IdempotencyOutcome::StoreFailed,
        retry_later(StatusCode::SERVICE_UNAVAILABLE, "idempotency store unavailable"),
    )
}

/// `413`: the request body is over `max_body`.
pub fn too_large() -> Answer {
    text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
}

/// `400`: the request body could not be read.
pub fn unreadable() -> Answer {
    text(StatusCode::BAD_REQUEST, "failed to read the request body")
}

/// A key this request holds: run the handler with [`IdempotencyConfig::call_holding`], then [`IdempotencyConfig::settle`].
#[derive(Debug)]
pub struct Held {
    pub(super) key: String,
    pub(super) token: LockToken,
    pub(super) print: Fingerprint,
}

/// What [`IdempotencyConfig::decide`] decided: the key taken, or an answer.
enum Decided {
    Run(LockToken),
    Answer(IdempotencyOutcome, Answer),
}

/// What to do with a keyed request, decided by [`IdempotencyConfig::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Answer this without running the handler (replay, 409, 422, 503).
    Answer(Answer),
    /// Run the handler holding the key.
    Run(Held),
}

impl<St: IdempotencyStore> IdempotencyConfig<St> {
    /// The largest request body read, in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Whether requests of this method are keyed at all (safe methods only when asked).
    fn keys_method(&self, parts: &http::request::Parts) -> bool {
        self.safe_methods || !is_safe(&parts.method)
    }

    /// The key from the headers, when the key source reads them; `Err` is the `400` for an
    /// invalid header.
    pub fn header_key(&self, parts: &http::request::Parts) -> Result<Option<String>, Box<Answer>> {
        if !self.keys_method(parts) {
            return Ok(None);
        }
        match self.key_source {
            KeySource::Auto | KeySource::Header => header_key(parts).map_err(|()| {
                Box::new(text(StatusCode::BAD_REQUEST, "Idempotency-Key must be 16 to 255 visible ASCII characters"))
            }),
            KeySource::Webhook | KeySource::Custom(_) => Ok(None),
        }
    }

    /// Whether a request without a header key may still find one in its body; when not,
    /// the request passes through with its body unread (streamed, never refused as large).
    pub fn key_may_be_in_body(&self, parts: &http::request::Parts) -> bool {
        if !self.keys_method(parts) {
            return false;
        }
        match self.key_source {
            KeySource::Auto => is_delivery(parts),
            KeySource::Header => false,
            KeySource::Webhook | KeySource::Custom(_) => true,
        }
    }

    /// The request's store key, from the header key found before and the buffered body: a
    /// digest of the key and the caller's scope.
    pub fn key(&self, from_header: Option<String>, parts: &http::request::Parts, body: &Bytes) -> Option<String> {
        let header = || from_header.clone().map(|key| ('h', key));
        let (kind, key) = match &self.key_source {
            KeySource::Auto if is_delivery(parts) => header().or_else(|| webhook_key(body).map(|job| ('j', job))),
            KeySource::Auto | KeySource::Header => header(),
            KeySource::Webhook => webhook_key(body).map(|job| ('j', job)),
            KeySource::Custom(derive) => derive(parts, body).map(|key| ('c', key)),
        }?;
        Some(store_key(kind, &self.scope.of(parts), &key))
    }

    /// The request's fingerprint: method, path with query, body.
    pub fn fingerprint(parts: &http::request::Parts, body: &[u8]) -> Fingerprint {
        let target = parts.uri.path_and_query().map_or_else(|| parts.uri.path(), http::uri::PathAndQuery::as_str);
        super::key::fingerprint(&parts.method, target, body)
    }

    /// `409`: a lock on this key lapsed without an answer, so whether the request ran is
    /// unknown; retry after the lost lock expires (another `lock_ttl`).
    fn outcome_unknown(&self) -> Decided {
        let seconds = self.lock_ttl.as_secs().saturating_add(u64::from(self.lock_ttl.subsec_nanos() > 0)).max(1);
        let answer = retry_after(
            StatusCode::CONFLICT,
            "the outcome of an earlier request with this Idempotency-Key is unknown",
            HeaderValue::from(seconds),
        );
        Decided::Answer(IdempotencyOutcome::OutcomeUnknown, answer)
    }

    /// Takes `key` for this request, or decides its answer (replay, wait, 409, 422, 503),
    /// telling the `on_decision` hook.
    pub async fn admit(&self, key: String, print: Fingerprint) -> Admission {
        let span = tracing::debug_span!(target: ezthrottle_core::telemetry::TARGET_IDEMPOTENCY, "idempotency", key_digest = %key);
        let decided = tracing::Instrument::instrument(self.decide(&key, print), span).await;
        let outcome = match &decided {
            Decided::Run(_) => IdempotencyOutcome::Run,
            Decided::Answer(outcome, _) => *outcome,
        };
        tracing::debug!(target: ezthrottle_core::telemetry::TARGET_IDEMPOTENCY, outcome = outcome.as_str(), key_digest = %key, "idempotency decision");
        match outcome {
            IdempotencyOutcome::Replayed => {
                metrics::counter!(ezthrottle_core::telemetry::IDEMPOTENT_REPLAYS_TOTAL).increment(1)
            }
            IdempotencyOutcome::InProgress => {
                metrics::counter!(ezthrottle_core::telemetry::CONCURRENT_CONFLICTS_TOTAL).increment(1);
            }
            _ => {}
        }
        if let Some(crate::hook::Hook(hook)) = &self.on_decision {
            hook(&IdempotencyEvent { outcome, key: &key });
        }
        match decided {
            Decided::Run(token) => Admission::Run(Held { key, token, print }),
            Decided::Answer(_, answer) => Admission::Answer(answer),
        }
    }

    async fn decide(&self, key: &str, print: Fingerprint) -> Decided {
        // Bounded: a released key is retried a few times, then the request gets 409.
        let mut waited = false;
        for _ in 0..4 {
            let state = match self.store.begin(key, print, self.lock_ttl).await {
                Ok(state) => state,
                Err(err) => return store_failed(&err),
            };
            let state = match state {
                Begin::InFlight { fingerprint } if fingerprint != print => return reused(),
                Begin::InFlight { .. } if self.in_flight == InFlight::Conflict || waited => return in_progress(),
                Begin::InFlight { .. } => {
                    waited = true;
                    match self.store.wait(key, self.wait_timeout).await {
                        Ok(state) => state,
                        Err(err) => return store_failed(&err),
                    }
                }
                other => other,
            };
            match state {
                Begin::Completed(StoredResponse { fingerprint, .. })
                | Begin::Lost { fingerprint }
                | Begin::InFlight { fingerprint }
                    if fingerprint != print =>
                {
                    return reused();
                }
                Begin::Completed(stored) => {
                    tracing::debug!(target: TARGET, key = %key, "replaying a stored answer");
                    return Decided::Answer(IdempotencyOutcome::Replayed, replay(&stored, &self.replay_header));
                }
                Begin::Lost { .. } => return self.outcome_unknown(),
                Begin::InFlight { .. } => return in_progress(),
                Begin::Released => {}
                Begin::Acquired(token) => return Decided::Run(token),
            }
        }
        in_progress()
    }
}
