//! [`Head`]: what the layer and the middleware keep of a request's head while it is sent,
//! so that a forwarded job is exactly that request.

use std::fmt;

use ezthrottle_core::protocol::redact::{RedactedHeaders, RedactedUrl};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version};

use super::decision::not_forwarded;
use super::extension::ForwardFailed;

/// A request's method, version, URI and headers: the method, the URI as written and the
/// headers encoded in one buffer. Every call pays for keeping it, and a copy in one
/// allocation costs less than cloning a `Uri` and a `HeaderMap` (each part's shared count
/// touched on clone and on drop, the map allocating twice). Decoded only when a job is
/// built. It is small (a vector and the version) because it lives in every call's future:
/// a future past 128 bytes is moved with a `memcpy` call, several times per call.
///
/// The buffer is a sequence of pieces, each `length (u64 LE), bytes`: the method, the
/// URI, then each header's name and value in the request's order (repeated headers
/// included). A `u64` length holds any piece whole.
// `Debug` by hand: credential header values and query values stay out of logs.
pub(crate) struct Head {
    bytes: Vec<u8>,
    version: Version,
}

/// The size of a piece's length.
const LEN: usize = size_of::<u64>();

/// The room made for each header's name and value: a guess, so that the headers are read
/// once (a head with longer ones grows its buffer as it is written).
const HEADER_ROOM: usize = 64;

