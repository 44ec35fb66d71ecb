//! Network rules: from a policy's `[network]` section to the longest-prefix-match maps that the
//! cgroup sock_addr programs consult on every `connect` and `sendmsg` of the session.
//!
//! The kernel side is deliberately simple: one LPM lookup of the destination, then a scan of
//! at most [`NET_PORT_SLOTS`] port entries. Everything else happens here:
//! - hostnames are resolved by the supervisor (at start and then every
//!   `resolve_interval`), and each address becomes a /32 or /128 prefix of its rule;
//! - a wildcard rule (`*.example.com`) covers every name under it that the supervisor resolves
//!   for any rule;
//! - IPv4 rules also cover IPv4-mapped IPv6 destinations (the programs look those up in the
//!   IPv4 map), and an IPv6 rule over `::ffff:0:0/96` is carried over to the IPv4 map;
//! - because an LPM lookup returns only the longest matching prefix, every prefix carries the
//!   port entries of all prefixes that contain it.
//!
//! Addresses once resolved stay blocked for the whole session: a re-resolution adds addresses
//! and never removes one, so a DNS change can only widen a deny rule (and an allow rule keeps
//! allowing an address it allowed before).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs as _};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent_sandbox_common::{
    NET_ACTION_ALLOW, NET_ACTION_DENY, NET_PORT_SLOTS, NET_PROTO_TCP, NET_PROTO_UDP, NetPortRule,
    NetRules,
};

/// A host part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// One name.
    Exact(String),
    /// Every name ending in `.suffix` (written `*.suffix`).
    Wildcard(String),
}

impl Host {
    fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            Host::Exact(h) => name == h.trim_end_matches('.').to_ascii_lowercase(),
            Host::Wildcard(suffix) => {
                let suffix = suffix.trim_end_matches('.').to_ascii_lowercase();
                name.len() > suffix.len() + 1
                    && name.ends_with(&suffix)
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

/// One network rule of the effective policy.
#[derive(Debug, Clone)]
pub struct NetRule {
    /// Rule id (named in refusal events).
    pub id: String,
    /// Explanation shown when it fires.
    pub why: Option<String>,
    /// Allow rule (allow-list mode) rather than deny rule.
    pub allow: bool,
    /// Host names and wildcards.
    pub hosts: Vec<Host>,
    /// Address prefixes.
    pub cidrs: Vec<(IpAddr, u8)>,
    /// Port ranges, inclusive; empty means every port.
    pub ports: Vec<(u16, u16)>,
    /// Applies to TCP.
    pub tcp: bool,
    /// Applies to UDP.
    pub udp: bool,
}

/// Errors of turning rules into maps.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// More port entries meet at one prefix than the kernel side can scan.
    #[error(
        "network rules {rules} together need {count} port entries for {prefix}, more than the \
         {max} the kernel side supports: merge their port lists or split the address ranges"
    )]
    TooManyEntries {
        /// The prefix.
        prefix: String,
        /// Rules involved.
        rules: String,
        /// Entries needed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Too many rules to index.
    #[error("too many network rules ({0}); at most 65535 are supported")]
    TooManyRules(usize),
}

/// A hostname that did not resolve.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// Rule id.
    pub rule: String,
    /// The name.
    pub host: String,
    /// Resolver error.
    pub error: String,
}

/// The system resolver (`getaddrinfo`: /etc/hosts, then DNS as nsswitch.conf says).
fn system_lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    (name, 0)
        .to_socket_addrs()
        .map(|it| it.map(|sa| sa.ip()).collect())
        .map_err(|e| e.to_string())
}

/// An IPv4 or IPv6 prefix with its (pushed-down) port entries.
pub type Table<K> = Vec<(u32, K, NetRules)>;

/// The IPv4 and the IPv6 map contents.
pub type Tables = (Table<[u8; 4]>, Table<[u8; 16]>);

