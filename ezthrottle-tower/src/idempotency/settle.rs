//! What happens while a request holds its key: the lock renewed while the handler runs and
//! its answer is read, then the answer kept (`complete`, retried) or the key released.
//! Shared by the tower service and the actix-web middleware.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use super::admission::{Answer, Held, refuses_the_request, text};
use super::layer::IdempotencyConfig;
use super::store::{IdempotencyStore, LockToken, StoredResponse, deadline};
use super::{STORE_FAILED_HEADER, TARGET};

/// Attempts at storing an answer before giving up (and saying so in
/// [`STORE_FAILED_HEADER`]).
const COMPLETE_ATTEMPTS: u32 = 3;
/// The pause before the second attempt; it doubles for each next one.
const COMPLETE_BACKOFF: Duration = Duration::from_millis(20);

/// Headers never stored: hop-by-hop ones, and `Set-Cookie` (a session is one caller's,
/// never replayed to another).
const NOT_STORED: [&str; 4] = ["connection", "transfer-encoding", "content-length", "set-cookie"];

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

/// How much of the handler's answer was read, for [`IdempotencyConfig::settle`].
#[derive(Debug)]
pub enum Read {
    /// The whole body, within `max_stored_body`.
    Whole(Bytes),
    /// More than `max_stored_body`: the answer streams through, not stored.
    TooLarge,
    /// The body failed.
    Failed,
}

/// What became of the handler's answer, from [`IdempotencyConfig::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Stored, or deliberately not (5xx, a refusal, too large: the key released).
    Done,
    /// Storing it failed three times in a row: answer it with
    /// [`store_failed_header`]. The key stays locked until its lock lapses, then answers
    /// 409 for another `lock_ttl`: a repeat does not run the handler again meanwhile.
    StoreFailed,
}

/// The header on an answer whose storing failed.
#[must_use]
pub fn store_failed_header() -> (HeaderName, HeaderValue) {
    (HeaderName::from_static(STORE_FAILED_HEADER), HeaderValue::from_static("true"))
}

impl<St: IdempotencyStore> IdempotencyConfig<St> {
    /// Runs the handler's future holding `held`, renewing its lock. If it fails the key is
    /// released; until [`settle`](Self::settle), so is it if the request is dropped (a
    /// retry runs again).
    pub async fn call_holding<R, E>(
        &self,
        held: &Held,
        handler: impl Future<Output = Result<R, E>>,
    ) -> Result<(R, ReleaseOnDrop<St>), E> {
        let mut guard = ReleaseOnDrop { armed: Some((self.store.clone(), held.key.clone(), held.token.clone())) };
        match self.renewing(held, handler).await {
            Ok(response) => Ok((response, guard)),
            Err(err) => {
                guard.disarm();
                self.release(held).await;
                Err(err)
            }
        }
    }

    /// Runs `work` (the handler, reading its answer) while renewing `held`'s lock every
    /// third of `lock_ttl`, so a slow handler keeps its key.
    pub async fn renewing<F: Future>(&self, held: &Held, work: F) -> F::Output {
        let every = (self.lock_ttl / 3).max(Duration::from_millis(1));
        let mut work = pin!(work);
        let mut tick = pin!(tokio::time::sleep(every));
        loop {
            let finished = std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
                Poll::Ready(output) => Poll::Ready(Some(output)),
                Poll::Pending => tick.as_mut().poll(cx).map(|()| None),
            })
            .await;
            if let Some(output) = finished {
                return output;
            }
            tick.as_mut().reset(deadline(tokio::time::Instant::now(), every));
            match self.store.renew(&held.key, &held.token, self.lock_ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(target: TARGET, key = %held.key, "lost the lock on an idempotency key while running");
                    return work.await;
                }
                Err(error) => {
                    tracing::warn!(target: TARGET, %error, key = %held.key, "could not renew an idempotency lock");
                }
            }
        }
    }

    /// Keeps the handler's answer for `held` as far as it was read: stores a whole one,
    /// releases the key for one too large.
    ///
    /// # Errors
    ///
    /// The `500` to answer when the body failed (the key is released).
    pub async fn settle(
        &self,
        held: &Held,
        mut guard: ReleaseOnDrop<St>,
        status: StatusCode,
        headers: &http::HeaderMap,
        body: &Read,
    ) -> Result<Settled, Answer> {
        guard.disarm();
        match body {
            Read::Whole(body) => Ok(self.finish(held, status, headers, body).await),
            Read::TooLarge => {
                self.release(held).await;
                tracing::warn!(target: TARGET, key = %held.key, limit = self.max_stored_body, "answer too large to store; key released");
                Ok(Settled::Done)
            }
            Read::Failed => {
                self.release(held).await;
                tracing::warn!(target: TARGET, key = %held.key, "the answer body failed; key released");
                Err(text(StatusCode::INTERNAL_SERVER_ERROR, "the handler's answer failed"))
            }
        }
    }

    /// The largest answer body stored (and buffered), in bytes.
    pub fn max_stored_body(&self) -> usize {
        self.max_stored_body
    }

    /// Frees `held` without an answer (the handler failed).
    async fn release(&self, held: &Held) {
        let _ = self.store.release(&held.key, &held.token).await;
    }

    /// Stores the handler's whole answer for `held`, or releases the key for a 5xx or a
    /// refusal (see [`refuses_the_request`]).
    async fn finish(&self, held: &Held, status: StatusCode, headers: &http::HeaderMap, body: &Bytes) -> Settled {
        if status.is_server_error() || refuses_the_request(status) {
            self.release(held).await;
            return Settled::Done;
        }
        let headers = headers
            .iter()
            .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let stored = StoredResponse { fingerprint: held.print, status, headers, body: body.clone() };
        let ttl = if status.is_success() { self.ttl } else { self.non_success_ttl };
        let mut pause = COMPLETE_BACKOFF;
        for attempt in 1..=COMPLETE_ATTEMPTS {
            match self.store.complete(&held.key, &held.token, stored.clone(), ttl).await {
                Ok(()) => return Settled::Done,
                Err(error) => {
                    tracing::error!(target: TARGET, %error, key = %held.key, attempt, "could not store the answer");
                }
            }
            if attempt < COMPLETE_ATTEMPTS {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
        }
        Settled::StoreFailed
    }
}
