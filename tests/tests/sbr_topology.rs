//! The §5 topology: a client behind net1's router cannot reach the pod's net1 address without
//! source-based routing (the replies leave by eth0 and r0's rp_filter drops them); with eBPF SBR the
//! replies leave by net1, as with Debian's sbr. Which interface carried them is asserted with the
//! programs' counters and with the routers' link statistics.

use multus::sbr::AttachMode;
use testkit::{
    cni::debian_sbr,
    sbr::{tc_leftovers, Harness},
    topo::{Sbr5, CLI2_V4, CLI2_V6, NET1_IPS, POD_NET1_V4, POD_NET1_V6},
};

const PINGS: u32 = 5;

/// Pings `dst` from cli2 and returns (replies, r0 rx delta, r1 rx delta).
fn ping_from_cli2(t: &Sbr5, dst: &str) -> (u32, u64, u64) {
    let (r0, r1) = t.router_rx();
    let got = t.cli2.ping(dst, PINGS, &[]);
    let (r0b, r1b) = t.router_rx();
    (got, r0b - r0, r1b - r1)
}

fn replies_leave_by_net1(dst: &str, mode: AttachMode) {
    let t = Sbr5::new();
    let (got, _, _) = ping_from_cli2(&t, dst);
    assert_eq!(
        got, 0,
        "without SBR the replies must be lost (they leave by eth0)"
    );

    let h = Harness::with_mode(mode);
    h.add(&t.pod, &t.net1_spec());
    // `auto` (the default) attaches netlink tc filters: a filter on net1, no pinned TCX link.
    let link_pins = h
        .bpffs
        .entries()
        .into_iter()
        .filter(|p| p.contains("link-if-"))
        .count();
    let filters = !tc_leftovers(&t.pod, "net1").is_empty();
    assert_eq!(
        (filters, link_pins),
        if mode == AttachMode::Tcx {
            (false, 2)
        } else {
            (true, 0)
        },
        "{mode}: (net1 has a tc filter, TCX link pins)"
    );
    let carrier_before = h.counters(&t.pod, multus::sbr::CARRIER_IFNAME);
    let net1_before = h.counters(&t.pod, "net1");
    let eth0_before = h.counters(&t.pod, "eth0");

    let (got, r0_rx, r1_rx) = ping_from_cli2(&t, dst);
    assert_eq!(
        got, PINGS,
        "with eBPF SBR every ping to {dst} must be answered"
    );
    assert!(
        r1_rx >= u64::from(PINGS),
        "r1 must receive the {PINGS} replies, got {r1_rx} packets"
    );
    assert!(
        r0_rx < u64::from(PINGS),
        "r0 must not receive the replies, got {r0_rx} packets"
    );

    let carrier = h.counters(&t.pod, multus::sbr::CARRIER_IFNAME);
    let net1 = h.counters(&t.pod, "net1");
    let eth0 = h.counters(&t.pod, "eth0");
    assert!(
        carrier.redirected - carrier_before.redirected >= u64::from(PINGS),
        "carrier redirected: {carrier:?}"
    );
    assert!(
        carrier.matched - carrier_before.matched >= u64::from(PINGS),
        "carrier matched: {carrier:?}"
    );
    assert!(
        net1.redirected_in - net1_before.redirected_in >= u64::from(PINGS),
        "net1 redirected_in: {net1:?}"
    );
    assert_eq!(
        eth0.redirected_in, eth0_before.redirected_in,
        "nothing may be sent to eth0: {eth0:?}"
    );
    assert_eq!(carrier.dropped(), 0, "carrier drops: {carrier:?}");
    h.check(&t.pod, &t.net1_spec())
        .unwrap_or_else(|e| panic!("check after add: {e}"));
    h.del(&t.pod, "net1");
    let (got, _, _) = ping_from_cli2(&t, dst);
    assert_eq!(got, 0, "after DEL the pod is as before");
}

#[test]
fn ipv4_replies_leave_by_net1() {
    replies_leave_by_net1(POD_NET1_V4, AttachMode::Auto);
}

#[test]
fn ipv6_replies_leave_by_net1() {
    replies_leave_by_net1(POD_NET1_V6, AttachMode::Auto);
}

/// The same with the programs attached as TCX links (`auto` means netlink tc filters).
#[test]
fn replies_leave_by_net1_tcx_mode() {
    replies_leave_by_net1(POD_NET1_V4, AttachMode::Tcx);
    replies_leave_by_net1(POD_NET1_V6, AttachMode::Tcx);
}

/// Debian's sbr on the same topology, for comparison: it works too, by moving net1's routes into
/// table 100 and adding policy rules (which eBPF SBR does not).
#[test]
fn debian_sbr_on_the_same_topology() {
    let t = Sbr5::new();
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 0);
    let ips = NET1_IPS;
    debian_sbr("ADD", t.pod.path(), "net1", &ips);
    for dst in [POD_NET1_V4, POD_NET1_V6] {
        let (got, r0_rx, r1_rx) = ping_from_cli2(&t, dst);
        assert_eq!(got, PINGS, "sbr answers {dst}");
        assert!(
            r1_rx >= u64::from(PINGS) && r0_rx < u64::from(PINGS),
            "sbr replies by net1 ({r0_rx}/{r1_rx})"
        );
    }
    let rules = t.pod.rules().join("\n");
    assert!(
        rules.contains("from 10.1.0.2 lookup 100"),
        "sbr adds policy rules: {rules}"
    );
    let main = String::from_utf8_lossy(&t.pod.ip(&["route", "show"]).stdout).into_owned();
    assert!(
        !main.contains("10.1.0.0/24"),
        "sbr moves net1's subnet route out of main: {main}"
    );
    debian_sbr("DEL", t.pod.path(), "net1", &ips);
}

/// Pod-initiated traffic: unbound traffic follows the main table (eth0), traffic bound to net1's
/// address leaves by net1, bound to eth0's address by eth0.
#[test]
fn pod_initiated_bound_and_unbound() {
    let t = Sbr5::new();
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    for (dst, net1_src, eth0_src) in [
        (CLI2_V4, POD_NET1_V4, "10.0.0.2"),
        (CLI2_V6, POD_NET1_V6, "fd00::2"),
    ] {
        let (r0, r1) = t.router_rx();
        assert_eq!(t.pod.ping(dst, PINGS, &[]), PINGS, "unbound to {dst}");
        let (r0b, r1b) = t.router_rx();
        assert!(
            r0b - r0 >= u64::from(PINGS) && r1b - r1 < u64::from(PINGS),
            "unbound leaves by eth0"
        );

        let (r0, r1) = t.router_rx();
        assert_eq!(
            t.pod.ping(dst, PINGS, &["-I", net1_src]),
            PINGS,
            "bound to {net1_src}"
        );
        let (r0b, r1b) = t.router_rx();
        assert!(
            r1b - r1 >= u64::from(PINGS) && r0b - r0 < u64::from(PINGS),
            "bound to net1 leaves by net1"
        );

        let (r0, r1) = t.router_rx();
        assert_eq!(
            t.pod.ping(dst, PINGS, &["-I", eth0_src]),
            PINGS,
            "bound to {eth0_src}"
        );
        let (r0b, r1b) = t.router_rx();
        assert!(
            r0b - r0 >= u64::from(PINGS) && r1b - r1 < u64::from(PINGS),
            "bound to eth0 leaves by eth0"
        );
    }
    h.del(&t.pod, "net1");
}