/// The session's network rules and the addresses resolved for them so far.
#[derive(Debug, Clone)]
pub struct NetPlan {
    rules: Vec<NetRule>,
    default_deny: bool,
    /// (rule index, address) resolved from host names, accumulated over the session.
    resolved: BTreeSet<(usize, IpAddr)>,
    /// Every name the supervisor has resolved, with its addresses (wildcards apply to them).
    names: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl NetPlan {
    /// Rules in policy order; `default_deny` is allow-list mode.
    pub fn new(rules: Vec<NetRule>, default_deny: bool) -> Result<Self, NetError> {
        if rules.len() > usize::from(u16::MAX) {
            return Err(NetError::TooManyRules(rules.len()));
        }
        Ok(Self {
            rules,
            default_deny,
            resolved: BTreeSet::new(),
            names: BTreeMap::new(),
        })
    }

    /// The rules, by the index the kernel reports.
    pub fn rules(&self) -> &[NetRule] {
        &self.rules
    }

    /// Allow-list mode.
    pub fn default_deny(&self) -> bool {
        self.default_deny
    }

    /// True when some rule names a host (so periodic re-resolution is worth running).
    pub fn has_hosts(&self) -> bool {
        self.rules.iter().any(|r| !r.hosts.is_empty())
    }

    /// Resolves every exact host name of every rule with the system resolver, the names in
    /// parallel, waiting at most `limit` for the answers; then applies wildcards to every name
    /// resolved so far. Returns whether anything new was learnt, and the names that did not
    /// resolve (a name still unanswered after `limit` is one of them, and is tried again at the
    /// next resolution). An unreachable DNS server would otherwise hold the session's start for
    /// its timeout once per name.
    pub fn resolve_within(&mut self, limit: Duration) -> (bool, Vec<Unresolved>) {
        self.resolve_parallel(limit, system_lookup)
    }

    /// [`NetPlan::resolve_within`] with a given resolver, called from one thread per name.
    pub fn resolve_parallel(
        &mut self,
        limit: Duration,
        lookup: fn(&str) -> Result<Vec<IpAddr>, String>,
    ) -> (bool, Vec<Unresolved>) {
        let names: BTreeSet<String> = self
            .rules
            .iter()
            .flat_map(|r| &r.hosts)
            .filter_map(|h| match h {
                Host::Exact(name) => Some(name.clone()),
                Host::Wildcard(_) => None,
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        let mut answers: BTreeMap<String, Result<Vec<IpAddr>, String>> = BTreeMap::new();
        let mut waiting = 0;
        for name in names {
            let tx = tx.clone();
            let asked = name.clone();
            // A lookup cannot be cancelled: one still running at the limit finishes on its own
            // thread, and its answer is dropped.
            let spawned = std::thread::Builder::new()
                .name("resolve".into())
                .spawn(move || {
                    let answer = lookup(&asked);
                    let _ = tx.send((asked, answer));
                });
            match spawned {
                Ok(_) => waiting += 1,
                Err(_) => {
                    let answer = lookup(&name);
                    answers.insert(name, answer);
                }
            }
        }
        drop(tx);
        let end = Instant::now() + limit;
        while waiting > 0 {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((name, answer)) => {
                    answers.insert(name, answer);
                    waiting -= 1;
                }
                Err(_) => break,
            }
        }
        self.resolve_with(|name| {
            answers
                .get(name)
                .cloned()
                .unwrap_or_else(|| Err(format!("no answer within {} ms", limit.as_millis())))
        })
    }

    /// [`NetPlan::resolve`] with a given resolver (for tests and for names learnt elsewhere).
    pub fn resolve_with(
        &mut self,
        mut lookup: impl FnMut(&str) -> Result<Vec<IpAddr>, String>,
    ) -> (bool, Vec<Unresolved>) {
        let before = self.resolved.len();
        let mut failed = Vec::new();
        let exact: Vec<(usize, String)> = self
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.hosts.iter().filter_map(move |h| match h {
                    Host::Exact(name) => Some((i, name.clone())),
                    Host::Wildcard(_) => None,
                })
            })
            .collect();
        for (i, name) in exact {
            match lookup(&name) {
                Ok(addrs) if !addrs.is_empty() => {
                    self.names
                        .entry(name.to_ascii_lowercase())
                        .or_default()
                        .extend(addrs);
                }
                Ok(_) => failed.push(Unresolved {
                    rule: self.rules[i].id.clone(),
                    host: name,
                    error: "no addresses".into(),
                }),
                Err(error) => failed.push(Unresolved {
                    rule: self.rules[i].id.clone(),
                    host: name,
                    error,
                }),
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            for (name, addrs) in &self.names {
                if rule.hosts.iter().any(|h| h.matches(name)) {
                    self.resolved.extend(addrs.iter().map(|a| (i, *a)));
                }
            }
        }
        (self.resolved.len() > before, failed)
    }

    /// The IPv4 and IPv6 map contents for the rules and every address resolved so far.
    pub fn tables(&self) -> Result<Tables, NetError> {
        let mut v4: Vec<(Prefix4, NetPortRule)> = Vec::new();
        let mut v6: Vec<(Prefix6, NetPortRule)> = Vec::new();
        let mut add = |ip: IpAddr, len: u8, e: NetPortRule| match ip {
            IpAddr::V4(a) => v4.push((Prefix4::new(a, len), e)),
            IpAddr::V6(a) => {
                // An IPv6 prefix reaching into the IPv4-mapped range also covers the IPv4
                // addresses behind it, which the programs look up in the IPv4 map.
                if let Some((a4, l4)) = mapped_part(a, len) {
                    v4.push((Prefix4::new(a4, l4), e));
                }
                v6.push((Prefix6::new(a, len), e));
            }
        };
        for (i, rule) in self.rules.iter().enumerate() {
            for e in entries(i, rule) {
                for &(ip, len) in &rule.cidrs {
                    add(ip, len, e);
                }
            }
        }
        for &(i, ip) in &self.resolved {
            let full = if ip.is_ipv4() { 32 } else { 128 };
            for e in entries(i, &self.rules[i]) {
                add(ip, full, e);
            }
        }
        Ok((
            push_down(v4, &self.rules, |p| p.to_string())?,
            push_down(v6, &self.rules, |p| p.to_string())?,
        ))
    }
}

/// The port entries of one rule.
fn entries(index: usize, rule: &NetRule) -> Vec<NetPortRule> {
    let protos =
        if rule.tcp { NET_PROTO_TCP } else { 0 } | if rule.udp { NET_PROTO_UDP } else { 0 };
    let action = if rule.allow {
        NET_ACTION_ALLOW
    } else {
        NET_ACTION_DENY
    };
    let ranges: &[(u16, u16)] = if rule.ports.is_empty() {
        &[(0, u16::MAX)]
    } else {
        &rule.ports
    };
    ranges
        .iter()
        .map(|&(lo, hi)| NetPortRule {
            lo,
            hi,
            rule: index as u16,
            protos,
            action,
        })
        .collect()
}

/// The IPv4 prefix inside `::ffff:0:0/96` that an IPv6 prefix covers, if any.
fn mapped_part(a: Ipv6Addr, len: u8) -> Option<(Ipv4Addr, u8)> {
    let mapped_net = Prefix6::new(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);
    let p = Prefix6::new(a, len);
    if p.contains(&mapped_net) {
        Some((Ipv4Addr::UNSPECIFIED, 0))
    } else if mapped_net.contains(&p) {
        let o = a.octets();
        Some((Ipv4Addr::new(o[12], o[13], o[14], o[15]), len - 96))
    } else {
        None
    }
}

/// A prefix of an address family.
trait Prefix: Ord + Copy + std::fmt::Display {
    type Key: Copy;
    fn len(&self) -> u8;
    fn contains(&self, other: &Self) -> bool;
    fn key(&self) -> Self::Key;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Prefix4 {
    bits: u32,
    len: u8,
}

impl Prefix4 {
    fn new(a: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Self {
            bits: u32::from(a) & mask,
            len,
        }
    }
}

impl std::fmt::Display for Prefix4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.bits), self.len)
    }
}

