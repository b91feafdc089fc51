//! What proves a refusal came before the body: a request whose body never ends
//! ([`post_unending`]), and a request body that records whether it was polled.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use ezthrottle_test_support::post_unending;
use ezthrottle_test_support::webhook::refused_signatures;
use http::Request;
use http_body::Frame;
use tower::util::MapRequestLayer;

/// A request body that sets `polled` the first time anything reads it.
struct Recording {
    inner: Body,
    polled: Arc<AtomicBool>,
}

impl http_body::Body for Recording {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.polled.store(true, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

/// A layer (put it outermost) wrapping each request body in one that records, in `polled`,
/// whether it was read.
pub(crate) fn record_body_reads(
    polled: Arc<AtomicBool>,
) -> MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone + Send + Sync + 'static> {
    MapRequestLayer::new(move |request: Request<Body>| {
        let polled = Arc::clone(&polled);
        request.map(|inner| Body::new(Recording { inner, polled }))
    })
}

/// Posts each of [`refused_signatures`] with a body that never ends to `addr`; each gets
/// its answer and the body is never polled.
pub(crate) async fn assert_refused_unread(addr: SocketAddr, path: &str, polled: &AtomicBool, now: i64) {
    for (name, signature, status, text) in refused_signatures(now) {
        let headers: Vec<(&str, &[u8])> = signature.iter().map(|s| ("x-ezthrottle-signature", s.as_slice())).collect();
        let (got, body) = post_unending(addr, path, &headers).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body.starts_with(text), "{name}: {body}");
        assert!(!polled.load(Ordering::SeqCst), "{name}: the body was read before the refusal");
    }
}
