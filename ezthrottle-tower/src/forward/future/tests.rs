//! Unit tests of the response future: a request body that fails while read.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use ezthrottle_core::EZThrottle;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use http_body_util::Full;
use tower::ServiceExt;

use super::*;
use crate::{Forward, ForwardFailed};

/// A 4-byte body that fails, at once or after one `Pending`.
struct Failing {
    wait_first: bool,
}

impl From<Bytes> for Failing {
    fn from(_: Bytes) -> Self {
        Self { wait_first: false }
    }
}

impl Body for Failing {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if std::mem::take(&mut self.wait_first) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(std::io::Error::other("connection lost"))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(4)
    }
}

#[tokio::test]
async fn a_body_that_fails_while_read_is_answered_400_without_calling_the_service() {
    for wait_first in [false, true] {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let service = tower::service_fn(move |_: Request<Failing>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
        });
        let client = EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap();
        let request = Request::post("http://api.test/x").body(Failing { wait_first }).unwrap();
        let response = Forward::new(service, client).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.body().is_synthesized());
        let failed = response.extensions().get::<ForwardFailed>().unwrap();
        assert!(failed.reason.contains("connection lost"), "{failed:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the request was not sent");
    }
}

/// Each move of a call's future is a copy, and past 128 bytes the compiler makes it with a
/// `memcpy` call: over hyper-util's client (a boxed future), the future stays below.
#[test]
fn the_future_over_a_boxed_future_fits_in_128_bytes() {
    type Boxed = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;
    #[derive(Clone)]
    struct Client;
    impl Service<Request<Full<Bytes>>> for Client {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = Boxed;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Full<Bytes>>) -> Boxed {
            Box::pin(async { Ok(Response::new(Full::default())) })
        }
    }
    let size = size_of::<ResponseFuture<Client, Full<Bytes>, crate::forward::DefaultForwardPolicy>>();
    assert!(size <= 128, "{size} bytes");
}
