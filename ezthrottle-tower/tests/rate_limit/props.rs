//! Property tests of scope extraction through the public API: whatever bytes a client puts
//! in the headers, whatever address it connects from, the layer answers 200 or 429 (never
//! a panic, never a 5xx), and counts it under a digest, never under the value it sent.

use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ezthrottle_tower::StoreError;
use ezthrottle_tower::rate_limit::{
    ANONYMOUS, Algorithm, Check, Decision, MemoryRateLimitStore, RateLimitLayer, RateLimitStore, RequestHead, Rule,
    Scope,
};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;

use super::support::{limited, send};

/// The memory store, recording every key it is asked about.
#[derive(Clone, Default)]
struct Recording {
    store: MemoryRateLimitStore,
    keys: Arc<Mutex<Vec<String>>>,
}

impl RateLimitStore for Recording {
    type Future = Ready<Result<Vec<Decision>, StoreError>>;

    fn check(&self, checks: Vec<Check>) -> Self::Future {
        self.keys.lock().unwrap().extend(checks.iter().map(|check| check.key.clone()));
        ready(Ok(checks.iter().map(|check| self.store.check_one(&check.key, &check.algorithm)).collect()))
    }

    fn peek(&self, checks: Vec<Check>) -> Self::Future {
        self.store.peek(checks)
    }
}

const RULES: [&str; 6] = ["api_key", "peer", "xff", "forwarded", "route", "global"];

fn layer(store: Recording) -> RateLimitLayer<Recording> {
    let algorithm = Algorithm::sliding_window(2, Duration::from_secs(60));
    let scopes = [
        Scope::header("x-api-key"),
        Scope::client_ip(),
        Scope::client_ip_from_header("x-forwarded-for"),
        Scope::client_ip_from_header("forwarded"),
        Scope::route(),
        Scope::global(),
    ];
    RULES
        .into_iter()
        .zip(scopes)
        .fold(RateLimitLayer::with_store(store), |layer, (name, scope)| layer.rule(Rule::new(name, scope, algorithm)))
}

fn is_digest(scope: &str) -> bool {
    scope.len() == 64 && scope.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn header_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    let junk = proptest::collection::vec(any::<u8>(), 0..80);
    let forwarded = "(for=)?\"?\\[?[0-9a-fA-F:.]{0,40}\\]?(:[0-9]{1,6})?\"?(;proto=https)?(, ?[ -~]{0,20})?";
    prop::option::of(prop_oneof![junk, forwarded.prop_map(String::into_bytes)])
}

fn peer() -> impl Strategy<Value = Option<SocketAddr>> {
    prop::option::of(any::<(IpAddr, u16)>().prop_map(SocketAddr::from))
}

fn hostile_request(
    path: &str,
    headers: &[(&'static str, &Option<Vec<u8>>)],
    peer: Option<SocketAddr>,
) -> Option<Request<Full<Bytes>>> {
    let mut request = Request::get(path).body(Full::new(Bytes::new())).ok()?;
    for (name, value) in headers {
        if let Some(value) = value.as_deref().and_then(|bytes| HeaderValue::from_bytes(bytes).ok()) {
            request.headers_mut().insert(*name, value);
        }
    }
    if let Some(peer) = peer {
        request.extensions_mut().insert(peer);
    }
    Some(request)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_request_is_answered_and_counted_under_digests_only(
        api_key in header_bytes(),
        xff in header_bytes(),
        forwarded in header_bytes(),
        path in "/[ -~&&[^ #?]]{0,40}",
        peer in peer(),
    ) {
        let store = Recording::default();
        let service = limited(&layer(store.clone()));
        let headers = [("x-api-key", &api_key), ("x-forwarded-for", &xff), ("forwarded", &forwarded)];
        let Some(request) = hostile_request(&path, &headers, peer) else { return Ok(()) };
        let sent_key = request.headers().get("x-api-key").map(|value| value.as_bytes().to_vec());
        let again = hostile_request(&path, &headers, peer).expect("built once");
        let statuses = tokio_test::block_on(async {
            [send(&service, request).await.status(), send(&service, again).await.status()]
        });
        for status in statuses {
            prop_assert!(status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS, "{status}");
        }
        let keys = store.keys.lock().unwrap().clone();
        prop_assert_eq!(keys.len(), 2 * RULES.len());
        prop_assert_eq!(&keys[..RULES.len()], &keys[RULES.len()..], "the same request, the same keys");
        for (key, rule) in keys.iter().zip(RULES.iter().cycle()) {
            let scope = key.strip_prefix(&format!("{rule}\n")).expect("rule name, then the scope");
            prop_assert!(is_digest(scope) || scope == ANONYMOUS || (*rule == "global" && scope == "global"), "{key:?}");
        }
        let api_key_scope = keys[0].trim_start_matches("api_key\n");
        match sent_key.filter(|value| !value.is_empty()) {
            Some(value) => {
                prop_assert!(is_digest(api_key_scope));
                prop_assert_ne!(api_key_scope.as_bytes(), &value[..], "the value itself is never the key");
            }
            None => prop_assert_eq!(api_key_scope, ANONYMOUS),
        }
    }

    #[test]
    fn a_forwarded_address_counts_like_the_same_peer_however_it_is_written(
        ip in any::<IpAddr>(),
        port in any::<u16>(),
        form in 0..5usize,
        rest in "[ -~&&[^,]]{0,30}",
    ) {
        let bracketed = match ip { IpAddr::V6(v6) => format!("[{v6}]"), IpAddr::V4(v4) => v4.to_string() };
        let first = match form {
            0 => ip.to_string(),
            1 => format!("{bracketed}:{port}"),
            2 => format!("for={ip}"),
            3 => format!("For=\"{bracketed}:{port}\";proto=https"),
            _ => format!("proto=http;for=\"{bracketed}\""),
        };
        let value = format!("{first}, {rest}");
        let scope = Scope::client_ip_from_header("x-forwarded-for");
        let forwarded = Request::get("/").header("x-forwarded-for", value.as_str()).body(()).expect("request");
        let mut connected = Request::get("/").body(()).expect("request");
        connected.extensions_mut().insert(SocketAddr::from((ip, port)));
        let key = scope.key(&RequestHead::of(&forwarded));
        prop_assert!(is_digest(&key), "{value:?}: {key}");
        prop_assert_eq!(key, Scope::client_ip().key(&RequestHead::of(&connected)), "{:?}", value);
    }
}
