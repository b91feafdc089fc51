//! Which redirects a job's call follows.
//!
//! The engine's HTTP client follows none by itself: webhook deliveries never follow one (a
//! 3xx is a failed delivery; following a 301 would turn the signed POST into a bodiless GET
//! and count it as delivered), and the executor asks [`next_hop`] for each 3xx a job gets:
//!
//! - `307`/`308` keep the method and body, so they are followed for every method;
//! - `301`/`302`/`303` are followed only for `GET` and `HEAD` (for any other method a
//!   client would change it to `GET` and drop the body: a different request). For the
//!   others the 3xx is the job's answer;
//! - a hop to another origin (scheme, host or port) drops every credential header
//!   ([`CREDENTIAL_HEADERS`]), so a token never travels to a host it was not meant for;
//! - the target must be `http`/`https`, pass the engine's allow-list and, on a guarded
//!   engine, the SSRF rule for a host written as an address (`guard::check_url`; a name is
//!   checked when it is resolved); at most [`MAX_REDIRECTS`] hops.

use ezthrottle_core::protocol::headers::CREDENTIAL_HEADERS;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::config::Config;

/// The most redirects one attempt follows.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Where a followed redirect goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub(crate) url: Url,
    pub(crate) cross_origin: bool,
}

/// The next hop for `status` answered to `method from`, or `None` when the answer is final.
pub(crate) fn next_hop(
    status: StatusCode,
    method: &Method,
    from: &Url,
    headers: &HeaderMap,
    config: &Config,
) -> Option<Hop> {
    let keeps_method = matches!(status.as_u16(), 307 | 308);
    let may_become_get = matches!(status.as_u16(), 301..=303) && (method == Method::GET || method == Method::HEAD);
    if !(keeps_method || may_become_get) {
        return None;
    }
    let location = headers.get(http::header::LOCATION)?.to_str().ok()?;
    let url = from.join(location).ok()?;
    if !matches!(url.scheme(), "http" | "https") || crate::guard::check_url(config, &url).is_err() {
        return None;
    }
    let cross_origin = url.origin() != from.origin();
    Some(Hop { url, cross_origin })
}

/// Removes the credential headers of a job (any case) before a hop to another origin.
pub(crate) fn drop_credentials(headers: &mut ezthrottle_core::protocol::Headers) {
    headers.retain(|name, _| !CREDENTIAL_HEADERS.iter().any(|credential| credential.eq_ignore_ascii_case(name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(status: u16, method: Method, location: &str) -> Option<Hop> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::LOCATION, location.parse().unwrap());
        let from = Url::parse("http://127.0.0.1:8080/a/b").unwrap();
        next_hop(StatusCode::from_u16(status).unwrap(), &method, &from, &headers, &Config::default())
    }

    #[test]
    fn only_method_keeping_redirects_are_followed_for_other_methods() {
        for status in [307, 308] {
            assert!(hop(status, Method::POST, "/c").is_some(), "{status}");
        }
        for status in [301, 302, 303] {
            assert_eq!(hop(status, Method::POST, "/c"), None, "{status}");
            assert_eq!(hop(status, Method::DELETE, "/c"), None, "{status}");
            assert!(hop(status, Method::GET, "/c").is_some(), "{status}");
        }
        assert_eq!(hop(300, Method::GET, "/c"), None);
        assert_eq!(hop(304, Method::GET, "/c"), None);
    }

    #[test]
    fn locations_resolve_and_origin_changes_are_seen() {
        let same = hop(307, Method::GET, "c?x=1").unwrap();
        assert_eq!((same.url.as_str(), same.cross_origin), ("http://127.0.0.1:8080/a/c?x=1", false));
        assert!(hop(307, Method::GET, "http://127.0.0.2:8080/").unwrap().cross_origin);
        assert!(hop(307, Method::GET, "http://127.0.0.1:8081/").unwrap().cross_origin);
        assert!(hop(307, Method::GET, "https://127.0.0.1:8080/").unwrap().cross_origin);
        assert_eq!(hop(307, Method::GET, "ftp://127.0.0.1/"), None);
        assert_eq!(hop(307, Method::GET, "file:///etc/passwd"), None);
        let mut headers = HeaderMap::new();
        let from = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(next_hop(StatusCode::TEMPORARY_REDIRECT, &Method::GET, &from, &headers, &Config::default()), None);
        headers.insert(http::header::LOCATION, "http://other.test/".parse().unwrap());
        let allow_listed = Config { allowed_hosts: Some(vec!["127.0.0.1".into()]), ..Config::default() };
        assert_eq!(next_hop(StatusCode::TEMPORARY_REDIRECT, &Method::GET, &from, &headers, &allow_listed), None);
    }

    #[test]
    fn a_guarded_engine_follows_no_hop_to_a_special_literal() {
        let guarded = Config { guard_private_addresses: true, ..Config::default() };
        let from = Url::parse("http://93.184.216.34/start").unwrap();
        let to = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::LOCATION, location.parse().unwrap());
            next_hop(StatusCode::TEMPORARY_REDIRECT, &Method::GET, &from, &headers, &guarded)
        };
        for location in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://10.0.0.1/",
            "http://127.0.0.1:8080/",
            "http://[fd00::1]/",
            "http://2130706433/",
        ] {
            assert_eq!(to(location), None, "{location}");
        }
        assert!(to("http://93.184.216.35/next").is_some());
        assert!(to("/same-host").is_some());
    }

    #[test]
    fn credentials_are_dropped_in_any_case() {
        let mut headers: ezthrottle_core::protocol::Headers = [
            ("Authorization", "Bearer t"),
            ("X-API-Key", "k"),
            ("cookie", "s=1"),
            ("Proxy-Authorization", "p"),
            ("accept", "a"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        drop_credentials(&mut headers);
        assert_eq!(headers.keys().collect::<Vec<_>>(), ["accept"]);
    }
}
