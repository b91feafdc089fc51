//! Whose requests count together.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ezthrottle_core::protocol::redact::RedactedHeaders;
use http::{Extensions, HeaderMap, HeaderName, Method, Uri};

/// The parts of a request a scope may look at.
///
/// Its `Debug` shows header names without the values of credential headers
/// ([`CREDENTIAL_HEADERS`](ezthrottle_core::protocol::headers::CREDENTIAL_HEADERS)).
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (e.g. an authenticated user put there by an earlier layer).
    pub extensions: &'a Extensions,
}

impl fmt::Debug for RequestHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", self.method)
            .field("uri", self.uri)
            .field("headers", &RedactedHeaders::new(self.headers))
            .field("extensions", self.extensions)
            .finish_non_exhaustive()
    }
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }
}

type KeyFn = Arc<dyn Fn(&RequestHead<'_>) -> Option<String> + Send + Sync>;

/// How a request maps to the key its limit is counted under.
///
/// A request for which the scope finds no key (no API key header, no user extension)
/// counts under the shared key `anonymous`, so leaving the key out never escapes the limit.
#[derive(Clone)]
pub struct Scope {
    kind: &'static str,
    key: KeyFn,
}

/// The key requests without one share.
pub const ANONYMOUS: &str = "anonymous";

impl Scope {
    /// One limit for every request.
    pub fn global() -> Self {
        Self::custom("global", |_| Some(String::new()))
    }

    /// Per value of a header, e.g. an API key (`Scope::header("x-api-key")`).
    pub fn header(name: &'static str) -> Self {
        let name = HeaderName::from_static(name);
        Self::custom("header", move |head| head.headers.get(&name)?.to_str().ok().map(str::to_owned))
    }

    /// Per value of an extension an earlier layer inserted, e.g. the authenticated user.
    pub fn extension<T, F>(key: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        Self::custom("extension", move |head| head.extensions.get::<T>().map(&key))
    }

    /// Per client IP address, from the connection: a `SocketAddr` extension, or axum's
    /// `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`).
    pub fn client_ip() -> Self {
        Self::custom("client_ip", |head| peer_addr(head.extensions).map(|addr| addr.ip().to_string()))
    }

    /// Per client IP address, from a forwarded header set by a proxy you trust (the first
    /// address of e.g. `x-forwarded-for`). Only safe behind a proxy that overwrites the header.
    pub fn client_ip_from_header(name: &'static str) -> Self {
        let name = HeaderName::from_static(name);
        Self::custom("forwarded_ip", move |head| {
            let value = head.headers.get(&name)?.to_str().ok()?;
            let first = value.split(',').next()?.trim();
            (!first.is_empty()).then(|| first.to_owned())
        })
    }

    /// Per route: method and path (`GET /api/v1/payments`).
    pub fn route() -> Self {
        Self::custom("route", |head| Some(format!("{} {}", head.method, head.uri.path())))
    }

    /// Per key computed by `key` (`None` counts as [`ANONYMOUS`]).
    pub fn key_fn<F>(key: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        Self::custom("custom", key)
    }

    fn custom<F>(kind: &'static str, key: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        Self { kind, key: Arc::new(key) }
    }

    /// The key `head` counts under.
    pub fn key(&self, head: &RequestHead<'_>) -> String {
        (self.key)(head).unwrap_or_else(|| ANONYMOUS.to_owned())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scope").field(&self.kind).finish()
    }
}

fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(*addr);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &Scope, request: &http::Request<()>) -> String {
        scope.key(&RequestHead::of(request))
    }

    #[test]
    fn scopes_pick_their_keys() {
        let mut request = http::Request::post("/api/v1/payments?x=1")
            .header("x-api-key", "k1")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .body(())
            .unwrap();
        request.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 4000)));
        request.extensions_mut().insert(42_u64);
        assert_eq!(key(&Scope::global(), &request), "");
        assert_eq!(key(&Scope::header("x-api-key"), &request), "k1");
        assert_eq!(key(&Scope::extension(|user: &u64| format!("user-{user}")), &request), "user-42");
        assert_eq!(key(&Scope::client_ip(), &request), "127.0.0.1");
        assert_eq!(key(&Scope::client_ip_from_header("x-forwarded-for"), &request), "203.0.113.7");
        assert_eq!(key(&Scope::route(), &request), "POST /api/v1/payments");
    }

    #[test]
    fn a_missing_key_is_shared_not_unlimited() {
        let request = http::Request::get("/").body(()).unwrap();
        assert_eq!(key(&Scope::header("x-api-key"), &request), ANONYMOUS);
        assert_eq!(key(&Scope::extension(|user: &u64| user.to_string()), &request), ANONYMOUS);
    }

    #[test]
    fn debug_hides_credentials() {
        let request = crate::test_requests::credentialed(http::Request::get("/me")).body(()).unwrap();
        let head = RequestHead::of(&request);
        for shown in [format!("{head:?}"), format!("{head:#?}")] {
            for secret in crate::test_requests::SECRETS {
                assert!(!shown.contains(secret), "shows {secret:?}: {shown}");
            }
            for visible in ["authorization", "cookie", "x-api-key", "application/json", "/me"] {
                assert!(shown.contains(visible), "hides {visible:?}: {shown}");
            }
        }
    }
}
