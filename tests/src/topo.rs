//! The source-based-routing test topology (the "§5 topology" of docs/sbr-design.md §9), in fresh namespaces:
//!
//! ```text
//! cli1 172.16.1.2 fd10:1::2 -- r0 (172.16.1.1 | 10.0.0.1, fd00::1) -- pod eth0 10.0.0.2/24, fd00::2/64
//! cli2 172.16.2.2 fd10:2::2 -- r1 (172.16.2.1 | 10.1.0.1, fd01::1) -- pod net1 10.1.0.2/24, fd01::2/64
//! r0 -- core 192.168.255.0/30, fdff::/64 -- r1 (static routes both ways); r0 has rp_filter=1 and
//! drops IPv6 from net1's subnet arriving from the pod (anti-spoofing)
//! pod: default routes via eth0; net1 has only its subnet route (the state the main plugins leave)
//! ```
//! Without source-based routing, cli2 cannot reach the pod's net1 address: the replies leave by
//! eth0 and r0's rp_filter drops them. Interface names are the same in every instance (they live in
//! the instance's own namespaces); namespace names are unique.

use crate::netns::Netns;

/// The pod's eth0 address.
pub const POD_ETH0_V4: &str = "10.0.0.2";
/// The pod's eth0 IPv6 address.
pub const POD_ETH0_V6: &str = "fd00::2";
/// The pod's net1 address.
pub const POD_NET1_V4: &str = "10.1.0.2";
/// The pod's net1 IPv6 address.
pub const POD_NET1_V6: &str = "fd01::2";
/// net1's gateway (r1).
pub const NET1_GW_V4: &str = "10.1.0.1";
/// net1's IPv6 gateway (r1).
pub const NET1_GW_V6: &str = "fd01::1";
/// eth0's gateway (r0).
pub const ETH0_GW_V4: &str = "10.0.0.1";
/// eth0's IPv6 gateway (r0).
pub const ETH0_GW_V6: &str = "fd00::1";
/// Client behind r0.
pub const CLI1_V4: &str = "172.16.1.2";
/// Client behind r0, IPv6.
pub const CLI1_V6: &str = "fd10:1::2";
/// Client behind r1.
pub const CLI2_V4: &str = "172.16.2.2";
/// Client behind r1, IPv6.
pub const CLI2_V6: &str = "fd10:2::2";
/// Name of the router-side veth facing the pod, in r0 and in r1.
pub const ROUTER_POD_IF: &str = "pod";

/// Who makes the pod's net1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Net1 {
    /// The topology: a veth pair to r1 with the addresses set by hand.
    #[default]
    Veth,
    /// Nothing yet: Debian's `bridge` plugin, run in r1, makes it (bridge `pod` with the gateways).
    Bridge,
    /// Nothing yet: Debian's `ptp` plugin, run in r1, makes it (the host side gets the gateways).
    Ptp,
    /// Debian's `macvlan` plugin, run in r1, makes it on r1's `mvl` (a veth whose peer `mvlp` stays
    /// in r1); r1 answers on its own macvlan `pod` of the same master.
    Macvlan,
}

/// Name of the macvlan master in r1 ([`Net1::Macvlan`]).
pub const MACVLAN_MASTER: &str = "mvl";

/// Variations of the topology.
#[derive(Clone, Debug)]
pub struct Options {
    /// MTU of the pod's net1 and r1's side of it.
    pub net1_mtu: u32,
    /// Default routes in the pod (via eth0).
    pub default_route: bool,
    /// r0 does not own the eth0 gateway addresses: the pod cannot resolve its default gateway.
    pub eth0_gateway_unresolvable: bool,
    /// `net.ipv4.conf.all.rp_filter` in the pod, if set.
    pub pod_rp_filter: Option<u32>,
    /// Who makes net1 (a CNI plugin run in r1 makes it after the topology is built).
    pub net1: Net1,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            net1_mtu: 1500,
            default_route: true,
            eth0_gateway_unresolvable: false,
            pod_rp_filter: None,
            net1: Net1::Veth,
        }
    }
}

