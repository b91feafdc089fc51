//! What the layer decides for a keyed request ([`IdempotencyConfig::admit`]) and how a handler's
//! answer is kept: shared by the tower service and the actix-web middleware.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use super::TARGET;
use super::key::{KeySource, header_key, is_delivery, webhook_key};
use super::layer::{IdempotencyConfig, InFlight};
use super::store::{Begin, Fingerprint, IdempotencyStore, LockToken, StoredResponse};
use crate::REPLAY_HEADER;
use crate::StoreError;

/// An answer of the layer itself (refusals, replays, buffered handler answers).
pub type Answer = Response<Bytes>;

/// Answers that refuse the request instead of processing it (bad or unauthenticated
/// input, conflicts, limits). They are not stored: otherwise a forged webhook delivery
/// (refused with 401 by an extractor inside this layer) or a malformed retry would take the
/// key, and the genuine request would get its refusal replayed for the whole TTL.
fn refuses_the_request(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 403 | 407 | 408 | 409 | 411 | 413 | 414 | 415 | 422 | 429 | 431)
}

fn text(status: StatusCode, message: &'static str) -> Answer {
    let mut response = Response::new(Bytes::from_static(message.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn retry_later(status: StatusCode, message: &'static str) -> Answer {
    let mut response = text(status, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn replay(stored: &StoredResponse) -> Answer {
    let mut response = Response::new(stored.body.clone());
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.header_map();
    response.headers_mut().insert(HeaderName::from_static(REPLAY_HEADER), HeaderValue::from_static("true"));
    response
}

/// `503` with `Retry-After`: the store failed, so the handler does not run unprotected.
fn store_failed(err: &StoreError) -> Admission {
    tracing::error!(target: TARGET, error = %err, "idempotency store failed");
    Admission::Answer(retry_later(StatusCode::SERVICE_UNAVAILABLE, "idempotency store unavailable"))
}

/// `413`: the request body is over `max_body`.
pub fn too_large() -> Answer {
    text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
}

/// `400`: the request body could not be read.
pub fn unreadable() -> Answer {
    text(StatusCode::BAD_REQUEST, "failed to read the request body")
}

/// Releases the key if the handler's future is dropped before it answered (made by
/// [`IdempotencyConfig::call_holding`], disarmed by [`IdempotencyConfig::settle`]).
#[allow(missing_debug_implementations)] // Holds the store; never printed.
pub struct ReleaseOnDrop<St: IdempotencyStore> {
    armed: Option<(St, String, LockToken)>,
}

impl<St: IdempotencyStore> ReleaseOnDrop<St> {
    /// The handler answered: the key is completed or released explicitly.
    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl<St: IdempotencyStore> Drop for ReleaseOnDrop<St> {
    fn drop(&mut self) {
        if let Some((store, key, token)) = self.armed.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = store.release(&key, &token).await;
            });
        }
    }
}

/// A key this request holds: run the handler with [`IdempotencyConfig::call_holding`], then [`IdempotencyConfig::settle`].
#[derive(Debug)]
pub struct Held {
    key: String,
    token: LockToken,
    print: Fingerprint,
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

    /// The key from the headers, when the key source reads them; `Err` is the `400` for an
    /// invalid header.
    pub fn header_key(&self, parts: &http::request::Parts) -> Result<Option<String>, Box<Answer>> {
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
        match self.key_source {
            KeySource::Auto => is_delivery(parts),
            KeySource::Header => false,
            KeySource::Webhook | KeySource::Custom(_) => true,
        }
    }

    /// The request's key, from the header key found before and the buffered body.
    pub fn key(&self, from_header: Option<String>, parts: &http::request::Parts, body: &Bytes) -> Option<String> {
        match &self.key_source {
            KeySource::Auto if is_delivery(parts) => from_header.or_else(|| webhook_key(body)),
            KeySource::Auto => from_header,
            KeySource::Header => from_header,
            KeySource::Webhook => webhook_key(body),
            KeySource::Custom(derive) => derive(parts, body),
        }
    }

    /// Takes `key` for this request, or decides its answer (replay, wait, 409, 422, 503).
    pub async fn admit(&self, key: String, print: Fingerprint) -> Admission {
        // Bounded: a released key is retried a few times, then the request gets 409.
        let mut waited = false;
        for _ in 0..4 {
            let state = match self.store.begin(&key, print, self.lock_ttl).await {
                Ok(state) => state,
                Err(err) => return store_failed(&err),
            };
            let state = match state {
                Begin::InFlight { fingerprint } if fingerprint != print => {
                    return Admission::Answer(text(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Idempotency-Key reused with a different request",
                    ));
                }
                Begin::InFlight { .. } if self.in_flight == InFlight::Conflict || waited => {
                    return Admission::Answer(retry_later(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is in progress",
                    ));
                }
                Begin::InFlight { .. } => {
                    waited = true;
                    match self.store.wait(&key, self.wait_timeout).await {
                        Ok(Begin::Released) => continue,
                        Ok(state) => state,
                        Err(err) => return store_failed(&err),
                    }
                }
                other => other,
            };
            match state {
                Begin::Completed(stored) if stored.fingerprint != print => {
                    return Admission::Answer(text(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Idempotency-Key reused with a different request",
                    ));
                }
                Begin::Completed(stored) => {
                    tracing::debug!(target: TARGET, key = %key, "replaying a stored answer");
                    return Admission::Answer(replay(&stored));
                }
                Begin::InFlight { .. } => {
                    return Admission::Answer(retry_later(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is in progress",
                    ));
                }
                Begin::Released => continue,
                Begin::Acquired(token) => return Admission::Run(Held { key, token, print }),
            }
        }
        Admission::Answer(retry_later(StatusCode::CONFLICT, "a request with this Idempotency-Key is in progress"))
    }

    /// Runs the handler's future holding `held`. If it fails the key is released; until
    /// [`settle`](Self::settle), so is it if the request is dropped (a retry runs again).
    pub async fn call_holding<R, E>(
        &self,
        held: &Held,
        handler: impl Future<Output = Result<R, E>>,
    ) -> Result<(R, ReleaseOnDrop<St>), E> {
        let mut guard = ReleaseOnDrop { armed: Some((self.store.clone(), held.key.clone(), held.token.clone())) };
        match handler.await {
            Ok(response) => Ok((response, guard)),
            Err(err) => {
                guard.disarm();
                self.release(held).await;
                Err(err)
            }
        }
    }

    /// Keeps the handler's whole answer for `held` and gives its body back; when the
    /// body could not be read (`None`), releases the key and gives the `500` to answer.
    ///
    /// # Errors
    ///
    /// The `500` answer, when the body failed.
    pub async fn settle(
        &self,
        held: &Held,
        mut guard: ReleaseOnDrop<St>,
        status: StatusCode,
        headers: &http::HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Bytes, Answer> {
        guard.disarm();
        let Some(body) = body else {
            self.release(held).await;
            tracing::warn!(target: TARGET, key = %held.key, "the answer body failed; key released");
            return Err(text(StatusCode::INTERNAL_SERVER_ERROR, "the handler's answer failed"));
        };
        self.finish(held, status, headers, &body).await;
        Ok(body)
    }

    /// Frees `held` without an answer (the handler failed).
    async fn release(&self, held: &Held) {
        let _ = self.store.release(&held.key, &held.token).await;
    }

    /// Stores the handler's whole answer for `held`, or releases the key for a 5xx, a
    /// refusal (see [`refuses_the_request`]) or an answer over `max_stored_body`.
    async fn finish(&self, held: &Held, status: StatusCode, headers: &http::HeaderMap, body: &Bytes) {
        let kept = !status.is_server_error() && !refuses_the_request(status);
        if !kept || body.len() > self.max_stored_body {
            if kept {
                tracing::warn!(target: TARGET, key = %held.key, bytes = body.len(), "answer too large to store; key released");
            }
            self.release(held).await;
        } else {
            let headers = headers
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "connection" | "transfer-encoding" | "content-length"))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            let stored = StoredResponse { fingerprint: held.print, status, headers, body: body.clone() };
            if let Err(err) = self.store.complete(&held.key, &held.token, stored, self.ttl).await {
                tracing::error!(target: TARGET, error = %err, key = %held.key, "could not store the answer");
            }
        }
    }
}
