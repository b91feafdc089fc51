//! Capturing the request for a job: the request body read so far, and what the request
//! can still become (its head and whole body, or the reason it cannot be forwarded).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;

use super::decision::{Head, NotCaptured};

/// What the request can become as a job.
// `Kept` is the common case: boxing it would allocate on the pass-through path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Capture {
    /// Its head and its whole body.
    Kept { head: Head, body: Bytes },
    /// Nothing: the body was not captured.
    Missing(NotCaptured),
    /// Already used, or not needed any more.
    Spent,
}

/// The request body read so far, without copying the common single-chunk body.
#[derive(Debug)]
pub(super) enum Chunks {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Chunks {
    pub(super) fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        *self = match std::mem::replace(self, Chunks::Empty) {
            Chunks::Empty => Chunks::One(chunk),
            Chunks::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + chunk.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&chunk);
                Chunks::Many(all)
            }
            Chunks::Many(mut all) => {
                all.extend_from_slice(&chunk);
                Chunks::Many(all)
            }
        };
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

    use super::Chunks;

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
}
