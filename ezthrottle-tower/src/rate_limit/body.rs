//! The response body of [`RateLimit`](super::RateLimit).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The wrapped service's body, untouched, or the JSON of a refusal.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Inner { #[pin] body: B },
        Refused { #[pin] body: Full<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self { inner: Inner::Inner { body } }
    }

    pub(crate) fn refused(body: Bytes) -> Self {
        Self { inner: Inner::Refused { body: Full::new(body) } }
    }

    /// Whether this is the limiter's own answer (a refusal), not the service's body.
    pub fn is_refusal(&self) -> bool {
        matches!(self.inner, Inner::Refused { .. })
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Inner { body } => body.poll_frame(cx),
            InnerProj::Refused { body } => body.poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Inner { body } => body.is_end_stream(),
            Inner::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Inner { body } => body.size_hint(),
            Inner::Refused { body } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("refusal", &self.is_refusal()).finish()
    }
}
