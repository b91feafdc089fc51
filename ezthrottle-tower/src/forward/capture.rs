//! Capturing the request for a job: the request body read so far, and what the request
//! can still become (its head and whole body, or the reason it cannot be forwarded).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use ezthrottle_core::protocol::redact::BodyLen;
use http_body::Body;

use super::decision::NotCaptured;
use super::extension::ForwardFailed;
use super::head::Head;

/// What the request can become as a job, for `ForwardLayer` and `ForwardMiddleware`.
// `Kept` is the common case: boxing it would allocate on the pass-through path.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Capture {
    /// Its head and its whole body.
    Kept(Kept),
    /// Nothing: the body was not captured.
    Missing(NotCaptured),
    /// A forward was already tried for this call and failed: it is not tried again.
    Tried(Box<ForwardFailed>),
}

/// A request kept while it is sent, so that a forwarded job is exactly that request: its
/// head and its whole body.
// `Debug` by hand: credential header values and the body stay out of logs.
pub(super) struct Kept {
    head: Head,
    body: Bytes,
}

impl Kept {
    pub(super) fn new(head: Head, body: Bytes) -> Self {
        Self { head, body }
    }

    pub(super) fn head(&self) -> &Head {
        &self.head
    }

    /// The body (empty for a request without one).
    pub(super) fn body(&self) -> &Bytes {
        &self.body
    }
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kept").field("head", &self.head).field("body", &BodyLen::of(&self.body)).finish()
    }
}

/// The request body read so far, without copying the common single-chunk body.
// `Debug` by hand: the body's length, never its text.
pub(super) enum Chunks {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl fmt::Debug for Chunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunks::Empty => f.write_str("Empty"),
            Chunks::One(bytes) => f.debug_tuple("One").field(&BodyLen::of(bytes)).finish(),
            Chunks::Many(all) => f.debug_tuple("Many").field(&BodyLen::of(all)).finish(),
        }
    }
}

impl Chunks {
    pub(super) fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        match self {
            Chunks::Empty => *self = Chunks::One(chunk),
            Chunks::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + chunk.len());
                all.extend_from_slice(first);
                all.extend_from_slice(&chunk);
                *self = Chunks::Many(all);
            }
            Chunks::Many(all) => all.extend_from_slice(&chunk),
        }
    }

    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            Chunks::Empty => Bytes::new(),
            Chunks::One(bytes) => bytes,
            Chunks::Many(all) => all.freeze(),
        }
    }
}

/// Reads `body` with `cx` until it ends, fails or would wait. `Some(Ok(()))` when it
/// ended, `Some(Err(..))` when it failed, `None` when it is waiting for more.
pub(super) fn read_body<B>(
    body: &mut B,
    chunks: &mut Chunks,
    trailers: &mut bool,
    cx: &mut Context<'_>,
) -> Option<Result<(), B::Error>>
where
    B: Body + Unpin,
{
    loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => return None,
            Poll::Ready(None) => return Some(Ok(())),
            Poll::Ready(Some(Err(error))) => return Some(Err(error)),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => chunks.push(data.copy_to_bytes(data.remaining())),
                Err(frame) => *trailers |= frame.is_trailers(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{Capture, Chunks, Kept};
    use crate::forward::head::Head;

    #[test]
    fn chunks_join_without_copying_a_single_chunk() {
        let one = Bytes::from_static(b"abc");
        let mut chunks = Chunks::Empty;
        chunks.push(Bytes::new());
        chunks.push(one.clone());
        let joined = chunks.into_bytes();
        assert_eq!(joined.as_ptr(), one.as_ptr());
        let mut chunks = Chunks::Empty;
        for part in ["a", "b", "c"] {
            chunks.push(Bytes::from_static(part.as_bytes()));
        }
        assert_eq!(chunks.into_bytes(), "abc");
    }

    #[test]
    fn debug_hides_credentials_and_body() {
        let request =
            crate::test_requests::credentialed(http::Request::post("https://api.example.com/charge")).body(()).unwrap();
        let body = Bytes::from_static(b"card=4242");
        let mut chunks = Chunks::Empty;
        chunks.push(body.clone());
        let capture = Capture::Kept(Kept::new(Head::of(&request), body));
        for shown in [format!("{capture:?}"), format!("{capture:#?}"), format!("{chunks:?}")] {
            for secret in crate::test_requests::SECRETS.iter().chain(&["card=4242"]) {
                assert!(!shown.contains(secret), "shows {secret:?}: {shown}");
            }
        }
        let shown = format!("{capture:?}");
        for visible in ["authorization", "cookie", "x-api-key", "application/json", "api.example.com", "<9 bytes>"] {
            assert!(shown.contains(visible), "hides {visible:?}: {shown}");
        }
    }
}
