//! [`Kept`]: what `ForwardMiddleware` keeps of a request while it is sent, so that a
//! forwarded job is exactly that request.

use bytes::Bytes;
use ezthrottle_core::protocol::redact::RedactedUrl;
use reqwest::{Request, Url};

use super::decision::{NotCaptured, not_forwarded};
use super::extension::ForwardFailed;
use super::head::Head;

/// The largest body copied. A larger one is shared with the request instead (a clone of
/// the request without its headers): copying a few KiB costs less than that clone's
/// allocations, copying more costs more.
const COPIED_BODY_MAX: usize = 4 * 1024;

/// A request's method, version, URL, headers and body, in two allocations for a body of
/// at most [`COPIED_BODY_MAX`] bytes: every call through the middleware pays for this, and
/// `Request::try_clone` allocates more (the URL, the request, and for a body built from a
/// `Vec` the body's shared count). The body has its own allocation so that each stays in
/// the allocator's fast path for small sizes (about 1 KiB).
pub(super) struct Kept {
    head: Head,
    body: KeptBody,
}

enum KeptBody {
    /// A copy of a body of at most [`COPIED_BODY_MAX`] bytes (empty for no body).
    Copied(Bytes),
    /// A clone of the request, without its headers, that shares a larger body.
    Shared(Box<Request>),
}

impl Kept {
    /// Keeps `request` if its body can be: a buffered body of at most `cap` bytes.
    pub(super) fn of(request: &mut Request, cap: usize) -> Result<Self, NotCaptured> {
        let body = match request.body() {
            Some(body) => body.as_bytes().ok_or(NotCaptured::NotCloneable)?,
            None => &[],
        };
        if body.len() > cap {
            return Err(NotCaptured::TooLarge { upper: body.len() as u64, cap });
        }
        let body = if body.len() <= COPIED_BODY_MAX {
            KeptBody::Copied(Bytes::copy_from_slice(body))
        } else {
            KeptBody::Shared(Box::new(clone_without_headers(request)?))
        };
        let head = Head::with_url(request.method(), request.version(), request.url().as_str(), request.headers());
        Ok(Self { head, body })
    }

    pub(super) fn head(&self) -> &Head {
        &self.head
    }

    /// The request's URL, as `Url::as_str` wrote it.
    pub(super) fn url(&self) -> &str {
        self.head.uri()
    }

    /// The URL parsed again, for the `url()` of a synthesized answer.
    pub(super) fn parsed_url(&self) -> Result<Url, ForwardFailed> {
        Url::parse(self.url()).map_err(|err| {
            not_forwarded(format!("the URL {} does not parse again: {err}", RedactedUrl::new(self.url())))
        })
    }

    /// The body (empty for a request without one).
    pub(super) fn body(&self) -> Bytes {
        match &self.body {
            KeptBody::Copied(bytes) => bytes.clone(),
            KeptBody::Shared(request) => {
                request.body().and_then(|body| body.as_bytes()).map(Bytes::copy_from_slice).unwrap_or_default()
            }
        }
    }
}

/// A clone of `request` sharing its body, without cloning its headers (kept elsewhere).
fn clone_without_headers(request: &mut Request) -> Result<Request, NotCaptured> {
    let headers = std::mem::take(request.headers_mut());
    let copy = request.try_clone();
    *request.headers_mut() = headers;
    copy.ok_or(NotCaptured::NotCloneable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Vec<u8>) -> Request {
        let mut request = reqwest::Client::new()
            .post("http://127.0.0.1:9/orders?page=2&token=t")
            .header("authorization", "Bearer sk_live_secret")
            .header("x-tag", "a")
            .header("x-tag", "b")
            .body(body)
            .build()
            .expect("a valid request");
        *request.version_mut() = http::Version::HTTP_11;
        request
    }

    #[test]
    fn a_kept_request_is_the_request_whether_its_body_is_copied_or_shared() {
        for size in [0, 1, COPIED_BODY_MAX, COPIED_BODY_MAX + 1, 64 * 1024] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut original = request(body.clone());
            let kept = Kept::of(&mut original, 1024 * 1024).expect("kept");
            assert_eq!(matches!(kept.body, KeptBody::Shared(_)), size > COPIED_BODY_MAX, "{size}");
            assert_eq!(kept.head().method(), http::Method::POST);
            assert_eq!(kept.head().parts().map(|parts| parts.version).ok(), Some(http::Version::HTTP_11));
            assert_eq!(kept.url(), "http://127.0.0.1:9/orders?page=2&token=t");
            assert_eq!(kept.parsed_url().ok().as_ref(), Some(original.url()));
            assert_eq!(&kept.head().headers(), original.headers(), "{size}");
            assert_eq!(kept.body(), body, "{size}");
            assert_eq!(original.body().and_then(|b| b.as_bytes()), Some(&body[..]), "the request keeps its body");
            assert_eq!(original.headers().get_all("x-tag").iter().count(), 2, "and its headers");
        }
    }

    #[test]
    fn a_request_without_a_body_keeps_an_empty_one() {
        let mut get = reqwest::Client::new().get("http://127.0.0.1:9/").build().expect("a valid request");
        let kept = Kept::of(&mut get, 16).expect("kept");
        assert!(kept.body().is_empty());
        assert!(kept.head().headers().is_empty());
    }

    #[test]
    fn a_body_over_the_cap_or_a_stream_is_not_kept() {
        let mut large = request(vec![0; 17]);
        assert_eq!(Kept::of(&mut large, 16).err(), Some(NotCaptured::TooLarge { upper: 17, cap: 16 }));
        let stream = http_body_util::Full::new(Bytes::from_static(b"x"));
        let mut streaming = reqwest::Client::new()
            .post("http://127.0.0.1:9/")
            .body(reqwest::Body::wrap(stream))
            .build()
            .expect("a valid request");
        assert_eq!(Kept::of(&mut streaming, 16).err(), Some(NotCaptured::NotCloneable));
    }
}