/// One instance of the topology.
pub struct Sbr5 {
    /// Client behind r0.
    pub cli1: Netns,
    /// Client behind r1.
    pub cli2: Netns,
    /// Router of the pod's eth0 network (rp_filter 1).
    pub r0: Netns,
    /// Router of the pod's net1 network.
    pub r1: Netns,
    /// The pod.
    pub pod: Netns,
}

fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str, mtu: u32) {
    let mtu = mtu.to_string();
    crate::netns::run(
        "ip",
        &[
            "link",
            "add",
            a_if,
            "mtu",
            &mtu,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "mtu",
            &mtu,
            "netns",
            b.name(),
        ],
    );
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

fn addr(ns: &Netns, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        ns.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
    } else {
        ns.ip(&["addr", "add", cidr, "dev", dev]);
    }
}

impl Sbr5 {
    /// Builds the topology with default options.
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    /// Builds the topology.
    pub fn with(o: Options) -> Self {
        let t = Sbr5 {
            cli1: Netns::new("c1-"),
            cli2: Netns::new("c2-"),
            r0: Netns::new("r0-"),
            r1: Netns::new("r1-"),
            pod: Netns::new("pod-"),
        };
        for ns in [&t.cli1, &t.cli2, &t.r0, &t.r1, &t.pod] {
            // Link-local addresses usable at once (no DAD wait) on every link made from now on.
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        }
        if let Some(v) = o.pod_rp_filter {
            t.pod.sysctl("net.ipv4.conf.all.rp_filter", &v.to_string());
            t.pod
                .sysctl("net.ipv4.conf.default.rp_filter", &v.to_string());
        }
        veth(&t.cli1, "eth0", &t.r0, "c1", 1500);
        veth(&t.cli2, "eth0", &t.r1, "c2", 1500);
        veth(&t.r0, "core", &t.r1, "core", 1500);
        veth(&t.pod, "eth0", &t.r0, ROUTER_POD_IF, 1500);
        match o.net1 {
            Net1::Veth => veth(&t.pod, "net1", &t.r1, ROUTER_POD_IF, o.net1_mtu),
            Net1::Bridge | Net1::Ptp => {}
            Net1::Macvlan => {
                let mtu = o.net1_mtu.to_string();
                t.r1.ip(&[
                    "link",
                    "add",
                    MACVLAN_MASTER,
                    "mtu",
                    &mtu,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "mvlp",
                    "mtu",
                    &mtu,
                ]);
                t.r1.ip(&["link", "set", "mvlp", "up"]);
                t.r1.ip(&["link", "set", MACVLAN_MASTER, "up"]);
                t.r1.ip(&[
                    "link",
                    "add",
                    ROUTER_POD_IF,
                    "link",
                    MACVLAN_MASTER,
                    "type",
                    "macvlan",
                    "mode",
                    "bridge",
                ]);
                t.r1.ip(&["link", "set", ROUTER_POD_IF, "up"]);
            }
        }

        addr(&t.cli1, "eth0", "172.16.1.2/24");
        addr(&t.cli1, "eth0", "fd10:1::2/64");
        t.cli1.ip(&["route", "add", "default", "via", "172.16.1.1"]);
        t.cli1
            .ip(&["-6", "route", "add", "default", "via", "fd10:1::1"]);
        addr(&t.cli2, "eth0", "172.16.2.2/24");
        addr(&t.cli2, "eth0", "fd10:2::2/64");
        t.cli2.ip(&["route", "add", "default", "via", "172.16.2.1"]);
        t.cli2
            .ip(&["-6", "route", "add", "default", "via", "fd10:2::1"]);

        addr(&t.r0, "c1", "172.16.1.1/24");
        addr(&t.r0, "c1", "fd10:1::1/64");
        if !o.eth0_gateway_unresolvable {
            addr(&t.r0, ROUTER_POD_IF, "10.0.0.1/24");
            addr(&t.r0, ROUTER_POD_IF, "fd00::1/64");
        } else {
            // The pod's eth0 subnet stays reachable from r0, but nobody answers for the gateway.
            t.r0.ip(&["route", "add", "10.0.0.0/24", "dev", ROUTER_POD_IF]);
            t.r0.ip(&["-6", "route", "add", "fd00::/64", "dev", ROUTER_POD_IF]);
        }
        addr(&t.r0, "core", "192.168.255.1/30");
        addr(&t.r0, "core", "fdff::1/64");
        addr(&t.r1, "c2", "172.16.2.1/24");
        addr(&t.r1, "c2", "fd10:2::1/64");
        if matches!(o.net1, Net1::Veth | Net1::Macvlan) {
            addr(&t.r1, ROUTER_POD_IF, "10.1.0.1/24");
            addr(&t.r1, ROUTER_POD_IF, "fd01::1/64");
        }
        addr(&t.r1, "core", "192.168.255.2/30");
        addr(&t.r1, "core", "fdff::2/64");
        t.r0.ip(&["route", "add", "172.16.2.0/24", "via", "192.168.255.2"]);
        t.r0.ip(&["route", "add", "10.1.0.0/24", "via", "192.168.255.2"]);
        t.r1.ip(&["route", "add", "172.16.1.0/24", "via", "192.168.255.1"]);
        t.r1.ip(&["route", "add", "10.0.0.0/24", "via", "192.168.255.1"]);
        t.r0.ip(&["-6", "route", "add", "fd10:2::/64", "via", "fdff::2"]);
        t.r0.ip(&["-6", "route", "add", "fd01::/64", "via", "fdff::2"]);
        t.r1.ip(&["-6", "route", "add", "fd10:1::/64", "via", "fdff::1"]);
        t.r1.ip(&["-6", "route", "add", "fd00::/64", "via", "fdff::1"]);
        for r in [&t.r0, &t.r1] {
            r.sysctl("net.ipv4.ip_forward", "1");
            r.sysctl("net.ipv6.conf.all.forwarding", "1");
        }
        t.r0.sysctl("net.ipv4.conf.all.rp_filter", "1");
        t.r0.sysctl(&format!("net.ipv4.conf.{ROUTER_POD_IF}.rp_filter"), "1");
        // IPv6 has no rp_filter: r0 drops what arrives from the pod with a source that is not of
        // the pod's eth0 network the way an anti-spoofing router would.
        t.r0.ip(&[
            "-6",
            "rule",
            "add",
            "iif",
            ROUTER_POD_IF,
            "from",
            "fd01::/64",
            "blackhole",
        ]);

        addr(&t.pod, "eth0", "10.0.0.2/24");
        addr(&t.pod, "eth0", "fd00::2/64");
        if o.net1 == Net1::Veth {
            addr(&t.pod, "net1", "10.1.0.2/24");
            addr(&t.pod, "net1", "fd01::2/64");
        }
        if o.default_route {
            t.pod.ip(&["route", "add", "default", "via", ETH0_GW_V4]);
            t.pod
                .ip(&["-6", "route", "add", "default", "via", ETH0_GW_V6]);
        }
        t
    }

