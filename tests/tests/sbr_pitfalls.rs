//! The cases where a naive tc-egress redirect fails (docs/sbr-design.md §5): the eth0
//! gateway unresolvable, no default route, MTU mismatch between interfaces, and rp_filter in the pod.
//! Each fails without SBR and passes with eBPF SBR; Debian's sbr runs the same case for comparison.

use std::net::SocketAddr;

use testkit::{
    cni::debian_sbr,
    sbr::Harness,
    topo::{Options, Sbr5, CLI2_V4, CLI2_V6, NET1_IPS, POD_NET1_V4, POD_NET1_V6},
    traffic::tcp_transfer,
};

fn cli2_reaches_net1(t: &Sbr5) -> (u32, u32) {
    (
        t.cli2.ping(POD_NET1_V4, 3, &[]),
        t.cli2.ping(POD_NET1_V6, 3, &[]),
    )
}

/// The pod's default gateway does not answer ARP/ND: a program on eth0's egress would never see
/// the replies (they wait for neighbour resolution); the carrier sees them first.
#[test]
fn eth0_gateway_unresolvable() {
    let o = Options {
        eth0_gateway_unresolvable: true,
        ..Options::default()
    };
    let t = Sbr5::with(o.clone());
    assert_eq!(cli2_reaches_net1(&t), (0, 0), "fails without SBR");
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    assert_eq!(cli2_reaches_net1(&t), (3, 3), "eBPF SBR answers by net1");
    h.del(&t.pod, "net1");

    let t = Sbr5::with(o);
    debian_sbr("ADD", t.pod.path(), "net1", &NET1_IPS);
    assert_eq!(cli2_reaches_net1(&t), (3, 3), "Debian sbr answers by net1");
}

/// No default route in the pod: without SBR the replies fail with "network unreachable" before any
/// program could see them. eBPF SBR routes them by net1's gateway (known from prevResult), while
/// unbound IPv4 traffic still fails immediately as before.
#[test]
fn no_default_route() {
    let o = Options {
        default_route: false,
        ..Options::default()
    };
    let t = Sbr5::with(o.clone());
    assert_eq!(cli2_reaches_net1(&t), (0, 0), "fails without SBR");
    assert_eq!(t.pod.ping(CLI2_V4, 1, &[]), 0, "unbound IPv4 has no route");
    let h = Harness::new();
    let report = h.add(&t.pod, &t.net1_spec());
    assert!(
        report
            .carrier_routes
            .iter()
            .filter(|r| r.dst.is_ipv4())
            .all(|r| r.prefsrc == Some("127.0.0.1".parse().unwrap())),
        "without a default route unbound IPv4 gets the loopback source and fails: {:?}",
        report.carrier_routes
    );
    assert_eq!(cli2_reaches_net1(&t), (3, 3), "eBPF SBR answers by net1");
    assert_eq!(
        t.pod.ping(CLI2_V4, 3, &["-I", POD_NET1_V4]),
        3,
        "bound to net1 works"
    );
    assert_eq!(
        t.pod.ping(CLI2_V6, 3, &["-I", POD_NET1_V6]),
        3,
        "bound to net1 works (IPv6)"
    );
    let out = t.pod.exec("ping", &["-c", "1", "-W", "1", CLI2_V4]);
    assert!(!out.status.success(), "unbound IPv4 still fails");
    let unbound_v6 = t.pod.ping(CLI2_V6, 2, &[]);
    h.del(&t.pod, "net1");

    let t = Sbr5::with(o);
    debian_sbr("ADD", t.pod.path(), "net1", &NET1_IPS);
    assert_eq!(cli2_reaches_net1(&t), (3, 3), "Debian sbr answers by net1");
    assert_eq!(
        t.pod.ping(CLI2_V4, 1, &[]),
        0,
        "Debian sbr: unbound IPv4 fails"
    );
    // IPv6 retries an unbound lookup with a selected source, through the rule or the source-specific route alike.
    assert_eq!(
        t.pod.ping(CLI2_V6, 2, &[]),
        unbound_v6,
        "unbound IPv6 behaves as with Debian sbr"
    );
}

