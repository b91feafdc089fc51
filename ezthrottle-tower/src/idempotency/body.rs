//! [`IdempotencyResponseBody`]: the response body of [`Idempotency`](super::Idempotency).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use super::settle::Read;
use crate::body::OwnOrInner;

pin_project! {
    /// The response body of [`Idempotency`](super::Idempotency): the inner service's body,
    /// untouched, for a request without a key; the buffered (or replayed) answer; or, for
    /// an answer over `max_stored_body`, its buffered start followed by the rest as it
    /// streams.
    pub struct IdempotencyResponseBody<B> {
        #[pin]
        body: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Plain { #[pin] body: OwnOrInner<B> },
        // Boxed: the buffering loop polled it pinned already.
        Chained { prefix: Option<Bytes>, rest: Pin<Box<B>> },
    }
}

impl<B> IdempotencyResponseBody<B> {
    /// The inner service's body, untouched.
    pub(crate) fn inner(body: B) -> Self {
        Self { body: Kind::Plain { body: OwnOrInner::Inner { body } } }
    }

    /// An answer of the middleware's own (or a whole buffered one).
    pub(crate) fn own(bytes: Bytes) -> Self {
        Self { body: Kind::Plain { body: OwnOrInner::Own { body: http_body_util::Full::new(bytes) } } }
    }

    /// `prefix`, then what `rest` still yields.
    fn chained(prefix: Bytes, rest: Pin<Box<B>>) -> Self {
        Self { body: Kind::Chained { prefix: Some(prefix).filter(|prefix| !prefix.is_empty()), rest } }
    }
}

impl<B: Body<Data = Bytes>> Body for IdempotencyResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().body.project() {
            KindProj::Plain { body } => body.poll_frame(cx),
            KindProj::Chained { prefix, rest } => match prefix.take() {
                Some(prefix) => Poll::Ready(Some(Ok(Frame::data(prefix)))),
                None => rest.as_mut().poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Kind::Plain { body } => body.is_end_stream(),
            Kind::Chained { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Kind::Plain { body } => body.size_hint(),
            Kind::Chained { prefix, rest } => {
                let before = prefix.as_ref().map_or(0, |prefix| prefix.len() as u64);
                let after = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(after.lower().saturating_add(before));
                if let Some(upper) = after.upper() {
                    hint.set_upper(upper.saturating_add(before));
                }
                hint
            }
        }
    }
}

impl<B> std::fmt::Debug for IdempotencyResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.body {
            Kind::Plain { body } if body.is_own() => "own",
            Kind::Plain { .. } => "inner",
            Kind::Chained { .. } => "chained",
        };
        f.debug_struct("IdempotencyResponseBody").field("kind", &kind).finish()
    }
}

/// Reads `body` until its end or past `limit` bytes: the whole body, or the start read so
/// far and the rest (to stream on), or a failure.
pub(super) async fn read_bounded<B: Body>(body: B, limit: usize) -> (Read, IdempotencyResponseBody<B>) {
    let mut body = Box::pin(body);
    let mut buffered = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => {
                let whole = buffered.freeze();
                return (Read::Whole(whole.clone()), IdempotencyResponseBody::own(whole));
            }
            Some(Err(_)) => return (Read::Failed, IdempotencyResponseBody::own(Bytes::new())),
            Some(Ok(frame)) => {
                // Trailers are not kept (nor replayed); the data before them is.
                let Ok(mut data) = frame.into_data() else { continue };
                while data.has_remaining() {
                    let chunk = data.chunk();
                    buffered.extend_from_slice(chunk);
                    let read = chunk.len();
                    data.advance(read);
                }
                if buffered.len() > limit {
                    return (Read::TooLarge, IdempotencyResponseBody::chained(buffered.freeze(), body));
                }
            }
        }
    }
}