    /// Puts the pod's routes back after a DEL of Debian's sbr, which leaves its routes in tables
    /// 100/101 and net1's routes out of the main table (so that the next ADD starts alike).
    pub fn restore_after_debian_sbr_del(&self) {
        self.pod.ip(&["route", "flush", "table", "100"]);
        self.pod.ip(&["-6", "route", "flush", "table", "101"]);
        self.pod.try_ip(&[
            "route",
            "add",
            "10.1.0.0/24",
            "dev",
            "net1",
            "src",
            "10.1.0.2",
        ]);
        self.pod
            .try_ip(&["-6", "route", "add", "fd01::/64", "dev", "net1"]);
        self.pod
            .try_ip(&["-6", "route", "add", "fe80::/64", "dev", "net1"]);
    }

    /// The net1 interface as ADD is given it: both addresses with r1 as gateway.
    pub fn net1_spec(&self) -> multus::sbr::InterfaceSpec {
        multus::sbr::InterfaceSpec {
            ifname: "net1".into(),
            addresses: net1_addresses(),
        }
    }

    /// Packets received by r0 and r1 from the pod: (r0's pod-facing rx, r1's pod-facing rx).
    pub fn router_rx(&self) -> (u64, u64) {
        (
            self.r0.link_packets(ROUTER_POD_IF).0,
            self.r1.link_packets(ROUTER_POD_IF).0,
        )
    }