impl Head {
    /// The head of a request about to be sent (its extensions are not kept).
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        // What `Uri`'s `Display` writes, without the formatting machinery, but with the
        // path and query as one piece, as it goes on the wire: only a URI with a query and
        // an empty path reads otherwise (`http://a.test?q`, not `http://a.test/?q`), and
        // it parses to the same `Uri`.
        let uri = request.uri();
        let scheme = uri.scheme_str();
        let pieces = [
            scheme.unwrap_or_default(),
            if scheme.is_some() { "://" } else { "" },
            uri.authority().map(http::uri::Authority::as_str).unwrap_or_default(),
            uri.path_and_query().map(http::uri::PathAndQuery::as_str).unwrap_or_default(),
        ];
        Self::new(request.method(), request.version(), &pieces, request.headers())
    }

    /// The head of a request to `url` (as `Url::as_str` wrote it).
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn with_url(method: &Method, version: Version, url: &str, headers: &HeaderMap) -> Self {
        Self::new(method, version, &[url], headers)
    }

    /// `uri` is written as one piece, joined from its parts.
    fn new(method: &Method, version: Version, uri: &[&str], headers: &HeaderMap) -> Self {
        let method = method.as_str().as_bytes();
        let uri_len: usize = uri.iter().map(|part| part.len()).sum();
        let room = headers.len() * (2 * LEN + HEADER_ROOM);
        let mut bytes = Vec::with_capacity(2 * LEN + method.len() + uri_len + room);
        let length = |bytes: &mut Vec<u8>, len: usize| {
            bytes.extend_from_slice(&u64::try_from(len).unwrap_or(u64::MAX).to_le_bytes());
        };
        length(&mut bytes, method.len());
        bytes.extend_from_slice(method);
        length(&mut bytes, uri_len);
        for part in uri {
            bytes.extend_from_slice(part.as_bytes());
        }
        for (name, value) in headers {
            for piece in [name.as_str().as_bytes(), value.as_bytes()] {
                length(&mut bytes, piece.len());
                bytes.extend_from_slice(piece);
            }
        }
        Self { bytes, version }
    }

    /// The pieces of the buffer, in order; a truncated piece ends them.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest: &[u8] = &self.bytes;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<LEN>()?;
            let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
            let piece = tail.get(..len)?;
            rest = tail.get(len..)?;
            Some(piece)
        })
    }

    /// The request's method (`GET` only if the buffer held none, which never happens).
    pub(crate) fn method(&self) -> Method {
        self.pieces().next().and_then(|method| Method::from_bytes(method).ok()).unwrap_or_default()
    }

    /// The URI as the request had it.
    pub(crate) fn uri(&self) -> &str {
        // Written from `&str`s: always valid, so the fallback never runs.
        self.pieces().nth(1).and_then(|uri| std::str::from_utf8(uri).ok()).unwrap_or_default()
    }

    /// The headers again, in their original order (repeated headers included); a
    /// truncated or invalid entry ends them.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut pieces = self.pieces().skip(2);
        let mut map = HeaderMap::new();
        while let (Some(name), Some(value)) = (pieces.next(), pieces.next()) {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                map.append(name, value);
            }
        }
        map
    }

    /// The request's parts again (no extensions), the URI parsed anew.
    pub(crate) fn parts(&self) -> Result<http::request::Parts, ForwardFailed> {
        let uri = self.uri().parse().map_err(|err| {
            not_forwarded(format!("the URL {} is not a valid URI: {err}", RedactedUrl::new(self.uri())))
        })?;
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = self.method();
        parts.uri = uri;
        parts.version = self.version;
        parts.headers = self.headers();
        Ok(parts)
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Head")
            .field("method", &self.method())
            .field("uri", &RedactedUrl::new(self.uri()))
            .field("version", &self.version)
            .field("headers", &RedactedHeaders::new(&self.headers()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &HeaderMap) -> Head {
        let mut request = Request::new(());
        *request.uri_mut() = uri.parse().expect("a valid URI");
        *request.headers_mut() = headers.clone();
        Head::of(&request)
    }

    #[test]
    fn a_head_gives_the_uri_and_the_headers_back_in_order() {
        let mut map = HeaderMap::new();
        map.append("x-a", "1".parse().unwrap());
        map.append("accept", "text/html".parse().unwrap());
        map.append("x-a", "2: with colon".parse().unwrap());
        map.append("x-empty", HeaderValue::from_static(""));
        for uri in
            ["http://a.test:8080/orders?x=1&y", "https://a.test", "http://a.test/?", "/relative?q", "*", "a.test:443"]
        {
            let head = head(uri, &map);
            assert_eq!(head.uri(), uri.parse::<http::Uri>().unwrap().to_string(), "{uri}");
            let parts = head.parts().unwrap();
            assert_eq!(parts.uri, uri.parse::<http::Uri>().unwrap(), "{uri}");
            assert_eq!(parts.headers, map);
            assert_eq!(head.headers().get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2: with colon"]);
            assert_eq!(head.method(), Method::GET);
        }
        assert!(head("http://a.test/", &HeaderMap::new()).headers().is_empty());
        // The one URI written otherwise than by `Display` is the same `Uri`.
        let uri = "http://a.test?q=1";
        assert_eq!(head(uri, &map).uri(), uri);
        assert_eq!(head(uri, &map).parts().unwrap().uri.to_string(), "http://a.test/?q=1");
        for method in [Method::PATCH, Method::from_bytes(b"PURGE").unwrap(), Method::from_bytes(&[b'X'; 40]).unwrap()] {
            let head = Head::of(&Request::builder().method(method.clone()).uri("/p").body(()).unwrap());
            assert_eq!((head.method(), head.uri()), (method, "/p"));
        }
    }

    #[test]
    fn truncated_headers_decode_to_nothing() {
        let mut bytes = Head::of(&Request::post("/x").header("x-a", "1").body(()).unwrap()).bytes;
        let whole = bytes.len();
        // Cut inside the value, then inside its length, then inside the name's length.
        for cut in [whole - 1, whole - 1 - LEN, whole - 2 * LEN - 4] {
            bytes.truncate(cut);
            let head = Head { bytes: bytes.clone(), version: Version::HTTP_11 };
            assert_eq!((head.method(), head.uri()), (Method::POST, "/x"));
            assert!(head.headers().is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn debug_hides_credentials_and_query_values() {
        let request = crate::test_requests::credentialed(Request::post("https://api.example.com/charge?token=sk_q"))
            .body(())
            .unwrap();
        let shown = format!("{:?}", Head::of(&request));
        for secret in crate::test_requests::SECRETS.iter().chain(&["sk_q"]) {
            assert!(!shown.contains(secret), "shows {secret:?}: {shown}");
        }
        for visible in ["POST", "api.example.com", "authorization", "application/json"] {
            assert!(shown.contains(visible), "hides {visible:?}: {shown}");
        }
    }
}