/// net1 has MTU 1400, eth0 1500: replies leaving by net1 must be sized for net1 (pitfall 4 measured
/// 39.6 Mbit/s for a redirect without this).
#[test]
fn mtu_mismatch_tcp_transfer() {
    let t = Sbr5::with(Options {
        net1_mtu: 1400,
        ..Options::default()
    });
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    let mtu = t
        .pod
        .ip(&["-j", "link", "show", "dev", multus::sbr::CARRIER_IFNAME]);
    let v: serde_json::Value = serde_json::from_slice(&mtu.stdout).expect("json");
    assert_eq!(
        v[0]["mtu"], 1400,
        "the carrier takes the smallest MTU of the interfaces it serves"
    );
    for (listen, connect) in [
        ("0.0.0.0:5001", "10.1.0.2:5001"),
        ("[::]:5002", "[fd01::2]:5002"),
    ] {
        let listen: SocketAddr = listen.parse().expect("addr");
        let connect: SocketAddr = connect.parse().expect("addr");
        let mbit = tcp_transfer(&t.pod, listen, &t.cli2, connect, 64 << 20)
            .unwrap_or_else(|| panic!("TCP transfer to {connect} failed"));
        assert!(
            mbit > 1000.0,
            "TCP from the pod over net1 at {mbit:.0} Mbit/s: full-size segments are being lost"
        );
    }
    let net1 = h.counters(&t.pod, "net1");
    assert_eq!(net1.dropped(), 0, "{net1:?}");
}

fn rp_filter(t: &Sbr5, ifname: &str) -> String {
    t.pod
        .read_sysctl(&format!("net.ipv4.conf.{ifname}.rp_filter"))
}

/// Strict rp_filter in the pod: the reverse path of a net1 client now points at the carrier, so SBR
/// makes the interfaces loose (only where the effective value is strict) and restores them on DEL.
#[test]
fn pod_rp_filter_strict() {
    let t = Sbr5::with(Options {
        pod_rp_filter: Some(1),
        ..Options::default()
    });
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 0, "fails without SBR");
    let before = (rp_filter(&t, "eth0"), rp_filter(&t, "net1"));
    assert_eq!(before, ("1".to_string(), "1".to_string()));
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    assert_eq!(
        t.cli2.ping(POD_NET1_V4, 3, &[]),
        3,
        "eBPF SBR answers with strict rp_filter"
    );
    assert_eq!(t.cli1.ping("10.0.0.2", 3, &[]), 3, "eth0 still answers");
    assert_eq!(
        (rp_filter(&t, "eth0"), rp_filter(&t, "net1")),
        ("2".into(), "2".into()),
        "loose while SBR runs"
    );
    assert_eq!(
        t.pod.read_sysctl("net.ipv4.conf.all.rp_filter"),
        "1",
        "all is left alone"
    );
    let info = multus::sbr::inspect(&h.cfg, &h.container_id).expect("inspect");
    assert!(
        info.interfaces.iter().all(|i| i.rp_filter_orig == Some(1)),
        "{:?}",
        info.interfaces
    );
    h.check(&t.pod, &t.net1_spec())
        .unwrap_or_else(|e| panic!("check: {e}"));
    h.del(&t.pod, "net1");
    assert_eq!(
        (rp_filter(&t, "eth0"), rp_filter(&t, "net1")),
        before,
        "restored by DEL"
    );

    let t = Sbr5::with(Options {
        pod_rp_filter: Some(1),
        ..Options::default()
    });
    debian_sbr("ADD", t.pod.path(), "net1", &NET1_IPS);
    assert_eq!(
        t.cli2.ping(POD_NET1_V4, 3, &[]),
        3,
        "Debian sbr answers with strict rp_filter"
    );
}

/// Loose rp_filter in the pod: nothing to change.
#[test]
fn pod_rp_filter_loose() {
    let t = Sbr5::with(Options {
        pod_rp_filter: Some(2),
        ..Options::default()
    });
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    assert_eq!(t.cli2.ping(POD_NET1_V4, 3, &[]), 3);
    let info = multus::sbr::inspect(&h.cfg, &h.container_id).expect("inspect");
    assert!(
        info.interfaces.iter().all(|i| i.rp_filter_orig.is_none()),
        "nothing recorded: {:?}",
        info.interfaces
    );
    assert_eq!(
        (rp_filter(&t, "eth0"), rp_filter(&t, "net1")),
        ("2".into(), "2".into())
    );
    h.del(&t.pod, "net1");
    assert_eq!(
        (rp_filter(&t, "eth0"), rp_filter(&t, "net1")),
        ("2".into(), "2".into())
    );
}