impl Prefix for Prefix4 {
    type Key = [u8; 4];
    fn len(&self) -> u8 {
        self.len
    }
    fn contains(&self, other: &Self) -> bool {
        other.len >= self.len && Prefix4::new(Ipv4Addr::from(other.bits), self.len) == *self
    }
    fn key(&self) -> [u8; 4] {
        self.bits.to_be_bytes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Prefix6 {
    bits: u128,
    len: u8,
}

impl Prefix6 {
    fn new(a: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        Self {
            bits: u128::from(a) & mask,
            len,
        }
    }
}

impl std::fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.bits), self.len)
    }
}

impl Prefix for Prefix6 {
    type Key = [u8; 16];
    fn len(&self) -> u8 {
        self.len
    }
    fn contains(&self, other: &Self) -> bool {
        other.len >= self.len && Prefix6::new(Ipv6Addr::from(other.bits), self.len) == *self
    }
    fn key(&self) -> [u8; 16] {
        self.bits.to_be_bytes()
    }
}

/// Gives every prefix the entries of every prefix containing it (itself included), so that
/// the kernel's longest-prefix match alone finds every rule that applies.
fn push_down<P: Prefix>(
    items: Vec<(P, NetPortRule)>,
    rules: &[NetRule],
    show: impl Fn(&P) -> String,
) -> Result<Table<P::Key>, NetError> {
    let mut by_prefix: BTreeMap<P, Vec<NetPortRule>> = BTreeMap::new();
    for (p, e) in items {
        let v = by_prefix.entry(p).or_default();
        if !v.contains(&e) {
            v.push(e);
        }
    }
    let mut out = Vec::with_capacity(by_prefix.len());
    for p in by_prefix.keys() {
        let mut all: Vec<NetPortRule> = Vec::new();
        for (q, es) in &by_prefix {
            if q.contains(p) {
                for e in es {
                    if !all.contains(e) {
                        all.push(*e);
                    }
                }
            }
        }
        if all.len() > NET_PORT_SLOTS {
            let ids: BTreeSet<&str> = all
                .iter()
                .filter_map(|e| rules.get(usize::from(e.rule)).map(|r| r.id.as_str()))
                .collect();
            return Err(NetError::TooManyEntries {
                prefix: show(p),
                rules: ids.into_iter().collect::<Vec<_>>().join(", "),
                count: all.len(),
                max: NET_PORT_SLOTS,
            });
        }
        // Deny entries first: the kernel stops at the first matching deny.
        all.sort_by_key(|e| (e.action != NET_ACTION_DENY, e.rule, e.lo));
        let mut v = NetRules {
            count: all.len() as u32,
            ..Default::default()
        };
        v.entries[..all.len()].copy_from_slice(&all);
        out.push((u32::from(p.len()), p.key(), v));
    }
    Ok(out)
}