    /// The pod's link-local IPv6 address on `ifname`.
    pub fn pod_link_local(&self, ifname: &str) -> String {
        link_local(&self.pod, ifname)
    }
}

impl Default for Sbr5 {
    fn default() -> Self {
        Self::new()
    }
}

/// net1's addresses as a prevResult lists them (`address/prefix`, gateway), for the plugins' configs.
pub const NET1_IPS: [(&str, Option<&str>); 2] = [
    ("10.1.0.2/24", Some(NET1_GW_V4)),
    ("fd01::2/64", Some(NET1_GW_V6)),
];

/// net1's addresses as prevResult gives them (with gateways).
pub fn net1_addresses() -> Vec<multus::sbr::IfAddr> {
    vec![
        multus::sbr::IfAddr {
            address: POD_NET1_V4.parse().expect("ip"),
            prefix_len: 24,
            gateway: Some(NET1_GW_V4.parse().expect("ip")),
        },
        multus::sbr::IfAddr {
            address: POD_NET1_V6.parse().expect("ip"),
            prefix_len: 64,
            gateway: Some(NET1_GW_V6.parse().expect("ip")),
        },
    ]
}

/// The link-local IPv6 address of an interface, waiting up to 3 s for it: the kernel adds it when it
/// processes the link's carrier-on event, which it may delay by up to a second.
pub fn link_local(ns: &Netns, ifname: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let out = ns.ip(&[
            "-j",
            "-6",
            "addr",
            "show",
            "dev",
            ifname,
            "scope",
            "link",
            "-tentative",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        // iproute2 renders the addresses its filter drops as empty objects: take the first real one.
        let found = v[0]["addr_info"]
            .as_array()
            .and_then(|a| a.iter().find_map(|i| i["local"].as_str()));
        if let Some(a) = found {
            return a.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no link-local address on {ifname} in {}: {v}",
            ns.name()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A second, minimal pod: net1 10.5.0.2/24 towards a router at 10.5.0.1, no default route.
pub struct MiniPod {
    /// The pod.
    pub pod: Netns,
    /// Its router.
    pub router: Netns,
}

impl MiniPod {
    /// Builds it.
    pub fn new() -> Self {
        let m = MiniPod {
            pod: Netns::new("mpod-"),
            router: Netns::new("mr-"),
        };
        veth(&m.pod, "net1", &m.router, ROUTER_POD_IF, 1500);
        addr(&m.pod, "net1", "10.5.0.2/24");
        addr(&m.router, ROUTER_POD_IF, "10.5.0.1/24");
        m
    }

    /// net1 as ADD is given it.
    pub fn net1_spec(&self) -> multus::sbr::InterfaceSpec {
        multus::sbr::InterfaceSpec {
            ifname: "net1".into(),
            addresses: vec![multus::sbr::IfAddr {
                address: "10.5.0.2".parse().expect("ip"),
                prefix_len: 24,
                gateway: Some("10.5.0.1".parse().expect("ip")),
            }],
        }
    }
}

impl Default for MiniPod {
    fn default() -> Self {
        Self::new()
    }
}
