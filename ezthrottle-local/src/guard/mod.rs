//! Not an SSRF relay: which addresses the engine's requests (job attempts, redirect hops,
//! webhook deliveries) may reach.
//!
//! The rule applies when the engine is *guarded*: bound beyond loopback (any address but
//! `127.0.0.0/8` and `::1`, `0.0.0.0` included), or forced with
//! [`EngineBuilder::guard_private_addresses`](crate::EngineBuilder::guard_private_addresses).
//! A guarded engine reaches no address in a special range ([`ranges`]: loopback, private,
//! link-local, unique-local, carrier-grade NAT, unspecified, multicast, broadcast,
//! documentation, benchmarking, reserved, and their IPv4-mapped, NAT64 and 6to4 forms)
//! unless the allow-list names that address. It is checked twice:
//!
//! - on the URL, for every host written as an IP address (a literal never reaches a
//!   resolver): at submission (a 403 naming the field), on each redirect hop (the hop is
//!   not followed) and before each webhook delivery (a failed delivery);
//! - after DNS resolution, inside the HTTP client's resolver ([`resolve`]): the answers in
//!   special ranges are dropped, and a name left with none fails to connect with an error
//!   naming the rule. The check is made on the addresses the connection then uses, at
//!   every connection, so DNS rebinding (a safe answer at submission, `169.254.169.254` at
//!   connect time) fails.
//!
//! A loopback-bound engine is not guarded: only processes on the same machine can submit
//! to it, and they can reach those addresses themselves; it reaches everything, as it
//! always has (the allow-list, when set, still applies).
//!
//! The allow-list ([`allow`]) is matched in one place, `Config::host_allowed`: `host`
//! admits every port, `host:port` only that one.

pub(crate) mod allow;
mod builder;
pub(crate) mod ranges;
mod resolve;

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

use crate::config::Config;
use ranges::{Range, classify};

pub(crate) use builder::check_start;
pub(crate) use resolve::{CustomResolver, http_client};

/// Why a URL or an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(String);

impl Refusal {
    fn address(ip: IpAddr, range: Range, resolved_from: Option<&str>) -> Self {
        let of = resolved_from.map(|name| format!(" (an address of {name})")).unwrap_or_default();
        Self(format!(
            "{ip}{of} is {range}: a guarded engine (bound beyond loopback, or told to guard) does not reach it unless the allow-list names it (SSRF guard)"
        ))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Whether the SSRF rule applies to `config`'s engine.
pub(crate) fn guarded(config: &Config) -> bool {
    config.guard_private_addresses || classify(config.bind.ip()) != Some(Range::Loopback)
}

/// Whether the engine may request `url`: its host and port are in the allow-list (when
/// there is one), and a host written as an address passes the SSRF rule.
pub(crate) fn check_url(config: &Config, url: &Url) -> Result<(), Refusal> {
    if !config.host_allowed(url) {
        let host = allow::url_host(url).unwrap_or_default();
        return Err(Refusal(format!("host {host:?} is not in the engine's allow-list")));
    }
    if !guarded(config) {
        return Ok(());
    }
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match address_refusal(config.allowed_hosts.as_deref(), ip, None) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

/// The refusal of `ip` under a guarded engine's rule with the allow-list `allowed`.
fn address_refusal(allowed: Option<&[String]>, ip: IpAddr, resolved_from: Option<&str>) -> Option<Refusal> {
    let range = classify(ip)?;
    if allowed.is_some_and(|entries| allow::names_address(entries, ip)) {
        return None;
    }
    Some(Refusal::address(ip, range, resolved_from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn config(bind: &str, allowed: Option<&[&str]>) -> Config {
        Config {
            bind: bind.parse::<SocketAddr>().unwrap(),
            allowed_hosts: allowed.map(|list| list.iter().map(|entry| (*entry).to_owned()).collect()),
            ..Config::default()
        }
    }

    fn check(config: &Config, url: &str) -> Result<(), Refusal> {
        check_url(config, &Url::parse(url).unwrap())
    }

    #[test]
    fn only_a_loopback_bind_is_unguarded() {
        assert!(!guarded(&config("127.0.0.1:0", None)));
        assert!(!guarded(&config("127.0.0.9:0", None)));
        assert!(!guarded(&config("[::1]:0", None)));
        assert!(guarded(&config("0.0.0.0:8080", None)));
        assert!(guarded(&config("[::]:8080", None)));
        assert!(guarded(&config("10.1.2.3:8080", None)));
        assert!(guarded(&Config { guard_private_addresses: true, ..config("127.0.0.1:0", None) }));
    }

    #[test]
    fn a_guarded_engine_refuses_special_literals_unless_named() {
        let open = config("0.0.0.0:80", None);
        for url in [
            "http://169.254.169.254/latest",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://10.0.0.1/",
            "http://[::ffff:169.254.169.254]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            let refusal = check(&open, url).unwrap_err();
            assert!(refusal.to_string().contains("SSRF guard"), "{url}: {refusal}");
        }
        assert!(check(&open, "http://93.184.216.34/").is_ok());
        assert!(check(&open, "http://api.test/").is_ok(), "names are checked after resolution");
        let named = config("0.0.0.0:80", Some(&["127.0.0.2:81"]));
        assert!(check(&named, "http://127.0.0.2:81/").is_ok());
        let other_port = check(&named, "http://127.0.0.2:82/").unwrap_err();
        assert!(other_port.to_string().contains("allow-list"), "{other_port}");
        // Unguarded, literals pass as they always have.
        assert!(check(&config("127.0.0.1:0", None), "http://169.254.169.254/").is_ok());
    }

    #[test]
    fn resolved_addresses_are_refused_with_the_rule_and_the_name() {
        let refusal = address_refusal(None, "169.254.169.254".parse().unwrap(), Some("metadata.test")).unwrap();
        let text = refusal.to_string();
        assert!(text.contains("169.254.169.254 (an address of metadata.test) is link-local"), "{text}");
        assert_eq!(address_refusal(None, "93.184.216.34".parse().unwrap(), None), None);
        let entries = ["10.0.0.1:443".to_owned()];
        assert_eq!(address_refusal(Some(&entries), "10.0.0.1".parse().unwrap(), None), None);
        assert!(address_refusal(Some(&entries), "10.0.0.2".parse().unwrap(), None).is_some());
    }
}
