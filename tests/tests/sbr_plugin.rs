//! The `ebpf-sbr` CNI plugin as a real process, chained after Debian's bridge, ptp or macvlan in a
//! conflist (run like libcni runs it) on the §5 topology. Every case runs three times on a fresh
//! topology: without SBR (it must fail), with `ebpf-sbr` (it must pass, and CHECK of the whole chain
//! must pass), and with Debian's sbr (for comparison; it passes too). The library-level versions
//! are in sbr_topology.rs and sbr_pitfalls.rs.

use std::net::SocketAddr;

use testkit::{
    sbrplugin::{Mode, PluginPod},
    topo::{Net1, Options, CLI1_V4, POD_ETH0_V4, POD_NET1_V4, POD_NET1_V6},
    traffic::tcp_transfer,
};

const PINGS: u32 = 3;

/// Runs `probe` on a fresh pod for each mode: false without SBR, true with `ebpf-sbr` and Debian's
/// sbr. With `ebpf-sbr`, CHECK of the chain passes and DEL leaves nothing.
fn case(net1: Net1, o: Options, what: &str, probe: impl Fn(&PluginPod) -> bool) {
    for mode in Mode::ALL {
        let mut p = PluginPod::new(net1, mode, o.clone());
        let ok = probe(&p);
        let expected = mode != Mode::None;
        assert_eq!(
            ok,
            expected,
            "{what} over {net1:?} with {mode:?}: expected {}",
            if expected { "success" } else { "failure" }
        );
        if mode == Mode::Ebpf {
            p.check()
                .unwrap_or_else(|f| panic!("CHECK of {} failed: {}", f.plugin, f.out.stdout));
        }
        p.del();
    }
}

/// Every ping from cli2 to the address is answered, and the replies came through r1, not r0.
fn replies_by_net1(p: &PluginPod, dst: &str) -> bool {
    let (got, r0_rx, r1_rx) = p.ping_from_cli2(dst, PINGS);
    if got == PINGS {
        assert!(
            r1_rx >= u64::from(PINGS),
            "{:?}: r1 must receive the replies to {dst} ({r1_rx} packets)",
            p.mode
        );
        assert!(
            r0_rx < u64::from(PINGS),
            "{:?}: r0 must not receive the replies to {dst} ({r0_rx} packets)",
            p.mode
        );
    }
    got == PINGS
}

fn both_families(p: &PluginPod) -> bool {
    let v4 = replies_by_net1(p, POD_NET1_V4);
    let v6 = replies_by_net1(p, POD_NET1_V6);
    assert_eq!(v4, v6, "{:?}: IPv4 and IPv6 disagree", p.mode);
    v4
}

#[test]
fn replies_leave_by_net1_after_bridge() {
    case(
        Net1::Bridge,
        Options::default(),
        "IPv4 and IPv6 replies",
        both_families,
    );
}

#[test]
fn replies_leave_by_net1_after_ptp() {
    case(
        Net1::Ptp,
        Options::default(),
        "IPv4 and IPv6 replies",
        both_families,
    );
}

#[test]
fn replies_leave_by_net1_after_macvlan() {
    case(
        Net1::Macvlan,
        Options::default(),
        "IPv4 and IPv6 replies",
        both_families,
    );
}

#[test]
fn eth0_gateway_unresolvable() {
    let o = Options {
        eth0_gateway_unresolvable: true,
        ..Options::default()
    };
    case(
        Net1::Macvlan,
        o,
        "replies with eth0's gateway unresolvable",
        both_families,
    );
}

#[test]
fn no_default_route() {
    let o = Options {
        default_route: false,
        ..Options::default()
    };
    case(
        Net1::Ptp,
        o,
        "replies without a default route",
        both_families,
    );
}

/// net1 (made by bridge with MTU 1400) is smaller than eth0: 64 MiB over TCP from the pod to cli2,
/// IPv4 and IPv6, at more than 1 Gbit/s (a redirect that ignores the MTU got 40 Mbit/s).
#[test]
fn mtu_mismatch() {
    let o = Options {
        net1_mtu: 1400,
        ..Options::default()
    };
    case(
        Net1::Bridge,
        o,
        "TCP from the pod over net1 with MTU 1400",
        |p| {
            [
                ("0.0.0.0:5001", "10.1.0.2:5001"),
                ("[::]:5002", "[fd01::2]:5002"),
            ]
            .iter()
            .all(|(l, c)| {
                let (l, c): (SocketAddr, SocketAddr) =
                    (l.parse().expect("addr"), c.parse().expect("addr"));
                match tcp_transfer(&p.t.pod, l, &p.t.cli2, c, 64 << 20) {
                    Some(mbit) => {
                        assert!(
                            mbit > 1000.0,
                            "{:?}: {mbit:.0} Mbit/s to {c}: full-size segments are lost",
                            p.mode
                        );
                        true
                    }
                    None => false,
                }
            })
        },
    );
}

fn ipv4_and_eth0(p: &PluginPod) -> bool {
    let ok = replies_by_net1(p, POD_NET1_V4);
    assert_eq!(
        p.t.cli1.ping(POD_ETH0_V4, PINGS, &[]),
        PINGS,
        "{:?}: eth0 answers",
        p.mode
    );
    ok
}

#[test]
fn pod_rp_filter_strict() {
    let o = Options {
        pod_rp_filter: Some(1),
        ..Options::default()
    };
    case(
        Net1::Bridge,
        o,
        "IPv4 replies with rp_filter 1 in the pod",
        ipv4_and_eth0,
    );
}

#[test]
fn pod_rp_filter_loose() {
    let o = Options {
        pod_rp_filter: Some(2),
        ..Options::default()
    };
    case(
        Net1::Macvlan,
        o,
        "IPv4 replies with rp_filter 2 in the pod",
        ipv4_and_eth0,
    );
}

/// CHECK of `bridge` then `ebpf-sbr` passes (the delegate's routes are untouched); with Debian's
/// sbr, bridge's own CHECK fails because sbr moved its routes out of the main table.
#[test]
fn check_of_the_chain() {
    let mut p = PluginPod::new(Net1::Bridge, Mode::Ebpf, Options::default());
    p.check()
        .unwrap_or_else(|f| panic!("CHECK of {} failed: {}", f.plugin, f.out.stdout));
    p.del();

    let mut p = PluginPod::new(Net1::Bridge, Mode::Debian, Options::default());
    let failed = p
        .check()
        .expect_err("Debian's sbr breaks the CHECK of the chain");
    assert_eq!(
        failed.plugin, "bridge",
        "it is bridge's CHECK that fails: {}",
        failed.out.stdout
    );
    p.del();
    // Unbound traffic from the pod still leaves by eth0 with ebpf-sbr (checked with the library in
    // sbr_topology.rs); here: the primary path keeps working.
    let p = PluginPod::new(Net1::Bridge, Mode::Ebpf, Options::default());
    assert_eq!(p.t.pod.ping(CLI1_V4, PINGS, &[]), PINGS);
}