/// What the kernel decides for `ip:port/proto` given `tables`: the same algorithm as the
/// programs (longest prefix, then deny over allow over the default), so that the tables can be
/// tested without loading them.
pub fn evaluate(
    (v4, v6): &Tables,
    default_deny: bool,
    ip: IpAddr,
    port: u16,
    udp: bool,
) -> Option<u32> {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(a)),
        v4 => v4,
    };
    let best = match ip {
        IpAddr::V4(a) => v4
            .iter()
            .filter(|(len, key, _)| {
                Prefix4::new(Ipv4Addr::from(*key), *len as u8).contains(&Prefix4::new(a, 32))
            })
            .max_by_key(|(len, ..)| *len)
            .map(|(.., r)| *r),
        IpAddr::V6(a) => v6
            .iter()
            .filter(|(len, key, _)| {
                Prefix6::new(Ipv6Addr::from(*key), *len as u8).contains(&Prefix6::new(a, 128))
            })
            .max_by_key(|(len, ..)| *len)
            .map(|(.., r)| *r),
    };
    let proto = if udp { NET_PROTO_UDP } else { NET_PROTO_TCP };
    let mut allowed = false;
    if let Some(r) = best {
        for e in &r.entries[..r.count as usize] {
            if (e.lo..=e.hi).contains(&port) && e.protos & proto != 0 {
                if e.action == NET_ACTION_DENY {
                    return Some(u32::from(e.rule));
                }
                allowed = true;
            }
        }
    }
    (!allowed && default_deny).then_some(agent_sandbox_common::NET_RULE_DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, cidrs: &[(&str, u8)], ports: &[(u16, u16)]) -> NetRule {
        NetRule {
            id: id.into(),
            why: None,
            allow: false,
            hosts: vec![],
            cidrs: cidrs
                .iter()
                .map(|(a, l)| (a.parse().unwrap(), *l))
                .collect(),
            ports: ports.to_vec(),
            tcp: true,
            udp: true,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nested_prefixes_keep_the_outer_rule() {
        let plan = NetPlan::new(
            vec![
                rule("ssh-anywhere-in-10", &[("10.0.0.0", 8)], &[(22, 22)]),
                rule("prod-db", &[("10.1.0.0", 16)], &[(5432, 5432)]),
            ],
            false,
        )
        .unwrap();
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("10.1.2.3"), 22, false), Some(0));
        assert_eq!(evaluate(&t, false, ip("10.1.2.3"), 5432, false), Some(1));
        assert_eq!(evaluate(&t, false, ip("10.2.2.3"), 5432, false), None);
        assert_eq!(evaluate(&t, false, ip("10.2.2.3"), 22, true), Some(0));
        assert_eq!(evaluate(&t, false, ip("11.0.0.1"), 22, false), None);
        // IPv4-mapped IPv6 reaches the IPv4 rules.
        assert_eq!(
            evaluate(&t, false, ip("::ffff:10.1.0.9"), 5432, false),
            Some(1)
        );
    }

    #[test]
    fn protocols_and_port_ranges() {
        let mut r = rule("dns", &[("192.0.2.53", 32)], &[(53, 53), (8000, 8100)]);
        r.tcp = false;
        let plan = NetPlan::new(vec![r], false).unwrap();
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("192.0.2.53"), 53, true), Some(0));
        assert_eq!(evaluate(&t, false, ip("192.0.2.53"), 53, false), None);
        assert_eq!(evaluate(&t, false, ip("192.0.2.53"), 8050, true), Some(0));
        assert_eq!(evaluate(&t, false, ip("192.0.2.53"), 8101, true), None);
    }

    #[test]
    fn allow_list_mode() {
        let mut a = rule("registry", &[("203.0.113.0", 24)], &[(443, 443)]);
        a.allow = true;
        let d = rule("except-one", &[("203.0.113.66", 32)], &[]);
        let plan = NetPlan::new(vec![a, d], true).unwrap();
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, true, ip("203.0.113.5"), 443, false), None);
        assert_eq!(
            evaluate(&t, true, ip("203.0.113.5"), 80, false),
            Some(agent_sandbox_common::NET_RULE_DEFAULT)
        );
        assert_eq!(evaluate(&t, true, ip("203.0.113.66"), 443, false), Some(1));
        assert_eq!(
            evaluate(&t, true, ip("2001:db8::1"), 443, false),
            Some(agent_sandbox_common::NET_RULE_DEFAULT)
        );
    }

    #[test]
    fn ipv6_rule_over_the_mapped_range_covers_ipv4() {
        let plan = NetPlan::new(vec![rule("all-v6", &[("::", 0)], &[(25, 25)])], false).unwrap();
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("198.51.100.1"), 25, false), Some(0));
        assert_eq!(evaluate(&t, false, ip("2001:db8::1"), 25, false), Some(0));
        let plan = NetPlan::new(
            vec![rule("mapped", &[("::ffff:198.51.100.0", 120)], &[])],
            false,
        )
        .unwrap();
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("198.51.100.7"), 1, false), Some(0));
        assert_eq!(evaluate(&t, false, ip("198.51.101.7"), 1, false), None);
    }

    /// Names are looked up in parallel and the start does not wait past the limit for a
    /// resolver that does not answer: the slow name is reported, the others are in the tables.
    #[test]
    fn an_unanswered_name_does_not_hold_the_others() {
        let mut slow = rule("slow", &[], &[(5432, 5432)]);
        slow.hosts = vec![Host::Exact("slow.prod.example".into())];
        let mut fast = rule("fast", &[], &[(443, 443)]);
        fast.hosts = vec![
            Host::Exact("a.prod.example".into()),
            Host::Exact("b.prod.example".into()),
        ];
        let mut plan = NetPlan::new(vec![slow, fast], false).unwrap();
        let (changed, failed) = plan.resolve_parallel(Duration::from_millis(300), |name| {
            match name {
                // A resolver that answers long after the limit (a dead DNS server).
                "slow.prod.example" => {
                    std::thread::sleep(Duration::from_secs(3));
                    Ok(vec![ip("192.0.2.99")])
                }
                "a.prod.example" => Ok(vec![ip("192.0.2.1")]),
                _ => Ok(vec![ip("192.0.2.2")]),
            }
        });
        assert!(changed);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].host, "slow.prod.example");
        assert_eq!(failed[0].error, "no answer within 300 ms");
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("192.0.2.1"), 443, false), Some(1));
        assert_eq!(evaluate(&t, false, ip("192.0.2.2"), 443, false), Some(1));
        assert_eq!(evaluate(&t, false, ip("192.0.2.99"), 5432, false), None);
    }

    #[test]
    fn hosts_and_wildcards_use_resolved_names() {
        let mut exact = rule("db", &[], &[(5432, 5432)]);
        exact.hosts = vec![Host::Exact("db.prod.example".into())];
        let mut wild = rule("all-prod", &[], &[(443, 443)]);
        wild.hosts = vec![
            Host::Wildcard("prod.example".into()),
            Host::Exact("api.prod.example".into()),
        ];
        let mut plan = NetPlan::new(vec![exact, wild], false).unwrap();
        let (changed, failed) = plan.resolve_with(|name| match name {
            "db.prod.example" => Ok(vec![ip("192.0.2.10"), ip("2001:db8::10")]),
            "api.prod.example" => Err("NXDOMAIN".into()),
            _ => Ok(vec![]),
        });
        assert!(changed);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].host, "api.prod.example");
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("192.0.2.10"), 5432, false), Some(0));
        assert_eq!(
            evaluate(&t, false, ip("2001:db8::10"), 5432, false),
            Some(0)
        );
        // The wildcard covers db.prod.example too, on its own ports.
        assert_eq!(evaluate(&t, false, ip("192.0.2.10"), 443, false), Some(1));
        // Re-resolving to a new address keeps the old one blocked.
        let (changed, _) = plan.resolve_with(|name| match name {
            "db.prod.example" => Ok(vec![ip("192.0.2.11")]),
            _ => Err("NXDOMAIN".into()),
        });
        assert!(changed);
        let t = plan.tables().unwrap();
        assert_eq!(evaluate(&t, false, ip("192.0.2.10"), 5432, false), Some(0));
        assert_eq!(evaluate(&t, false, ip("192.0.2.11"), 5432, false), Some(0));
    }

    #[test]
    fn wildcard_matching() {
        let w = Host::Wildcard("example.com".into());
        assert!(w.matches("a.example.com"));
        assert!(w.matches("A.B.Example.COM."));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("badexample.com"));
    }

    #[test]
    fn too_many_entries_is_an_error_not_a_dropped_rule() {
        let ports: Vec<(u16, u16)> = (1..=20).map(|p| (p, p)).collect();
        let plan = NetPlan::new(vec![rule("many", &[("192.0.2.0", 24)], &ports)], false).unwrap();
        let err = plan.tables().unwrap_err().to_string();
        assert!(
            err.contains("many") && err.contains("192.0.2.0/24"),
            "{err}"
        );
    }
}
