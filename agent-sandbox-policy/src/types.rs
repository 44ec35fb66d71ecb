//! Typed, validated forms of the values a policy contains: CIDRs, port
//! ranges, host patterns and the small enums of the schema.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::Deserialize;

/// Why a value in a policy is not valid. The message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// What is wrong with the value.
    pub message: String,
    /// The value the author probably meant, if there is an obvious one.
    pub suggestion: Option<String>,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
            suggestion: None,
        }
    }
}

/// An IPv4 or IPv6 network: an address with a prefix length and no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Builds a network; fails when the prefix is too long for the family or
    /// host bits are set (the error suggests the network address).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ValueError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(ValueError::new(format!(
                "prefix /{prefix} is longer than {max} bits for {addr}"
            )));
        }
        let net = mask(addr, prefix);
        if net != addr {
            return Err(ValueError {
                message: format!("{addr}/{prefix} has host bits set"),
                suggestion: Some(format!("{net}/{prefix}")),
            });
        }
        Ok(Cidr { addr, prefix })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True if `ip` is inside the network. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) are compared as the IPv4 address they carry, on both
    /// sides, because a dual-stack socket reaches an IPv4 host through them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let me = self.canonical();
        let ip = unmap(ip);
        match (me.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, me.prefix) == me.addr
            }
            _ => false,
        }
    }

    /// The same network seen through IPv4-mapped IPv6 (`::ffff:0:0/96`), for
    /// the IPv6 hooks that see connections to mapped addresses; `None` for an
    /// IPv6 network.
    pub fn ipv4_mapped(&self) -> Option<Cidr> {
        match self.addr {
            IpAddr::V4(v4) => Some(Cidr {
                addr: IpAddr::V6(v4.to_ipv6_mapped()),
                prefix: self.prefix + 96,
            }),
            IpAddr::V6(_) => None,
        }
    }

    /// An IPv4-mapped IPv6 network of prefix >= 96 as the IPv4 network it
    /// denotes; any other network unchanged.
    pub fn canonical(&self) -> Cidr {
        match self.addr {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: self.prefix - 96,
                },
                None => *self,
            },
            _ => *self,
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; anything else unchanged.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for Cidr {
    type Err = ValueError;

    /// `10.1.0.0/16`, `fd00::/8`, or a plain address (a /32 or /128).
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::new(format!("\"{s}\" is not an IPv4 or IPv6 address or CIDR"));
        match s.split_once('/') {
            None => {
                let addr = IpAddr::from_str(s).map_err(|_| bad())?;
                let prefix = if addr.is_ipv4() { 32 } else { 128 };
                Ok(Cidr { addr, prefix })
            }
            Some((a, p)) => {
                let addr = IpAddr::from_str(a).map_err(|_| bad())?;
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err(ValueError::new(format!(
                        "\"{s}\": the prefix length after '/' must be a number"
                    )));
                }
                let prefix: u8 = p.parse().map_err(|_| bad())?;
                Cidr::new(addr, prefix)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An inclusive range of TCP/UDP ports, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port of the range.
    pub start: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Validates `start..=end`: both in 1..=65535 and `start <= end`.
    pub fn new(start: i64, end: i64) -> Result<Self, ValueError> {
        for p in [start, end] {
            if !(1..=65535).contains(&p) {
                return Err(ValueError::new(format!(
                    "port {p} is out of range (1-65535)"
                )));
            }
        }
        if start > end {
            return Err(ValueError {
                message: format!("port range {start}-{end} is reversed"),
                suggestion: Some(format!("{end}-{start}")),
            });
        }
        // Both are in 1..=65535, so the conversions cannot fail.
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(start), Ok(end)) => Ok(PortRange { start, end }),
            _ => Err(ValueError::new("port out of range")),
        }
    }

    /// True if `port` is inside the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = ValueError;

    /// `"443"` or `"6000-6010"`.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let num = |t: &str| -> Result<i64, ValueError> {
            let t = t.trim();
            if t.is_empty() || t.len() > 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValueError::new(format!(
                    "\"{s}\" is not a port or a \"low-high\" port range"
                )));
            }
            t.parse()
                .map_err(|_| ValueError::new(format!("\"{s}\" is not a port")))
        };
        match s.split_once('-') {
            Some((a, b)) => PortRange::new(num(a)?, num(b)?),
            None => {
                let p = num(s)?;
                PortRange::new(p, p)
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "\"{}-{}\"", self.start, self.end)
        }
    }
}

/// A host name to match: exact, or `*.suffix` for every subdomain of suffix
/// (not the suffix itself). Names are compared case-insensitively, without a
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this name.
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Suffix(String),
}

impl HostPattern {
    /// True if `host` matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match self {
            HostPattern::Exact(name) => host == *name,
            HostPattern::Suffix(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

fn check_host_name(name: &str, whole: &str) -> Result<(), ValueError> {
    if name.is_empty() || name.len() > 253 {
        return Err(ValueError::new(format!(
            "\"{whole}\" is not a valid host name (1-253 characters)"
        )));
    }
    for label in name.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(ValueError::new(format!(
                "\"{whole}\" is not a valid host name (label \"{label}\")"
            )));
        }
    }
    Ok(())
}

