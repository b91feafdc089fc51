//! The allow-list: entries are `host` (any port) or `host:port` (that port only); IPv6
//! hosts are written bare (`::1`) or bracketed (`[::1]`, `[::1]:8080`). Hosts compare
//! case-insensitively, without a trailing dot, and IP addresses by value (`[::1]` and
//! `::1` are one entry).

use std::net::IpAddr;

use url::{Host, Url};

/// One parsed entry.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    host: String,
    port: Option<u16>,
}

/// The canonical spelling of a host: lowercase, no trailing dot, IP addresses as
/// `IpAddr` displays them (IPv6 without brackets).
fn canonical(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let bare = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

fn parse(entry: &str) -> Entry {
    let entry = entry.trim();
    // A bare IPv6 address has colons but no port.
    if entry.parse::<IpAddr>().is_ok() {
        return Entry { host: canonical(entry), port: None };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            match port.parse::<u16>() {
                Ok(port) => Entry { host: canonical(host), port: Some(port) },
                // Not a port: an entry that names nothing a URL can have.
                Err(_) => Entry { host: String::new(), port: Some(0) },
            }
        }
        _ => Entry { host: canonical(entry), port: None },
    }
}

/// The canonical host of `url` (see [`canonical`]), if it has one.
pub(crate) fn url_host(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Domain(domain) => Some(canonical(domain)),
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

/// Whether `entries` name `url`'s host and port (its scheme's default port when it has
/// none).
pub(crate) fn names_url(entries: &[String], url: &Url) -> bool {
    let Some(host) = url_host(url) else { return false };
    let port = url.port_or_known_default();
    entries
        .iter()
        .map(|entry| parse(entry))
        .any(|entry| entry.host == host && entry.port.is_none_or(|p| Some(p) == port))
}

/// Whether `entries` name the address `ip` (with any port: a resolved address is checked
/// before the port is known, the port having been checked on the URL).
pub(crate) fn names_address(entries: &[String], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    entries.iter().any(|entry| parse(entry).host.parse::<IpAddr>().is_ok_and(|named| named.to_canonical() == ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|entry| (*entry).to_owned()).collect()
    }

    fn names(entries: &[&str], url: &str) -> bool {
        names_url(&list(entries), &Url::parse(url).unwrap())
    }

    #[test]
    fn a_host_alone_admits_every_port_and_host_port_only_that_one() {
        assert!(names(&["api.test"], "http://api.test/"));
        assert!(names(&["api.test"], "https://api.test:8443/"));
        assert!(names(&["api.test:8443"], "https://api.test:8443/x"));
        assert!(!names(&["api.test:8443"], "https://api.test/x"));
        assert!(names(&["api.test:443"], "https://api.test/x"));
        assert!(!names(&["api.test:80"], "https://api.test/x"));
        assert!(!names(&["api.test"], "http://api.test.evil/"));
        assert!(!names(&["api.test"], "http://sub.api.test/"));
        assert!(!names(&[], "http://api.test/"));
    }

    #[test]
    fn spellings_compare_canonically() {
        assert!(names(&["API.Test."], "http://api.TEST./"));
        assert!(names(&["::1"], "http://[::1]:9/"));
        assert!(names(&["[::1]:9"], "http://[::1]:9/"));
        assert!(!names(&["[::1]:9"], "http://[::1]:10/"));
        assert!(names(&["127.0.0.2:81"], "http://127.0.0.2:81/"));
        // The URL parser reads every IPv4 spelling; the entry names the address.
        assert!(names(&["127.0.0.1"], "http://2130706433/"));
        assert!(!names(&["api.test:port"], "http://api.test/"));
        assert!(!names(&[":80"], "http://api.test/"));
    }

    #[test]
    fn addresses_are_named_by_value() {
        let entries = list(&["127.0.0.2:81", "[fd00::1]", "api.test"]);
        assert!(names_address(&entries, "127.0.0.2".parse().unwrap()));
        assert!(names_address(&entries, "::ffff:127.0.0.2".parse().unwrap()));
        assert!(names_address(&entries, "fd00::1".parse().unwrap()));
        assert!(!names_address(&entries, "127.0.0.3".parse().unwrap()));
    }
}
