//! Which addresses an outgoing call (the `webhook` and `http` handlers) may connect to.
//!
//! A job chooses its webhook's URL, so without this a job could make the worker call what only
//! the worker can reach: the cloud metadata service (credentials), an admin port on loopback, a
//! database on the private network. Everything that is not a public unicast address is refused
//! unless the kind allows it: `allow_private` lifts the private-use ranges (loopback, RFC 1918,
//! unique-local, link-local, CGNAT, documentation and other reserved ranges); the cloud metadata
//! addresses, unspecified, multicast and broadcast addresses stay refused even then, because no
//! webhook lives there; `allow_cidrs` allows exactly the networks it lists, whatever they are.
//!
//! IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by that IPv4
//! address: `::ffff:127.0.0.1` reaches loopback on a dual-stack socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused. The names go into error messages; they are a small fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Unspecified,
    Loopback,
    Private,
    SharedCgnat,
    LinkLocal,
    CloudMetadata,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
}

impl Range {
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Unspecified => "an unspecified address",
            Range::Loopback => "a loopback address",
            Range::Private => "a private address",
            Range::SharedCgnat => "a carrier-grade NAT address",
            Range::LinkLocal => "a link-local address",
            Range::CloudMetadata => "the cloud metadata service",
            Range::Multicast => "a multicast address",
            Range::Broadcast => "the broadcast address",
            Range::Documentation => "a documentation address",
            Range::Reserved => "a reserved address",
        }
    }

    /// Ranges `allow_private` opens. The others are never a webhook's home: reaching them needs
    /// an explicit `allow_cidrs` entry.
    fn is_private_use(self) -> bool {
        !matches!(
            self,
            Range::Unspecified | Range::CloudMetadata | Range::Multicast | Range::Broadcast
        )
    }
}

/// The range a non-public address belongs to; `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, d] = ip.octets();
    let range = match (a, b, c) {
        _ if ip == Ipv4Addr::BROADCAST => Range::Broadcast,
        // 169.254.169.254 (AWS, GCP, Azure, OpenStack), and Alibaba's 100.100.100.200.
        _ if (a, b, c, d) == (169, 254, 169, 254) || (a, b, c, d) == (100, 100, 100, 200) => {
            Range::CloudMetadata
        }
        (0, _, _) => Range::Unspecified,
        (10, _, _) => Range::Private,
        (100, 64..=127, _) => Range::SharedCgnat,
        (127, _, _) => Range::Loopback,
        (169, 254, _) => Range::LinkLocal,
        (172, 16..=31, _) => Range::Private,
        // IETF protocol assignments (192.0.0.0/24) and the 6to4 relay anycast (192.88.99.0/24).
        (192, 0, 0) | (192, 88, 99) => Range::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Range::Documentation,
        (192, 168, _) => Range::Private,
        // Benchmarking, 198.18.0.0/15.
        (198, 18 | 19, _) => Range::Reserved,
        (224..=239, _, _) => Range::Multicast,
        (240..=255, _, _) => Range::Reserved,
        _ => return None,
    };
    Some(range)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    if ip.is_unspecified() {
        return Some(Range::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Range::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let range = match s[0] {
        // AWS's IPv6 metadata endpoint, inside the unique-local range.
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => Range::CloudMetadata,
        0xfc00..=0xfdff => Range::Private,
        // Link-local fe80::/10; the deprecated site-local fec0::/10 was private use.
        0xfe80..=0xfebf => Range::LinkLocal,
        0xfec0..=0xfeff => Range::Private,
        0xff00..=0xffff => Range::Multicast,
        0x2001 if s[1] == 0x0db8 => Range::Documentation,
        // IETF protocol assignments 2001::/23 (Teredo among them, whose IPv4 is obfuscated).
        0x2001 if s[1] < 0x0200 => Range::Reserved,
        // The local-use NAT64 prefix 64:ff9b:1::/48 (the well-known /96 is handled above).
        0x0064 if s[1] == 0xff9b => Range::Private,
        // The rest of ::/8 (IPv4-compatible handled above) and 100::/8 (the discard prefix).
        0x0000..=0x01ff => Range::Reserved,
        0x3fff if s[1] < 0x1000 => Range::Documentation,
        _ => return None,
    };
    Some(range)
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible
/// (`::/96`, deprecated but still routed by some stacks), NAT64's well-known prefix
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`, the IPv4 address in bits 16–47).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// A kind's rule for where its calls may go: `allow_private` and `allow_cidrs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_private: bool,
    pub allow_cidrs: Vec<IpNet>,
}

/// An address the policy refuses, and why: the error a job is dead-lettered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is {} (refused for outgoing calls; {hint})", range.as_str())]
pub struct Refused {
    pub ip: IpAddr,
    pub range: Range,
    hint: &'static str,
}

impl AddressPolicy {
    /// Ok for an address the kind may call.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(range) = classify(ip) else {
            return Ok(());
        };
        let mapped = canonical(ip);
        if self
            .allow_cidrs
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&mapped))
        {
            return Ok(());
        }
        if self.allow_private && range.is_private_use() {
            return Ok(());
        }
        let hint = if range.is_private_use() {
            "allow_private or allow_cidrs of the kind permits it"
        } else {
            "only an allow_cidrs entry of the kind permits it"
        };
        Err(Refused { ip, range, hint })
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address, so `allow_cidrs = ["127.0.0.0/8"]` also
/// allows `::ffff:127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
