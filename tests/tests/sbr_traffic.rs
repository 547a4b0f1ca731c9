//! Traffic that source-based routing must leave alone or get right: link-local, a UDP server bound
//! to the wildcard address, ICMP errors, fragments, packets the pod forwards.

use std::{io::ErrorKind, net::SocketAddr};

use testkit::{
    cni::debian_sbr,
    sbr::Harness,
    topo::{link_local, Sbr5, CLI1_V4, NET1_IPS, POD_NET1_V4, POD_NET1_V6, ROUTER_POD_IF},
    traffic::{udp_echo_server, udp_refused, udp_request, UdpReply},
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Link-local traffic on net1 is not routed by source: r1 reaches the pod's link-local address and
/// the pod reaches r1's, with eBPF SBR; Debian's sbr moves fe80::/64 out of the main table.
#[test]
fn link_local_on_net1_untouched() {
    let t = Sbr5::new();
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    let pod_ll = format!("{}%{ROUTER_POD_IF}", t.pod_link_local("net1"));
    let r1_ll = format!("{}%net1", link_local(&t.r1, ROUTER_POD_IF));
    let matched_before = h.counters(&t.pod, "net1").matched;
    assert_eq!(t.r1.ping(&pod_ll, 3, &[]), 3, "r1 -> pod link-local");
    assert_eq!(t.pod.ping(&r1_ll, 3, &[]), 3, "pod -> r1 link-local");
    assert_eq!(
        h.counters(&t.pod, "net1").matched,
        matched_before,
        "link-local sources are never looked up"
    );
    h.del(&t.pod, "net1");

    let t = Sbr5::new();
    debian_sbr("ADD", t.pod.path(), "net1", &NET1_IPS);
    let r1_ll = format!("{}%net1", link_local(&t.r1, ROUTER_POD_IF));
    assert_eq!(
        t.pod.ping(&r1_ll, 2, &[]),
        0,
        "Debian sbr: pod -> r1 link-local fails (fe80::/64 left main)"
    );
}

/// A UDP server bound to the wildcard address. Replying with `sendto`, the kernel picks the source
/// by route (eth0's address, leaving by eth0), exactly as with Debian's sbr; replying from the
/// address the request came to (pktinfo, as DNS servers do), the reply leaves by net1.
#[test]
fn udp_server_bound_to_wildcard() {
    let cases = [
        ("0.0.0.0:7001", "10.1.0.2:7001", "10.0.0.2"),
        ("[::]:7002", "[fd01::2]:7002", "fd00::2"),
    ];
    let t = Sbr5::new();
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    let mut plain = Vec::new();
    for (bind, to, _) in cases {
        let server = udp_echo_server(&t.pod, addr(bind), UdpReply::Plain, 1);
        plain.push(udp_request(&t.cli2, None, addr(to)).map(|a| a.ip().to_string()));
        server.join().expect("server");
    }
    for (bind, to, _) in cases {
        let server = udp_echo_server(&t.pod, addr(bind), UdpReply::PktInfo, 1);
        let from = udp_request(&t.cli2, None, addr(to));
        assert_eq!(
            from,
            Some(addr(to)),
            "a pktinfo reply comes from the address asked, by net1"
        );
        server.join().expect("server");
    }
    h.del(&t.pod, "net1");

    let t = Sbr5::new();
    debian_sbr("ADD", t.pod.path(), "net1", &NET1_IPS);
    for ((bind, to, eth0_addr), ours) in cases.iter().zip(&plain) {
        let server = udp_echo_server(&t.pod, addr(bind), UdpReply::Plain, 1);
        let theirs = udp_request(&t.cli2, None, addr(to)).map(|a| a.ip().to_string());
        server.join().expect("server");
        assert_eq!(ours, &theirs, "plain sendto replies as with Debian sbr");
        assert_eq!(
            ours.as_deref(),
            Some(*eth0_addr),
            "the kernel picks eth0's address"
        );
    }
}

/// ICMP errors the pod sends about traffic to its net1 address (port unreachable) leave by net1.
#[test]
fn icmp_errors_leave_by_net1() {
    let t = Sbr5::new();
    for to in ["10.1.0.2:9", "[fd01::2]:9"] {
        assert_ne!(
            udp_refused(&t.cli2, addr(to)),
            ErrorKind::ConnectionRefused,
            "no ICMP error without SBR"
        );
    }
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    for to in ["10.1.0.2:9", "[fd01::2]:9"] {
        assert_eq!(
            udp_refused(&t.cli2, addr(to)),
            ErrorKind::ConnectionRefused,
            "port unreachable from {to}"
        );
    }
    h.del(&t.pod, "net1");
}

/// Fragmented echo requests and replies (3000 bytes over 1500-byte links).
#[test]
fn fragments() {
    let t = Sbr5::new();
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    for dst in [POD_NET1_V4, POD_NET1_V6] {
        assert_eq!(
            t.cli2.ping(dst, 3, &["-s", "3000"]),
            3,
            "fragmented ping to {dst}"
        );
    }
    h.del(&t.pod, "net1");
}

/// A pod that forwards (ip_forward=1): a packet it routes by its default route crosses the carrier
/// and must still leave the main table's way. Forwarded packets have no socket, so the programs
/// must find the pod from the device's namespace (`bpf_get_netns_cookie(skb)` would answer the
/// initial namespace's cookie and the carrier would drop them for want of a default route).
#[test]
fn forwarded_traffic_follows_the_main_default() {
    fn forwarding(t: &Sbr5) {
        t.pod.sysctl("net.ipv4.ip_forward", "1");
        // cli2 -> cli1 goes through the pod: r1 sends it to net1, the pod forwards it by its default
        // route (eth0, r0). r0 must accept a source from r1's side on its pod-facing link.
        t.r1.ip(&["route", "replace", "172.16.1.0/24", "via", POD_NET1_V4]);
        for conf in ["all", ROUTER_POD_IF] {
            t.r0.sysctl(&format!("net.ipv4.conf.{conf}.rp_filter"), "0");
        }
    }
    let t = Sbr5::new();
    forwarding(&t);
    let (r0_before, _) = t.router_rx();
    assert_eq!(
        t.cli2.ping(CLI1_V4, 3, &[]),
        3,
        "the pod forwards without SBR"
    );
    assert!(t.router_rx().0 - r0_before >= 3, "through eth0");

    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    let carrier_before = h.counters(&t.pod, multus::sbr::CARRIER_IFNAME);
    let (r0_before, _) = t.router_rx();
    assert_eq!(
        t.cli2.ping(CLI1_V4, 3, &[]),
        3,
        "the pod still forwards with eBPF SBR"
    );
    assert!(
        t.router_rx().0 - r0_before >= 3,
        "through eth0, the main default's way"
    );
    let carrier = h.counters(&t.pod, multus::sbr::CARRIER_IFNAME);
    assert!(
        carrier.fallback - carrier_before.fallback >= 3,
        "forwarded packets crossed the carrier: {carrier:?}"
    );
    assert_eq!(carrier.dropped(), carrier_before.dropped(), "{carrier:?}");
    h.del(&t.pod, "net1");

    let t = Sbr5::new();
    forwarding(&t);
    debian_sbr("ADD", t.pod.path(), "net1", &NET1_IPS);
    assert_eq!(
        t.cli2.ping(CLI1_V4, 3, &[]),
        3,
        "the pod forwards with Debian sbr"
    );
}
