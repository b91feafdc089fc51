//! [`Kept::of`]: what `ForwardMiddleware` keeps of a reqwest request while it is sent.

use std::task::{Context, Waker};

use bytes::Bytes;
use ezthrottle_core::protocol::redact::RedactedUrl;
use reqwest::{Request, Url};

use super::capture::{Chunks, Kept, read_body};
use super::decision::{NotCaptured, not_forwarded};
use super::extension::ForwardFailed;
use super::head::Head;

/// The largest body copied. A larger one is shared with the request instead: sharing a
/// body built from a `Vec` allocates its shared count and takes it out of the request and
/// back, which costs more than copying a few KiB, and less than copying more.
const COPIED_BODY_MAX: usize = 4 * 1024;

impl Kept {
    /// Keeps `request` if its body can be: a buffered body of at most `cap` bytes. Its
    /// method, version, URL and headers go into one allocation ([`Head`]), its body is
    /// copied up to [`COPIED_BODY_MAX`] bytes and shared beyond: every call through the
    /// middleware pays for this, and `Request::try_clone` allocates more (the URL, the
    /// request, the headers).
    pub(super) fn of(request: &mut Request, cap: usize) -> Result<Self, NotCaptured> {
        let body = match request.body_mut() {
            Some(body) => kept_body(body, cap)?,
            None => Bytes::new(),
        };
        let head = Head::with_url(request.method(), request.version(), request.url().as_str(), request.headers());
        Ok(Self::new(head, body))
    }

    /// The request's URL, as `Url::as_str` wrote it.
    pub(super) fn url(&self) -> &str {
        self.head().uri()
    }

    /// The URL parsed again, for the `url()` of a synthesized answer.
    pub(super) fn parsed_url(&self) -> Result<Url, ForwardFailed> {
        Url::parse(self.url()).map_err(|err| {
            not_forwarded(format!("the URL {} does not parse again: {err}", RedactedUrl::new(self.url())))
        })
    }
}

/// The bytes of a buffered body of at most `cap` bytes: copied, or for a body of more than
/// [`COPIED_BODY_MAX`] bytes, shared (`body` replaced by one sharing them).
fn kept_body(body: &mut reqwest::Body, cap: usize) -> Result<Bytes, NotCaptured> {
    let bytes = body.as_bytes().ok_or(NotCaptured::NotCloneable)?;
    let len = bytes.len();
    if len > cap {
        return Err(NotCaptured::TooLarge { upper: len as u64, cap });
    }
    if len <= COPIED_BODY_MAX {
        return Ok(Bytes::copy_from_slice(bytes));
    }
    // A buffered body (the one kind with `as_bytes`: reqwest's `Reusable`) yields all its
    // bytes in one frame, at once, so it is put back whole. Should a later reqwest yield
    // them otherwise, the check below keeps such a request from becoming a job.
    let (mut chunks, mut trailers) = (Chunks::Empty, false);
    let read = read_body(body, &mut chunks, &mut trailers, &mut Context::from_waker(Waker::noop()));
    let bytes = chunks.into_bytes();
    *body = reqwest::Body::from(bytes.clone());
    match read {
        Some(Ok(())) if bytes.len() == len => Ok(bytes),
        _ => Err(NotCaptured::NotCloneable),
    }
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
            let sent = original.body().and_then(|body| body.as_bytes()).map(<[u8]>::as_ptr);
            if size > 0 {
                assert_eq!(sent == Some(kept.body().as_ptr()), size > COPIED_BODY_MAX, "{size}: shared, not copied");
            }
            assert_eq!(kept.head().method(), http::Method::POST);
            assert_eq!(kept.head().parts().map(|parts| parts.version).ok(), Some(http::Version::HTTP_11));
            assert_eq!(kept.url(), "http://127.0.0.1:9/orders?page=2&token=t");
            assert_eq!(kept.parsed_url().ok().as_ref(), Some(original.url()));
            assert_eq!(&kept.head().headers(), original.headers(), "{size}");
            assert_eq!(kept.body(), &body, "{size}");
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
