//! The SSRF guard's rules: which URLs and which IP addresses the server may fetch.
//!
//! Pure functions and values, no I/O: [`classify`] names what kind of special-purpose address
//! an IP is (loopback, private, link-local, …), [`AddressPolicy`] decides from that and the
//! config whether it may be fetched, and [`check_url`] applies the scheme rule and checks hosts
//! that are IP literals. Host names are checked where they are resolved (`fetch`), on every
//! address the lookup returned, before any connection is made.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Why an address is refused: the kind of special-purpose range it lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `0.0.0.0/8`: "this network", never a destination (Linux connects `0.x` to itself).
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT.
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `fec0::/10`, deprecated site-local.
    SiteLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`.
    Benchmarking,
    /// Every other range that is not ordinary public unicast: `192.0.0/24`, `192.88.99/24`,
    /// `240/4`, IPv6 outside `2000::/3`, `::/8` but for IPv4-mapped addresses (so also the
    /// deprecated IPv4-compatible `::a.b.c.d`), `2001::/23` (Teredo and other protocol
    /// assignments), `64:ff9b:1::/48`, `100::/64`.
    Reserved,
}

impl Refusal {
    /// Kinds that are never a host to fetch from, whatever the config allows.
    pub fn never_a_host(self) -> bool {
        matches!(
            self,
            Refusal::Unspecified | Refusal::ThisNetwork | Refusal::Multicast | Refusal::Broadcast
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Unspecified => "unspecified",
            Refusal::ThisNetwork => "\"this network\"",
            Refusal::Loopback => "loopback",
            Refusal::Private => "private",
            Refusal::SharedAddressSpace => "shared (carrier-grade NAT)",
            Refusal::LinkLocal => "link-local",
            Refusal::UniqueLocal => "unique-local",
            Refusal::SiteLocal => "site-local",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::Documentation => "documentation",
            Refusal::Benchmarking => "benchmarking",
            Refusal::Reserved => "reserved",
        })
    }
}

/// The special-purpose range an address lies in, or `None` for ordinary public unicast.
///
/// IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    use Refusal as R;
    Some(match ip.octets() {
        [0, 0, 0, 0] => R::Unspecified,
        [0, ..] => R::ThisNetwork,
        [10, ..] => R::Private,
        [100, b, ..] if b & 0xc0 == 64 => R::SharedAddressSpace,
        [127, ..] => R::Loopback,
        [169, 254, ..] => R::LinkLocal,
        [172, b, ..] if b & 0xf0 == 16 => R::Private,
        [192, 0, 0, _] | [192, 88, 99, _] => R::Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => R::Documentation,
        [192, 168, ..] => R::Private,
        [198, b, ..] if b & 0xfe == 18 => R::Benchmarking,
        [255, 255, 255, 255] => R::Broadcast,
        [a, ..] if a >= 240 => R::Reserved,
        [a, ..] if a >= 224 => R::Multicast,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    use Refusal as R;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => R::Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => R::Loopback,
        // NAT64's well-known prefix reaches the embedded IPv4 address through a translator.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return classify_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => R::Reserved,
        [0x100, 0, 0, 0, ..] => R::Reserved,
        [0x2001, 0xdb8, ..] => R::Documentation,
        [0x2001, b, ..] if b < 0x200 => R::Reserved,
        // 6to4 reaches the IPv4 address in bits 16..48.
        [0x2002, hi, lo, ..] => return classify_v4(embedded(hi, lo)),
        [0x3fff, b, ..] if b < 0x1000 => R::Documentation,
        [a, ..] if a & 0xfe00 == 0xfc00 => R::UniqueLocal,
        [a, ..] if a & 0xffc0 == 0xfe80 => R::LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => R::SiteLocal,
        [a, ..] if a & 0xff00 == 0xff00 => R::Multicast,
        // Only 2000::/3 is global unicast; `::/8` lands here too (IPv4-compatible and
        // IPv4-translated forms included: refused whatever they embed).
        [a, ..] if a & 0xe000 != 0x2000 => R::Reserved,
        _ => return None,
    })
}

/// An address or CIDR range named in the config (`10.1.2.3`, `192.168.5.0/24`, `fd00::/8`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddressRange(IpNet);

impl AddressRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for AddressRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AddressRange(IpNet::from(ip)));
        }
        s.parse::<IpNet>()
            .map(|n| AddressRange(n.trunc()))
            .map_err(|_| format!("'{s}' is not an IP address or a CIDR range such as 10.0.0.0/8"))
    }
}

impl TryFrom<String> for AddressRange {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<AddressRange> for String {
    fn from(r: AddressRange) -> String {
        // A single address is written as the address alone, as it was given.
        if r.0.prefix_len() == r.0.max_prefix_len() {
            r.0.addr().to_string()
        } else {
            r.0.to_string()
        }
    }
}

/// Which addresses may be fetched.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Every special-purpose range is allowed except those that are never a host.
    pub allow_private: bool,
    /// Ranges allowed even though they are special-purpose (never-a-host kinds excepted).
    pub allowed: Vec<AddressRange>,
}

impl AddressPolicy {
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let Some(refusal) = classify(ip) else {
            return Ok(());
        };
        if refusal.never_a_host() {
            return Err(refusal);
        }
        // `::ffff:10.1.2.3` is the same host as `10.1.2.3`, so it matches the same ranges.
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.allow_private || self.allowed.iter().any(|r| r.contains(canonical)) {
            Ok(())
        } else {
            Err(refusal)
        }
    }
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("only http and https URLs can be fetched")]
    Scheme,
    #[error("it has no host")]
    NoHost,
    /// The host is an IP literal of this kind.
    #[error("its host is a {0} address")]
    Address(Refusal),
    /// The host name resolves to (at least) one address of this kind.
    #[error("its host resolves to a {0} address")]
    ResolvesTo(Refusal),
}

/// Checks the scheme, and the host when it is an IP literal. A host name passes here; its
/// addresses are checked when it is resolved.
///
/// The URL parser has already normalised odd spellings of IPv4 literals (`2130706433`,
/// `0x7f.1`, `0177.0.0.1`, `127.1`) to `Host::Ipv4`, and only such normalised literals skip
/// the resolver, so every literal that reaches a socket passes through here.
pub fn check_url(url: &Url, policy: &AddressPolicy) -> Result<(), UrlRefusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefusal::Scheme);
    }
    let ip = match url.host() {
        None => return Err(UrlRefusal::NoHost),
        Some(Host::Domain("")) => return Err(UrlRefusal::NoHost),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    policy.check(ip).map_err(UrlRefusal::Address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Refusal as R;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_special_purpose_address_is_classified() {
        let table: &[(&str, Option<Refusal>)] = &[
            // IPv4
            ("0.0.0.0", Some(R::Unspecified)),
            ("0.1.2.3", Some(R::ThisNetwork)),
            ("10.0.0.1", Some(R::Private)),
            ("10.255.255.255", Some(R::Private)),
            ("100.63.255.255", None),
            ("100.64.0.1", Some(R::SharedAddressSpace)),
            ("100.127.255.255", Some(R::SharedAddressSpace)),
            ("100.128.0.0", None),
            ("127.0.0.1", Some(R::Loopback)),
            ("127.255.255.254", Some(R::Loopback)),
            ("169.254.169.254", Some(R::LinkLocal)),
            ("169.253.0.1", None),
            ("172.15.255.255", None),
            ("172.16.0.1", Some(R::Private)),
            ("172.31.255.255", Some(R::Private)),
            ("172.32.0.0", None),
            ("192.0.0.8", Some(R::Reserved)),
            ("192.0.0.170", Some(R::Reserved)),
            ("192.0.2.1", Some(R::Documentation)),
            ("192.0.3.1", None),
            ("192.88.99.1", Some(R::Reserved)),
            ("192.167.255.255", None),
            ("192.168.1.1", Some(R::Private)),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.1", Some(R::Benchmarking)),
            ("198.19.255.255", Some(R::Benchmarking)),
            ("198.20.0.0", None),
            ("198.51.100.7", Some(R::Documentation)),
            ("203.0.113.9", Some(R::Documentation)),
            ("224.0.0.1", Some(R::Multicast)),
            ("239.255.255.255", Some(R::Multicast)),
            ("240.0.0.1", Some(R::Reserved)),
            ("255.255.255.254", Some(R::Reserved)),
            ("255.255.255.255", Some(R::Broadcast)),
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("223.255.255.255", None),
            // IPv6
            ("::", Some(R::Unspecified)),
            ("::1", Some(R::Loopback)),
            ("::2", Some(R::Reserved)),
            ("::ffff:127.0.0.1", Some(R::Loopback)),
            ("::ffff:7f00:1", Some(R::Loopback)),
            ("::ffff:10.1.2.3", Some(R::Private)),
            ("::ffff:169.254.169.254", Some(R::LinkLocal)),
            ("::ffff:0.0.0.0", Some(R::Unspecified)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(R::Reserved)),
            ("::8.8.8.8", Some(R::Reserved)),
            ("::ffff:0:7f00:1", Some(R::Reserved)),
            ("64:ff9b::7f00:1", Some(R::Loopback)),
            ("64:ff9b::10.0.0.1", Some(R::Private)),
            ("64:ff9b::a9fe:a9fe", Some(R::LinkLocal)),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b:1::1", Some(R::Reserved)),
            ("100::1", Some(R::Reserved)),
            ("2001::1", Some(R::Reserved)),
            ("2001:1ff::1", Some(R::Reserved)),
            ("2001:200::1", None),
            ("2001:db8::1", Some(R::Documentation)),
            ("2002:7f00:1::1", Some(R::Loopback)),
            ("2002:a00:1::1", Some(R::Private)),
            ("2002:808:808::1", None),
            ("3fff::1", Some(R::Documentation)),
            ("3fff:1000::1", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("4000::1", Some(R::Reserved)),
            ("5f00::1", Some(R::Reserved)),
            ("fc00::1", Some(R::UniqueLocal)),
            ("fd12:3456::1", Some(R::UniqueLocal)),
            ("fe80::1", Some(R::LinkLocal)),
            ("febf::1", Some(R::LinkLocal)),
            ("fec0::1", Some(R::SiteLocal)),
            ("ff02::1", Some(R::Multicast)),
            ("ff0e::1", Some(R::Multicast)),
        ];
        for (addr, want) in table {
            assert_eq!(classify(ip(addr)), *want, "{addr}");
        }
    }

    #[test]
    fn the_default_policy_refuses_every_special_purpose_address() {
        let policy = AddressPolicy::default();
        for addr in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "fc00::1",
        ] {
            assert!(policy.check(ip(addr)).is_err(), "{addr}");
        }
        assert!(policy.check(ip("8.8.8.8")).is_ok());
        assert!(policy.check(ip("2606:4700:4700::1111")).is_ok());
    }

    #[test]
    fn allow_private_still_refuses_what_is_never_a_host() {
        let policy = AddressPolicy {
            allow_private: true,
            allowed: vec![],
        };
        for addr in ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "fd00::1"] {
            assert!(policy.check(ip(addr)).is_ok(), "{addr}");
        }
        for addr in [
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "::ffff:0.0.0.0",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
        ] {
            assert!(policy.check(ip(addr)).is_err(), "{addr}");
        }
    }

    #[test]
    fn allowed_ranges_admit_exactly_what_they_name() {
        let policy = AddressPolicy {
            allow_private: false,
            allowed: vec!["127.0.0.1".parse().unwrap(), "10.8.0.0/16".parse().unwrap()],
        };
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok(), "same host");
        assert_eq!(policy.check(ip("127.0.0.2")), Err(R::Loopback));
        assert_eq!(policy.check(ip("::1")), Err(R::Loopback));
        assert!(policy.check(ip("10.8.200.1")).is_ok());
        assert_eq!(policy.check(ip("10.9.0.1")), Err(R::Private));
        let zero = AddressPolicy {
            allowed: vec!["0.0.0.0/0".parse().unwrap()],
            ..AddressPolicy::default()
        };
        assert_eq!(zero.check(ip("0.0.0.0")), Err(R::Unspecified));
    }

    #[test]
    fn address_ranges_parse_addresses_and_cidr_and_print_as_given() {
        for (given, printed) in [
            ("10.1.2.3", "10.1.2.3"),
            ("192.168.5.0/24", "192.168.5.0/24"),
            ("192.168.5.9/24", "192.168.5.0/24"),
            ("fd00::/8", "fd00::/8"),
            (" ::1 ", "::1"),
        ] {
            let r: AddressRange = given.parse().unwrap();
            assert_eq!(String::from(r), printed);
        }
        for bad in ["", "localhost", "10.0.0.0/33", "10.0.0"] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad}");
        }
    }

    fn url_check(s: &str) -> Result<(), UrlRefusal> {
        check_url(&Url::parse(s).unwrap(), &AddressPolicy::default())
    }

    #[test]
    fn odd_spellings_of_loopback_are_normalised_and_refused() {
        for s in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://127.0.0.1./",
            "http://%31%32%37.0.0.1/",
            "http://\u{ff11}\u{ff12}\u{ff17}.0.0.1/",
            "https://[::1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://user:pass@127.0.0.1:8080/x?y#z",
        ] {
            let url = Url::parse(s).unwrap();
            assert!(
                matches!(url.host(), Some(Host::Ipv4(_) | Host::Ipv6(_))),
                "{s} parsed as {:?}",
                url.host()
            );
            assert!(
                matches!(url_check(s), Err(UrlRefusal::Address(R::Loopback))),
                "{s}: {:?}",
                url_check(s)
            );
        }
    }

    #[test]
    fn other_refused_literals_name_their_kind() {
        for (s, kind) in [
            ("http://0.0.0.0/", R::Unspecified),
            ("http://0/", R::Unspecified),
            ("http://[::]/", R::Unspecified),
            ("http://169.254.169.254/latest/meta-data/", R::LinkLocal),
            ("http://10.0.0.1/", R::Private),
            ("http://192.168.1.1/", R::Private),
            ("http://[fe80::1]/", R::LinkLocal),
            ("http://[fc00::1]/", R::UniqueLocal),
            ("http://100.64.1.1/", R::SharedAddressSpace),
        ] {
            assert_eq!(url_check(s), Err(UrlRefusal::Address(kind)), "{s}");
        }
    }

    #[test]
    fn only_http_and_https_pass() {
        for s in [
            "file:///etc/passwd",
            "ftp://example.com/x",
            "gopher://example.com:70/_x",
            "data:text/plain,hi",
            "javascript:alert(1)",
            "ws://example.com/",
        ] {
            assert_eq!(url_check(s), Err(UrlRefusal::Scheme), "{s}");
        }
        assert_eq!(url_check("http://example.com/a.jpg"), Ok(()));
        assert_eq!(url_check("https://8.8.8.8/a.jpg"), Ok(()));
        assert_eq!(url_check("https://[2606:4700:4700::1111]/"), Ok(()));
    }

    #[test]
    fn host_names_pass_here_and_are_checked_when_resolved() {
        assert_eq!(url_check("http://localhost/"), Ok(()));
        assert_eq!(url_check("http://127.0.0.1.nip.io/"), Ok(()));
    }
}
