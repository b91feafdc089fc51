//! Whose requests count together.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ezthrottle_core::protocol::redact::RedactedHeaders;
use http::{Extensions, HeaderMap, HeaderName, Method, Uri};
use sha2::{Digest, Sha256};

use super::forwarded;

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

type ValueFn = Arc<dyn Fn(&RequestHead<'_>) -> Option<Vec<u8>> + Send + Sync>;

/// How a request maps to the key its limit is counted under.
///
/// **The key is a digest, never the value.** A value the scope finds (an API key, a user id,
/// an address) is counted under its SHA-256 digest (64 hex digits), so no raw credential
/// ever appears in a store key (a Redis `SCAN` or `MONITOR`), a metric or a log. A request for
/// which the scope finds no value (no API key header, no user extension, no parsable
/// address) counts under the shared key [`ANONYMOUS`], which is not a digest, so no value a
/// client sends (not even the text `anonymous`) joins that bucket, and leaving the value out
/// never escapes the limit.
///
/// **Scopes a client chooses belong behind authentication.** A client that sends a fresh
/// value on every request ([`header`](Self::header) before the key is checked,
/// [`client_ip_from_header`](Self::client_ip_from_header) without a trusted proxy,
/// [`route`](Self::route) with made-up paths) gets a fresh bucket every time: such a rule
/// alone does not limit it. Put the layer after the layer that authenticates the key, or add
/// a rule every request counts against ([`global`](Self::global), or
/// [`client_ip`](Self::client_ip) from the connection) as the fallback limit:
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
///
/// let layer = RateLimitLayer::new()
///     // Per key, for clients whose key is genuine ...
///     .rule(Rule::new("per_key", Scope::header("x-api-key"), Algorithm::sliding_window(100, Duration::from_secs(60))))
///     // ... and a ceiling that fresh keys per request cannot get around.
///     .rule(Rule::new("per_ip", Scope::client_ip(), Algorithm::sliding_window(300, Duration::from_secs(60))))
///     .rule(Rule::new("global", Scope::global(), Algorithm::sliding_window(10_000, Duration::from_secs(60))));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct Scope {
    kind: &'static str,
    value: Option<ValueFn>,
}

/// The key of requests for which a scope finds no value. Digests are 64 hex digits, so no
/// value maps to this key.
pub const ANONYMOUS: &str = "anonymous";

/// The key of [`Scope::global`] (not a digest either).
const GLOBAL: &str = "global";

impl Scope {
    /// One limit for every request.
    pub fn global() -> Self {
        Self { kind: GLOBAL, value: None }
    }

    /// Per value of a header, e.g. an API key (`Scope::header("x-api-key")`); the value's
    /// bytes are hashed as sent (an empty value is no value).
    ///
    /// Only as strong as the check of the key: see [the type's docs](Self) for why this
    /// belongs after authentication, or next to a fallback rule.
    pub fn header(name: &'static str) -> Self {
        let name = HeaderName::from_static(name);
        Self::custom("header", move |head| {
            let value = head.headers.get(&name)?.as_bytes();
            (!value.is_empty()).then(|| value.to_vec())
        })
    }

    /// Per value of an extension an earlier layer inserted, e.g. the authenticated user.
    pub fn extension<T, F>(key: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        Self::custom("extension", move |head| head.extensions.get::<T>().map(|value| key(value).into_bytes()))
    }

    /// Per client IP address, from the connection: a `SocketAddr` extension, or axum's
    /// `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`).
    pub fn client_ip() -> Self {
        Self::custom("client_ip", |head| peer_addr(head.extensions).map(|addr| ip_bytes(addr.ip())))
    }

    /// Per client IP address, from a forwarded header set by a proxy you trust: the first
    /// element of e.g. `x-forwarded-for` (`203.0.113.7`, `203.0.113.7:4711`,
    /// `[2001:db8::1]:4711`) or of RFC 7239 `forwarded` (`for=203.0.113.7;proto=https`).
    /// The address is parsed and written canonically, so one client cannot spread over
    /// buckets by spelling it differently; anything that is not an address counts as no
    /// value ([`ANONYMOUS`]).
    ///
    /// Only safe behind a proxy that overwrites the header: the first element of a header a
    /// proxy appends to is whatever the client sent.
    pub fn client_ip_from_header(name: &'static str) -> Self {
        let name = HeaderName::from_static(name);
        Self::custom("forwarded_ip", move |head| {
            forwarded::first_client_ip(head.headers.get(&name)?.as_bytes()).map(ip_bytes)
        })
    }

