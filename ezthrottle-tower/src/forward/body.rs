//! The response body of [`Forward`](super::Forward).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`Forward`](super::Forward): the wrapped service's body, untouched,
    /// or a body the layer wrote (the JSON receipt of a forwarded call).
    ///
    /// `Data = Bytes`; `Error` is the wrapped body's error (the receipt cannot fail).
    pub struct ResponseBody<R> {
        #[pin]
        inner: Inner<R>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<R> {
        Inner {
            #[pin]
            body: R,
        },
        Synthesized {
            #[pin]
            body: Full<Bytes>,
        },
    }
}

impl<R> ResponseBody<R> {
    pub(crate) fn inner(body: R) -> Self {
        Self { inner: Inner::Inner { body } }
    }

    pub(crate) fn synthesized(body: Bytes) -> Self {
        Self { inner: Inner::Synthesized { body: Full::new(body) } }
    }

    /// Whether the layer wrote this body (the receipt of a forwarded call, or the `400` of
    /// a request body that failed) instead of the wrapped service.
    pub fn is_synthesized(&self) -> bool {
        matches!(self.inner, Inner::Synthesized { .. })
    }
}

/// An empty body the layer wrote: what tower-http's `TimeoutLayer` placed above
/// `ForwardLayer` answers its timeout status with.
impl<R> Default for ResponseBody<R> {
    fn default() -> Self {
        Self::synthesized(Bytes::new())
    }
}

impl<R> Body for ResponseBody<R>
where
    R: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = R::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, R::Error>>> {
        match self.project().inner.project() {
            InnerProj::Inner { body } => body.poll_frame(cx),
            InnerProj::Synthesized { body } => body.poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Inner { body } => body.is_end_stream(),
            Inner::Synthesized { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Inner { body } => body.size_hint(),
            Inner::Synthesized { body } => body.size_hint(),
        }
    }
}

impl<R> std::fmt::Debug for ResponseBody<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_synthesized() { "Synthesized" } else { "Inner" };
        f.debug_tuple("ResponseBody").field(&format_args!("{kind}")).finish()
    }
}
