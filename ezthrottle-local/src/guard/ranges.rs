//! Which addresses are special: everything an engine bound beyond loopback does not reach
//! unless the allow-list names it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The special range an address falls in (a public address falls in none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// `0.0.0.0/8`, `::`: "this host" (Linux connects `0.0.0.0` to itself).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `100.64.0.0/10`: carrier-grade NAT, often a provider's internal network.
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata lives here), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`, and the deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`.
    Documentation,
    /// `198.18.0.0/15`: network benchmarks.
    Benchmarking,
    /// `192.0.0.0/24` (protocol assignments), `240.0.0.0/4`, IPv4-compatible `::a.b.c.d`,
    /// and what no public host uses.
    Reserved,
}

impl Range {
    fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified (0.0.0.0/8, ::)",
            Self::Loopback => "loopback (127.0.0.0/8, ::1)",
            Self::Private => "private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
            Self::SharedAddressSpace => "shared address space (carrier-grade NAT, 100.64.0.0/10)",
            Self::LinkLocal => "link-local (169.254.0.0/16, fe80::/10)",
            Self::UniqueLocal => "unique-local (fc00::/7)",
            Self::Multicast => "multicast (224.0.0.0/4, ff00::/8)",
            Self::Broadcast => "broadcast (255.255.255.255)",
            Self::Documentation => "documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)",
            Self::Benchmarking => "benchmarking (198.18.0.0/15)",
            Self::Reserved => "reserved",
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The special range of `ip`, or `None` for a public address. IPv6 forms that carry an
/// IPv4 address (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
/// classified by the address they carry: the packets end there.
pub(crate) fn classify(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (0, ..) => Range::Unspecified,
        (127, ..) => Range::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Range::Private,
        (100, 64..=127, _) => Range::SharedAddressSpace,
        (169, 254, _) => Range::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Range::Documentation,
        (198, 18..=19, _) => Range::Benchmarking,
        (192, 0, 0) => Range::Reserved,
        (224..=239, ..) => Range::Multicast,
        _ if ip.is_broadcast() => Range::Broadcast,
        (240..=255, ..) => Range::Reserved,
        _ => return None,
    };
    Some(range)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    let [s0, s1, ..] = segments;
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    let range = match segments {
        _ if ip.is_unspecified() => Range::Unspecified,
        _ if ip.is_loopback() => Range::Loopback,
        // IPv4-compatible (`::a.b.c.d`, deprecated): no public host answers there.
        [0, 0, 0, 0, 0, 0, ..] => Range::Reserved,
        // NAT64: a translator sends the packets to the IPv4 address it carries.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return classify_v4(embedded(high, low)),
        // 6to4: the relay sends the packets to the IPv4 address it carries.
        [0x2002, high, low, ..] => return classify_v4(embedded(high, low)),
        _ if s0 & 0xffc0 == 0xfe80 => Range::LinkLocal,
        _ if s0 & 0xfe00 == 0xfc00 || s0 & 0xffc0 == 0xfec0 => Range::UniqueLocal,
        _ if s0 & 0xff00 == 0xff00 => Range::Multicast,
        _ if s0 == 0x2001 && s1 == 0x0db8 => Range::Documentation,
        _ => return None,
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<Range> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn every_special_ipv4_range_is_named() {
        let cases = [
            ("0.0.0.0", Range::Unspecified),
            ("0.1.2.3", Range::Unspecified),
            ("127.0.0.1", Range::Loopback),
            ("127.255.255.254", Range::Loopback),
            ("10.0.0.1", Range::Private),
            ("172.16.0.1", Range::Private),
            ("172.31.255.255", Range::Private),
            ("192.168.1.1", Range::Private),
            ("100.64.0.1", Range::SharedAddressSpace),
            ("100.127.255.255", Range::SharedAddressSpace),
            ("169.254.169.254", Range::LinkLocal),
            ("192.0.2.1", Range::Documentation),
            ("198.51.100.7", Range::Documentation),
            ("203.0.113.9", Range::Documentation),
            ("198.18.0.1", Range::Benchmarking),
            ("192.0.0.170", Range::Reserved),
            ("224.0.0.1", Range::Multicast),
            ("239.255.255.250", Range::Multicast),
            ("240.0.0.1", Range::Reserved),
            ("255.255.255.255", Range::Broadcast),
        ];
        for (ip, range) in cases {
            assert_eq!(class(ip), Some(range), "{ip}");
        }
    }

    #[test]
    fn neighbours_of_the_ranges_are_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.167.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "198.17.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "126.0.0.1",
            "128.0.0.1",
            "192.0.3.1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges_and_embedded_ipv4_are_named() {
        let cases = [
            ("::", Range::Unspecified),
            ("::1", Range::Loopback),
            ("fe80::1", Range::LinkLocal),
            ("febf::1", Range::LinkLocal),
            ("fc00::1", Range::UniqueLocal),
            ("fd12:3456::1", Range::UniqueLocal),
            ("fec0::1", Range::UniqueLocal),
            ("ff02::1", Range::Multicast),
            ("2001:db8::1", Range::Documentation),
            ("::ffff:127.0.0.1", Range::Loopback),
            ("::ffff:10.0.0.1", Range::Private),
            ("::ffff:169.254.169.254", Range::LinkLocal),
            ("::ffff:192.168.0.1", Range::Private),
            ("::ffff:100.64.0.1", Range::SharedAddressSpace),
            ("::ffff:0.0.0.0", Range::Unspecified),
            ("::10.0.0.1", Range::Reserved),
            ("64:ff9b::a9fe:a9fe", Range::LinkLocal),
            ("2002:7f00:1::", Range::Loopback),
            ("2002:a00:1::", Range::Private),
        ];
        for (ip, range) in cases {
            assert_eq!(class(ip), Some(range), "{ip}");
        }
        for ip in ["2606:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn descriptions_name_the_rule() {
        assert!(Range::LinkLocal.to_string().contains("169.254.0.0/16"));
        assert!(Range::Private.to_string().starts_with("private"));
    }
}