impl FromStr for HostPattern {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        let lower = s.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if IpAddr::from_str(name).is_ok() {
            return Err(ValueError::new(format!(
                "\"{s}\" is an IP address: put it in `cidrs`, not `hosts`"
            )));
        }
        if let Some(suffix) = name.strip_prefix("*.") {
            check_host_name(suffix, s)?;
            return Ok(HostPattern::Suffix(suffix.to_string()));
        }
        if name.contains('*') {
            return Err(ValueError::new(format!(
                "\"{s}\": a wildcard is only allowed as a leading \"*.\""
            )));
        }
        check_host_name(name, s)?;
        Ok(HostPattern::Exact(name.to_string()))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

/// Network mode: what happens to a connection no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDefault {
    /// Deny-list mode: everything not denied is allowed.
    Allow,
    /// Allow-list mode: only `[[network.allow]]` destinations are reachable.
    Deny,
}

/// Transport protocol of a network rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What a matching exec/SQL/HTTP rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it proceed.
    Allow,
    /// Hold it until a human approves (deny on timeout).
    Ask,
    /// Refuse it.
    Deny,
}

/// What a `[[files.protect]]` rule does to a deletion, rename or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProtectAction {
    /// Hold it until a human approves (the default).
    #[default]
    Ask,
    /// Refuse it.
    Deny,
}

/// How dangerous an exec rule's command is; shown in the approval UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

macro_rules! lower_display {
    ($($t:ty { $($v:ident => $s:literal),* })*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$v => $s),* })
            }
        }
    )*};
}

lower_display! {
    NetworkDefault { Allow => "allow", Deny => "deny" }
    Protocol { Tcp => "tcp", Udp => "udp" }
    Action { Allow => "allow", Ask => "ask", Deny => "deny" }
    ProtectAction { Ask => "ask", Deny => "deny" }
    Severity { Low => "low", Medium => "medium", High => "high", Critical => "critical" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_forms() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert_eq!((c.addr(), c.prefix()), (ip("10.1.0.0"), 16));
        let c: Cidr = "203.0.113.7".parse().unwrap();
        assert_eq!(c.prefix(), 32);
        let c: Cidr = "fd00::/8".parse().unwrap();
        assert_eq!(c.prefix(), 8);
        let c: Cidr = "fd00:ec2::254".parse().unwrap();
        assert_eq!(c.prefix(), 128);
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn cidr_errors() {
        let e = "10.1.2.3/16".parse::<Cidr>().unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("10.1.0.0/16"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/".parse::<Cidr>().is_err());
        assert!("10.0.0.0/-1".parse::<Cidr>().is_err());
        assert!("10.0.0.0/99999999999".parse::<Cidr>().is_err());
        assert!("db.example.com".parse::<Cidr>().is_err());
        assert!("".parse::<Cidr>().is_err());
    }

    #[test]
    fn cidr_contains_and_mapped() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        // IPv4-mapped IPv6 is the same destination.
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        assert!(!c.contains(ip("fd00::1")));
        let m = c.ipv4_mapped().unwrap();
        assert_eq!(m.to_string(), "::ffff:10.1.0.0/112");
        assert!(m.contains(ip("10.1.4.4")));
        assert_eq!(m.canonical(), c);
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert_eq!(v6.ipv4_mapped(), None);
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
    }

    #[test]
    fn ports() {
        assert_eq!(
            "6000-6010".parse::<PortRange>().unwrap(),
            PortRange {
                start: 6000,
                end: 6010
            }
        );
        assert_eq!(
            "443".parse::<PortRange>().unwrap(),
            PortRange {
                start: 443,
                end: 443
            }
        );
        let e = "6010-6000".parse::<PortRange>().unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("6000-6010"));
        assert!("0".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
        assert!("1-2-3".parse::<PortRange>().is_err());
        assert!("http".parse::<PortRange>().is_err());
        assert!(PortRange::new(-1, 5).is_err());
        assert!(PortRange::new(1, 65535).unwrap().contains(65535));
    }

    #[test]
    fn hosts() {
        let h: HostPattern = "DB.Prod.Example.com.".parse().unwrap();
        assert_eq!(h, HostPattern::Exact("db.prod.example.com".into()));
        assert!(h.matches("db.prod.example.COM"));
        assert!(!h.matches("xdb.prod.example.com"));
        let w: HostPattern = "*.prod.example.com".parse().unwrap();
        assert!(w.matches("a.prod.example.com"));
        assert!(w.matches("a.b.prod.example.com."));
        assert!(!w.matches("prod.example.com"));
        assert!(!w.matches("aprod.example.com"));
        for bad in [
            "", "*", "a.*.com", "*foo.com", "-a.com", "a..b", "10.0.0.1", "fd00::1", "a b.com",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?} accepted");
        }
    }
}