    /// Per route: method and path (`GET /api/v1/payments`). The path is the client's, so
    /// made-up paths make new keys: pair it with a fallback rule (see [the type's docs](Self)).
    pub fn route() -> Self {
        Self::custom("route", |head| Some(format!("{} {}", head.method, head.uri.path()).into_bytes()))
    }

    /// Per key computed by `key` (`None` counts as [`ANONYMOUS`]; `Some` is hashed).
    pub fn key_fn<F>(key: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        Self::custom("custom", move |head| key(head).map(String::into_bytes))
    }

    fn custom<F>(kind: &'static str, value: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        Self { kind, value: Some(Arc::new(value)) }
    }

    /// The key `head` counts under: the SHA-256 digest of the scope's value (64 lowercase
    /// hex digits), [`ANONYMOUS`] when it finds none, or `global` for [`Scope::global`].
    pub fn key(&self, head: &RequestHead<'_>) -> String {
        match &self.value {
            None => GLOBAL.to_owned(),
            Some(value) => value(head).map_or_else(|| ANONYMOUS.to_owned(), |value| digest(&value)),
        }
    }
}

/// The digest a value is counted under. Domain-separated, so the digests are of no use
/// outside this limiter (e.g. they are not the SHA-256 of the API key another system logs).
fn digest(value: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ezthrottle rate-limit scope\0");
    hasher.update(value);
    hex::encode(hasher.finalize())
}

/// An address as counted: IPv4-mapped IPv6 addresses as their IPv4 address.
fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    ip.to_canonical().to_string().into_bytes()
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

    fn values(scope: &Scope, request: &http::Request<()>) -> Option<Vec<u8>> {
        scope.value.as_ref().and_then(|value| value(&RequestHead::of(request)))
    }

    #[test]
    fn scopes_pick_their_values_and_count_their_digests() {
        let mut request = http::Request::post("/api/v1/payments?x=1")
            .header("x-api-key", "k1")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .body(())
            .unwrap();
        request.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 4000)));
        request.extensions_mut().insert(42_u64);
        let expected: [(Scope, &[u8]); 5] = [
            (Scope::header("x-api-key"), b"k1"),
            (Scope::extension(|user: &u64| format!("user-{user}")), b"user-42"),
            (Scope::client_ip(), b"127.0.0.1"),
            (Scope::client_ip_from_header("x-forwarded-for"), b"203.0.113.7"),
            (Scope::route(), b"POST /api/v1/payments"),
        ];
        for (scope, value) in expected {
            assert_eq!(values(&scope, &request).as_deref(), Some(value), "{scope:?}");
            let key = key(&scope, &request);
            assert_eq!(key, digest(value), "{scope:?}");
            assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
            assert!(!key.contains(std::str::from_utf8(value).unwrap()), "{key}");
        }
        assert_eq!(key(&Scope::global(), &request), GLOBAL);
    }

    #[test]
    fn a_missing_key_is_shared_not_unlimited() {
        let request = http::Request::get("/").header("x-empty", "").body(()).unwrap();
        assert_eq!(key(&Scope::header("x-api-key"), &request), ANONYMOUS);
        assert_eq!(key(&Scope::header("x-empty"), &request), ANONYMOUS);
        assert_eq!(key(&Scope::extension(|user: &u64| user.to_string()), &request), ANONYMOUS);
        assert_eq!(key(&Scope::client_ip(), &request), ANONYMOUS);
    }

    #[test]
    fn no_value_joins_the_anonymous_or_global_bucket() {
        for literal in [ANONYMOUS, GLOBAL] {
            let request = http::Request::get("/").header("x-api-key", literal).body(()).unwrap();
            assert_ne!(key(&Scope::header("x-api-key"), &request), literal);
            assert_ne!(key(&Scope::key_fn(move |_| Some(literal.to_owned())), &request), literal);
        }
    }

    #[test]
    fn an_ipv4_mapped_peer_counts_as_its_ipv4_address() {
        let mut request = http::Request::get("/").body(()).unwrap();
        request.extensions_mut().insert(SocketAddr::from(([0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7107], 1)));
        assert_eq!(values(&Scope::client_ip(), &request).as_deref(), Some(&b"203.0.113.7"[..]));
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
