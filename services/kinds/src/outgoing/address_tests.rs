use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(s: &str) -> Option<Range> {
    classify(ip(s))
}

#[test]
fn each_ipv4_range_is_named() {
    let cases = [
        ("0.0.0.0", Range::Unspecified),
        ("0.1.2.3", Range::Unspecified),
        ("10.0.0.1", Range::Private),
        ("10.255.255.255", Range::Private),
        ("100.64.0.1", Range::SharedCgnat),
        ("100.127.255.254", Range::SharedCgnat),
        ("100.100.100.200", Range::CloudMetadata),
        ("127.0.0.1", Range::Loopback),
        ("127.8.9.10", Range::Loopback),
        ("169.254.169.254", Range::CloudMetadata),
        ("169.254.1.1", Range::LinkLocal),
        ("172.16.0.1", Range::Private),
        ("172.31.255.255", Range::Private),
        ("192.0.0.8", Range::Reserved),
        ("192.0.2.1", Range::Documentation),
        ("192.88.99.1", Range::Reserved),
        ("192.168.1.1", Range::Private),
        ("198.18.0.1", Range::Reserved),
        ("198.19.255.255", Range::Reserved),
        ("198.51.100.7", Range::Documentation),
        ("203.0.113.9", Range::Documentation),
        ("224.0.0.1", Range::Multicast),
        ("239.255.255.250", Range::Multicast),
        ("240.0.0.1", Range::Reserved),
        ("255.255.255.255", Range::Broadcast),
    ];
    for (addr, expected) in cases {
        assert_eq!(range(addr), Some(expected), "{addr}");
    }
}

#[test]
fn each_ipv6_range_is_named() {
    let cases = [
        ("::", Range::Unspecified),
        ("::1", Range::Loopback),
        ("fc00::1", Range::Private),
        ("fd12:3456::1", Range::Private),
        ("fd00:ec2::254", Range::CloudMetadata),
        ("fe80::1", Range::LinkLocal),
        ("febf::1", Range::LinkLocal),
        ("fec0::1", Range::Private),
        ("ff02::1", Range::Multicast),
        ("ff0e::fb", Range::Multicast),
        ("2001:db8::1", Range::Documentation),
        ("3fff::1", Range::Documentation),
        ("2001::1", Range::Reserved),
        ("100::1", Range::Reserved),
        ("64:ff9b:1::1", Range::Private),
    ];
    for (addr, expected) in cases {
        assert_eq!(range(addr), Some(expected), "{addr}");
    }
}

#[test]
fn ipv6_carrying_ipv4_is_judged_by_the_ipv4_address() {
    let cases = [
        ("::ffff:127.0.0.1", Some(Range::Loopback)),
        ("::ffff:10.0.0.1", Some(Range::Private)),
        ("::ffff:169.254.169.254", Some(Range::CloudMetadata)),
        ("::ffff:0.0.0.0", Some(Range::Unspecified)),
        ("::127.0.0.1", Some(Range::Loopback)),
        ("::10.1.2.3", Some(Range::Private)),
        ("64:ff9b::7f00:1", Some(Range::Loopback)),
        ("64:ff9b::192.168.0.1", Some(Range::Private)),
        ("2002:7f00:1::", Some(Range::Loopback)),
        ("2002:a9fe:a9fe::1", Some(Range::CloudMetadata)),
        // Public IPv4 addresses stay public in every IPv6 form.
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::8.8.8.8", None),
        ("2002:808:808::1", None),
    ];
    for (addr, expected) in cases {
        assert_eq!(range(addr), expected, "{addr}");
    }
}

#[test]
fn public_addresses_are_allowed() {
    let policy = AddressPolicy::default();
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.169.0.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001::1",
    ] {
        assert_eq!(range(addr), None, "{addr}");
        assert!(policy.check(ip(addr)).is_ok(), "{addr}");
    }
}

#[test]
fn the_default_policy_refuses_every_non_public_address_with_a_reason() {
    let policy = AddressPolicy::default();
    for addr in [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "100.64.0.1",
    ] {
        let refused = policy.check(ip(addr)).unwrap_err();
        assert!(
            refused.to_string().starts_with(&format!("{addr} is ")),
            "{refused}"
        );
    }
    let loopback = policy.check(ip("127.0.0.1")).unwrap_err().to_string();
    assert_eq!(
        loopback,
        "127.0.0.1 is a loopback address (refused for outgoing calls; allow_private or \
         allow_cidrs of the kind permits it)"
    );
}

#[test]
fn allow_private_opens_private_use_ranges_but_not_metadata_or_multicast() {
    let policy = AddressPolicy {
        allow_private: true,
        allow_cidrs: Vec::new(),
    };
    for addr in [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "fd12::1",
        "fe80::1",
        "100.64.0.1",
    ] {
        assert!(policy.check(ip(addr)).is_ok(), "{addr}");
    }
    for addr in [
        "169.254.169.254",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "255.255.255.255",
    ] {
        let refused = policy.check(ip(addr)).unwrap_err();
        assert!(
            refused.to_string().contains("only an allow_cidrs entry"),
            "{refused}"
        );
    }
}

#[test]
fn allow_cidrs_allows_exactly_its_networks() {
    let policy = AddressPolicy {
        allow_private: false,
        allow_cidrs: vec![
            "127.0.0.0/8".parse().unwrap(),
            "fd00:1::/32".parse().unwrap(),
        ],
    };
    assert!(policy.check(ip("127.0.0.1")).is_ok());
    assert!(policy.check(ip("127.1.2.3")).is_ok());
    assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok(), "mapped form");
    assert!(policy.check(ip("fd00:1::5")).is_ok());
    assert!(policy.check(ip("::1")).is_err(), "not listed");
    assert!(policy.check(ip("10.0.0.1")).is_err(), "not listed");
    assert!(policy.check(ip("169.254.169.254")).is_err(), "not listed");
    let metadata = AddressPolicy {
        allow_private: false,
        allow_cidrs: vec!["169.254.169.254/32".parse().unwrap()],
    };
    assert!(
        metadata.check(ip("169.254.169.254")).is_ok(),
        "explicitly listed"
    );
}
