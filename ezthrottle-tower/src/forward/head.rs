//! [`Head`]: what the layer and the middleware keep of a request's head while it is sent,
//! so that a forwarded job is exactly that request.

use std::fmt;

use ezthrottle_core::protocol::redact::{RedactedHeaders, RedactedUrl};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version};

use super::decision::not_forwarded;
use super::extension::ForwardFailed;

/// A request's method, version, URI and headers: the URI as written and the headers
/// encoded in one buffer. Every call pays for keeping it, and a copy in one allocation
/// costs less than cloning a `Uri` and a `HeaderMap` (each part's shared count touched on
/// clone and on drop, the map allocating twice). Decoded only when a job is built.
///
/// After the URI, each header is `name length (u32 LE), name, value length (u32 LE),
/// value`, in the request's order (repeated headers included).
// `Debug` by hand: credential header values and query values stay out of logs.
pub(crate) struct Head {
    method: Method,
    version: Version,
    bytes: Vec<u8>,
    uri_end: usize,
}

impl Head {
    /// The head of a request about to be sent (its extensions are not kept).
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        // The pieces `Uri`'s `Display` writes, without the formatting machinery.
        let uri = request.uri();
        let scheme = uri.scheme_str();
        let query = uri.query();
        let pieces = [
            scheme.unwrap_or_default(),
            if scheme.is_some() { "://" } else { "" },
            uri.authority().map(http::uri::Authority::as_str).unwrap_or_default(),
            uri.path(),
            if query.is_some() { "?" } else { "" },
            query.unwrap_or_default(),
        ];
        Self::new(request.method(), request.version(), &pieces, request.headers())
    }

    /// The head of a request to `url` (as `Url::as_str` wrote it).
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn with_url(method: &Method, version: Version, url: &str, headers: &HeaderMap) -> Self {
        Self::new(method, version, &[url], headers)
    }

    fn new(method: &Method, version: Version, uri: &[&str], headers: &HeaderMap) -> Self {
        let uri_end = uri.iter().map(|piece| piece.len()).sum();
        let headers_len: usize = headers.iter().map(|(name, value)| 8 + name.as_str().len() + value.len()).sum();
        let mut bytes = Vec::with_capacity(uri_end + headers_len);
        for piece in uri {
            bytes.extend_from_slice(piece.as_bytes());
        }
        for (name, value) in headers {
            for part in [name.as_str().as_bytes(), value.as_bytes()] {
                let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
                bytes.extend_from_slice(&len.to_le_bytes());
                bytes.extend_from_slice(part);
            }
        }
        Self { method: method.clone(), version, bytes, uri_end }
    }

    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// The URI as the request had it.
    pub(crate) fn uri(&self) -> &str {
        // Written from `&str`s at `0..uri_end`: always valid, so the fallback never runs.
        self.bytes.get(..self.uri_end).and_then(|uri| std::str::from_utf8(uri).ok()).unwrap_or_default()
    }

    /// The headers again, in their original order (repeated headers included); a
    /// truncated or invalid entry ends them.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut rest = self.bytes.get(self.uri_end..).unwrap_or_default();
        let mut map = HeaderMap::new();
        let next = |rest: &mut &[u8]| -> Option<Vec<u8>> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            let part = tail.get(..len)?.to_vec();
            *rest = tail.get(len..)?;
            Some(part)
        };
        while let (Some(name), Some(value)) = (next(&mut rest), next(&mut rest)) {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&name), HeaderValue::from_bytes(&value)) {
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
        parts.method = self.method.clone();
        parts.uri = uri;
        parts.version = self.version;
        parts.headers = self.headers();
        Ok(parts)
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Head")
            .field("method", &self.method)
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
        }
        assert!(head("http://a.test/", &HeaderMap::new()).headers().is_empty());
    }

    #[test]
    fn truncated_headers_decode_to_nothing() {
        let head =
            Head { method: Method::GET, version: Version::HTTP_11, bytes: b"/x\x09\x00\x00".to_vec(), uri_end: 2 };
        assert_eq!(head.uri(), "/x");
        assert!(head.headers().is_empty());
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
