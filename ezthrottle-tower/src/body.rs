//! The one shape of every server middleware's response body: the inner service's body,
//! untouched, or an answer of the middleware's own (a refusal, a replay). Each middleware
//! names its own opaque type with [`opaque_body!`], so no foreign body type (such as
//! `http_body_util::Either`) shows in a public signature.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's body, or the middleware's own bytes.
    #[project = OwnOrInnerProj]
    pub(crate) enum OwnOrInner<B> {
        Inner { #[pin] body: B },
        Own { #[pin] body: Full<Bytes> },
    }
}

impl<B> OwnOrInner<B> {
    pub(crate) fn is_own(&self) -> bool {
        matches!(self, Self::Own { .. })
    }
}

impl<B: Body<Data = Bytes>> Body for OwnOrInner<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            OwnOrInnerProj::Inner { body } => body.poll_frame(cx),
            OwnOrInnerProj::Own { body } => body.poll_frame(cx).map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body } => body.is_end_stream(),
            Self::Own { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body } => body.size_hint(),
            Self::Own { body } => body.size_hint(),
        }
    }
}

/// Why a request body could not be buffered.
#[cfg(any(feature = "idempotency", feature = "webhook"))]
pub(crate) enum ReadError {
    /// Over the limit.
    TooLarge,
    /// The body failed (the connection broke, ...).
    Failed(String),
}

/// Buffers a request body of at most `limit` bytes.
#[cfg(any(feature = "idempotency", feature = "webhook"))]
pub(crate) async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Err(err) => Err(ReadError::Failed(err.to_string())),
    }
}

/// Takes the service `poll_ready` readied, leaving a clone (not ready) in its place: the
/// response future owns the ready one.
#[cfg(any(feature = "idempotency", feature = "webhook"))]
pub(crate) fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// Declares `pub struct $name<B>`: an opaque response body over [`OwnOrInner`], with
/// `inner(body)` / `own(bytes)` constructors for the crate and `http_body::Body` and
/// `Debug` impls.
macro_rules! opaque_body {
    ($(#[$meta:meta])* $name:ident) => {
        pin_project_lite::pin_project! {
            $(#[$meta])*
            pub struct $name<B> {
                #[pin]
                body: $crate::body::OwnOrInner<B>,
            }
        }

        impl<B> $name<B> {
            /// The inner service's body, untouched.
            #[allow(dead_code)]
            pub(crate) fn inner(body: B) -> Self {
                Self { body: $crate::body::OwnOrInner::Inner { body } }
            }

            /// An answer of the middleware's own.
            pub(crate) fn own(bytes: bytes::Bytes) -> Self {
                Self { body: $crate::body::OwnOrInner::Own { body: http_body_util::Full::new(bytes) } }
            }
        }

        impl<B: http_body::Body<Data = bytes::Bytes>> http_body::Body for $name<B> {
            type Data = bytes::Bytes;
            type Error = B::Error;

            fn poll_frame(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, B::Error>>> {
                self.project().body.poll_frame(cx)
            }

            fn is_end_stream(&self) -> bool {
                self.body.is_end_stream()
            }

            fn size_hint(&self) -> http_body::SizeHint {
                self.body.size_hint()
            }
        }

        impl<B> std::fmt::Debug for $name<B> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("own", &self.body.is_own()).finish()
            }
        }
    };
}
pub(crate) use opaque_body;
