//! The client address a forwarding proxy wrote into a header: the one parser of that peer
//! input, for [`Scope::client_ip_from_header`](super::Scope::client_ip_from_header).
//!
//! Accepted forms of the first element of the header (elements are comma separated):
//! `x-forwarded-for` style (`203.0.113.7`, `2001:db8::1`, `203.0.113.7:4711`,
//! `[2001:db8::1]:4711`) and RFC 7239 `forwarded` style (`for=203.0.113.7;proto=https`,
//! `for="[2001:db8::1]:4711"`). Anything else (an obfuscated `for=_hidden`, `unknown`, junk)
//! is no address, so the request counts in the rule's shared bucket instead of a bucket of
//! its own.

use std::net::{IpAddr, SocketAddr};

/// The client address in the first element of `value`, canonical (an IPv4-mapped IPv6
/// address is its IPv4 address), so one client cannot spread over buckets by spelling its
/// address differently.
pub(crate) fn first_client_ip(value: &[u8]) -> Option<IpAddr> {
    let value = std::str::from_utf8(value).ok()?;
    let first = value.split(',').next()?.trim();
    address(rfc7239_for(first).unwrap_or(first)).map(|ip| ip.to_canonical())
}

/// The `for=` parameter of one RFC 7239 element, unquoted; `None` when the element has
/// no parameters at all (the plain `x-forwarded-for` form).
fn rfc7239_for(element: &str) -> Option<&str> {
    if !element.contains('=') {
        return None;
    }
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    });
    // An element with parameters but no `for=` names no client.
    Some(value.map_or("", |value| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)))
}

fn address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    // `[2001:db8::1]` without a port.
    text.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(value: &str) -> Option<String> {
        first_client_ip(value.as_bytes()).map(|ip| ip.to_string())
    }

    #[test]
    fn the_forms_proxies_write_are_read() {
        for (value, expected) in [
            ("203.0.113.7, 10.0.0.1", "203.0.113.7"),
            (" 203.0.113.7 ", "203.0.113.7"),
            ("203.0.113.7:4711", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:0db8:0:0::1", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("proto=https; For=\"[2001:db8:cafe::17]:4711\", for=10.0.0.1", "2001:db8:cafe::17"),
        ] {
            assert_eq!(ip(value).as_deref(), Some(expected), "{value:?}");
        }
    }

    #[test]
    fn anything_else_is_no_address() {
        for value in ["", ",", "unknown", "for=_hidden", "proto=https", "anonymous", "1.2.3.4.5", "[1.2.3.4]", "for=\""]
        {
            assert_eq!(ip(value), None, "{value:?}");
        }
        assert_eq!(first_client_ip(b"\xff203.0.113.7"), None);
    }
}
