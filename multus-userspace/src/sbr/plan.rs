//! Pure planning: map entries from addresses and gateways, the main default route, the routes
//! through the carrier, the carrier MTU, and which interfaces get a program. No I/O here, so
//! every rule is unit-tested.

use std::{
    collections::BTreeSet,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use multus_common::{
    DefaultRoute, SrcKey, SrcRoute, AF_INET, AF_INET6, DEFAULT_HAS_GATEWAY, DEFAULT_VALID,
    ROUTE_HAS_GATEWAY,
};
use netlink_packet_route::route::RouteType;

use super::types::{IfAddr, CARRIER_IFNAME, CARRIER_PEER_IFNAME};
use crate::netns::netlink::{route_source_prefix, LinkDetail, Route, ARPHRD_ETHER};

/// Address family and network-order words of an address (IPv4 in word 0).
pub fn addr_words(ip: IpAddr) -> (u32, [u32; 4]) {
    match ip {
        IpAddr::V4(a) => (AF_INET, [u32::from_ne_bytes(a.octets()), 0, 0, 0]),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            (AF_INET6, [w(0), w(4), w(8), w(12)])
        }
    }
}

/// The address held by network-order words.
pub fn words_addr(family: u32, w: [u32; 4]) -> IpAddr {
    if family == AF_INET {
        IpAddr::V4(Ipv4Addr::from(w[0].to_ne_bytes()))
    } else {
        let mut o = [0u8; 16];
        for (i, word) in w.iter().enumerate() {
            o[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(o))
    }
}

/// The prefix mask of `len` bits for the family of `ip`, as network-order words.
pub fn mask_words(ip: IpAddr, len: u8) -> [u32; 4] {
    let bits: u128 = match ip {
        IpAddr::V4(_) => {
            let len = u32::from(len.min(32));
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            return [m.to_be(), 0, 0, 0];
        }
        IpAddr::V6(_) => {
            let len = u32::from(len.min(128));
            if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            }
        }
    };
    addr_words(IpAddr::V6(Ipv6Addr::from(bits))).1
}

/// The map entry of one managed address of the pod whose namespace cookie is `cookie`.
pub fn src_entry(
    cookie: u64,
    ifindex: u32,
    addr: &IfAddr,
    gateway: Option<IpAddr>,
) -> (SrcKey, SrcRoute) {
    let (family, words) = addr_words(addr.address);
    let mask = mask_words(addr.address, addr.prefix_len);
    let network = [
        words[0] & mask[0],
        words[1] & mask[1],
        words[2] & mask[2],
        words[3] & mask[3],
    ];
    let gw = gateway.filter(|g| g.is_ipv4() == addr.address.is_ipv4());
    let route = SrcRoute {
        ifindex,
        flags: if gw.is_some() { ROUTE_HAS_GATEWAY } else { 0 },
        gateway: gw.map(|g| addr_words(g).1).unwrap_or_default(),
        network,
        mask,
    };
    (
        SrcKey {
            cookie,
            family,
            reserved: 0,
            addr: words,
        },
        route,
    )
}

/// A source entry for people: `10.1.0.2 -> if 3 via 10.1.0.1 (on-link 10.1.0.0/24)`.
pub fn describe_entry(key: &SrcKey, route: &SrcRoute) -> String {
    let e = super::inspect::SourceEntry::from_map(key, route);
    let via = e.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    format!(
        "if {}{via} (on-link {}/{})",
        e.ifindex, e.network, e.prefix_len
    )
}

/// The gateway used for a managed address: the one prevResult gave it, else the configured one
/// for its family, else the gateway of a main-table default route out of its interface.
pub fn resolve_gateway(
    addr: &IfAddr,
    config_v4: Option<Ipv4Addr>,
    config_v6: Option<Ipv6Addr>,
    main: &[Route],
    ifindex: u32,
) -> Option<IpAddr> {
    let same_family = |g: &IpAddr| g.is_ipv4() == addr.address.is_ipv4();
    addr.gateway
        .filter(same_family)
        .or_else(|| match addr.address {
            IpAddr::V4(_) => config_v4.map(IpAddr::V4),
            IpAddr::V6(_) => config_v6.map(IpAddr::V6),
        })
        .or_else(|| {
            main.iter()
                .filter(|r| {
                    r.is_default()
                        && r.oif == Some(ifindex)
                        && route_source_prefix(&r.message).is_none()
                })
                .filter_map(|r| r.gateway.filter(same_family))
                .next()
        })
}

/// The main table's default route as SBR sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MainDefault {
    /// Output interface.
    pub oif: u32,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
}

/// The default route of the main table with the lowest metric (ignoring source-specific routes and
/// routes through the carrier).
pub fn main_default(routes: &[Route], carrier: Option<u32>) -> Option<MainDefault> {
    routes
        .iter()
        .filter(|r| r.is_default() && r.message.header.kind == RouteType::Unicast)
        .filter(|r| route_source_prefix(&r.message).is_none())
        .filter(|r| r.oif.is_some() && r.oif != carrier)
        .min_by_key(|r| r.metric.unwrap_or(0))
        .and_then(|r| {
            Some(MainDefault {
                oif: r.oif?,
                gateway: r.gateway,
            })
        })
}

/// The defaults-map value for a main default route (all zero when there is none).
pub fn default_entry(d: Option<&MainDefault>) -> DefaultRoute {
    match d {
        None => DefaultRoute::default(),
        Some(d) => DefaultRoute {
            ifindex: d.oif,
            flags: DEFAULT_VALID
                | if d.gateway.is_some() {
                    DEFAULT_HAS_GATEWAY
                } else {
                    0
                },
            gateway: d.gateway.map(|g| addr_words(g).1).unwrap_or_default(),
        },
    }
}

/// A route through the carrier device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CarrierRoute {
    /// Destination prefix.
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// IPv6: the managed source address this route is specific to (`from <addr>/128`).
    pub from: Option<IpAddr>,
    /// IPv4: preferred source for sockets with no bound address (`src`).
    pub prefsrc: Option<IpAddr>,
}

impl fmt::Display for CarrierRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix_len)?;
        if let Some(from) = self.from {
            write!(f, " from {from}")?;
        }
        if let Some(src) = self.prefsrc {
            write!(f, " src {src}")?;
        }
        Ok(())
    }
}

/// IPv4 unicast space without multicast and class E: 0.0.0.0-223.255.255.255.
const V4_UNICAST: [([u8; 4], u8); 3] =
    [([0, 0, 0, 0], 1), ([128, 0, 0, 0], 2), ([192, 0, 0, 0], 3)];
/// IPv6 space below fe00::, so link-local fe80::/10 and multicast ff00::/8 are left out.
const V6_UNICAST: [(u16, u8); 7] = [
    (0x0000, 1),
    (0x8000, 2),
    (0xc000, 3),
    (0xe000, 4),
    (0xf000, 5),
    (0xf800, 6),
    (0xfc00, 7),
];

/// The prefixes that cover the unicast space of a family.
pub fn unicast_prefixes(v6: bool) -> Vec<(IpAddr, u8)> {
    if v6 {
        V6_UNICAST
            .iter()
            .map(|(s, l)| (IpAddr::V6(Ipv6Addr::new(*s, 0, 0, 0, 0, 0, 0, 0)), *l))
            .collect()
    } else {
        V4_UNICAST
            .iter()
            .map(|(o, l)| (IpAddr::V4(Ipv4Addr::from(*o)), *l))
            .collect()
    }
}

fn to_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// Whether prefix `outer` contains prefix `inner` (same family).
fn contains(outer: (IpAddr, u8), inner: (IpAddr, u8)) -> bool {
    if outer.0.is_ipv4() != inner.0.is_ipv4() || outer.1 > inner.1 {
        return false;
    }
    let (o, width) = to_bits(outer.0);
    let (i, _) = to_bits(inner.0);
    let shift = u32::from(width - outer.1);
    if shift >= 128 {
        return true;
    }
    (o >> shift) == (i >> shift)
}

/// Drops the carrier prefixes that would shadow a short (non-default) route of the main table:
/// where a route as wide as or wider than a carrier prefix covers it, that space keeps its route.
pub fn unshadowing(prefixes: Vec<(IpAddr, u8)>, existing: &[(IpAddr, u8)]) -> Vec<(IpAddr, u8)> {
    prefixes
        .into_iter()
        .filter(|p| !existing.iter().any(|q| q.1 > 0 && contains(*q, *p)))
        .collect()
}

/// Everything SBR sets up in a pod beyond the source entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    /// Defaults-map values (IPv4, IPv6).
    pub defaults: [DefaultRoute; 2],
    /// The carrier, when any route goes through it.
    pub carrier: Option<CarrierPlan>,
    /// Real interfaces that get the egress program (name, index).
    pub attach: Vec<(String, u32)>,
    /// Interfaces whose rp_filter must not be strict.
    pub loose_rp_filter: Vec<String>,
    /// Gateways of managed addresses (interface index, address), kept resolved as managed
    /// neighbour entries so that a redirect never waits for neighbour resolution.
    pub neighbours: BTreeSet<(u32, IpAddr)>,
}

/// The carrier device and its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierPlan {
    /// Device MTU: the smallest MTU of the interfaces its traffic can leave by.
    pub mtu: u32,
    /// Routes through it.
    pub routes: BTreeSet<CarrierRoute>,
}

/// What [`plan_pod`] needs to know about the pod.
pub struct PodFacts<'a> {
    /// Every source entry of the pod (all managed interfaces).
    pub entries: &'a [(SrcKey, SrcRoute)],
    /// Links of the namespace.
    pub links: &'a [LinkDetail],
    /// Main-table IPv4 routes, without the carrier's.
    pub main4: &'a [Route],
    /// Main-table IPv6 routes, without the carrier's.
    pub main6: &'a [Route],
    /// The carrier's index, when it exists.
    pub carrier: Option<u32>,
    /// Source the main IPv4 default route gives unbound sockets (when there is one).
    pub v4_default_src: Option<IpAddr>,
    /// Interfaces released by DEL: they get no program and no rp_filter change.
    pub released: &'a [String],
}

/// Source for unbound IPv4 sockets when the main table has no default route: the kernel refuses
/// to send from a loopback address out of a non-loopback device (EINVAL), so unbound traffic
/// still fails fast while bound traffic and replies are steered.
pub const NO_DEFAULT_V4_SRC: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Plans the whole pod from its facts.
pub fn plan_pod(f: &PodFacts<'_>) -> PodPlan {
    let d4 = main_default(f.main4, f.carrier);
    let d6 = main_default(f.main6, f.carrier);
    let defaults = [default_entry(d4.as_ref()), default_entry(d6.as_ref())];

    let short = |routes: &[Route]| -> Vec<(IpAddr, u8)> {
        routes
            .iter()
            .filter(|r| r.prefix_len > 0 && route_source_prefix(&r.message).is_none())
            .map(|r| (r.dst, r.prefix_len))
            .collect()
    };
    let with_gw = |family: u32| {
        f.entries
            .iter()
            .filter(move |(k, r)| k.family == family && r.flags & ROUTE_HAS_GATEWAY != 0)
    };

    let mut routes = BTreeSet::new();
    let mut served: BTreeSet<u32> = BTreeSet::new();
    if with_gw(AF_INET).next().is_some() {
        let prefsrc = if d4.is_some() {
            f.v4_default_src
        } else {
            Some(NO_DEFAULT_V4_SRC)
        };
        for (dst, prefix_len) in unshadowing(unicast_prefixes(false), &short(f.main4)) {
            routes.insert(CarrierRoute {
                dst,
                prefix_len,
                from: None,
                prefsrc,
            });
        }
        // Unmanaged IPv4 traffic crosses the carrier on its way to the default route's interface.
        served.extend(d4.as_ref().map(|d| d.oif));
        served.extend(
            f.entries
                .iter()
                .filter(|(k, _)| k.family == AF_INET)
                .map(|(_, r)| r.ifindex),
        );
    }
    for (key, route) in with_gw(AF_INET6) {
        let from = Some(words_addr(key.family, key.addr));
        for (dst, prefix_len) in unshadowing(unicast_prefixes(true), &short(f.main6)) {
            routes.insert(CarrierRoute {
                dst,
                prefix_len,
                from,
                prefsrc: None,
            });
        }
        served.insert(route.ifindex);
    }

    let carrier = if routes.is_empty() {
        None
    } else {
        let mtu = f
            .links
            .iter()
            .filter(|l| served.contains(&l.link.index))
            .map(|l| l.link.mtu)
            .min()
            .unwrap_or(1500);
        Some(CarrierPlan { mtu, routes })
    };

    let attach: Vec<(String, u32)> = if f.entries.is_empty() {
        Vec::new()
    } else {
        f.links
            .iter()
            .filter(|l| is_real_interface(l) && !f.released.contains(&l.link.name))
            .map(|l| (l.link.name.clone(), l.link.index))
            .collect()
    };
    let has_v4_routes = carrier
        .as_ref()
        .is_some_and(|c| c.routes.iter().any(|r| r.dst.is_ipv4()));
    let loose_rp_filter = if has_v4_routes {
        attach.iter().map(|(n, _)| n.clone()).collect()
    } else {
        Vec::new()
    };
    let neighbours = f
        .entries
        .iter()
        .filter(|(_, r)| r.flags & ROUTE_HAS_GATEWAY != 0)
        .map(|(k, r)| (r.ifindex, words_addr(k.family, r.gateway)))
        .collect();
    PodPlan {
        defaults,
        carrier,
        attach,
        loose_rp_filter,
        neighbours,
    }
}

/// A real interface of the pod: Ethernet-like, not loopback, not the carrier pair, not a retired
/// carrier waiting for the kernel to delete it.
pub fn is_real_interface(l: &LinkDetail) -> bool {
    l.link_layer_type == ARPHRD_ETHER
        && l.link.name != CARRIER_IFNAME
        && l.link.name != CARRIER_PEER_IFNAME
        && !l.link.name.starts_with(super::carrier::RETIRED_PREFIX)
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};

    use super::*;
    use crate::netns::netlink::Link;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn route(dst: &str, len: u8, gw: Option<&str>, oif: u32, metric: u32) -> Route {
        let mut message = RouteMessage::default();
        message.header.kind = RouteType::Unicast;
        message.header.destination_prefix_length = len;
        Route {
            dst: ip(dst),
            prefix_len: len,
            gateway: gw.map(ip),
            oif: Some(oif),
            metric: Some(metric),
            message,
        }
    }

    fn link(name: &str, index: u32, mtu: u32) -> LinkDetail {
        LinkDetail {
            link: Link {
                index,
                name: name.into(),
                mac: None,
                mtu,
                up: true,
            },
            link_layer_type: if name == "lo" { 772 } else { ARPHRD_ETHER },
            noarp: false,
            lower_up: true,
            kind: Some("veth".into()),
        }
    }

    #[test]
    fn words_round_trip() {
        for s in ["10.1.0.2", "255.0.0.1", "fd01::2", "fe80::1:2:3:4"] {
            let (f, w) = addr_words(ip(s));
            assert_eq!(words_addr(f, w), ip(s));
        }
        assert_eq!(
            mask_words(ip("10.0.0.0"), 24),
            [u32::from_ne_bytes([255, 255, 255, 0]), 0, 0, 0]
        );
        assert_eq!(mask_words(ip("::"), 0), [0; 4]);
        assert_eq!(mask_words(ip("::"), 128), [u32::MAX; 4]);
        let m = mask_words(ip("::"), 64);
        assert_eq!(m, [u32::MAX, u32::MAX, 0, 0]);
    }

    #[test]
    fn entry_masks_network_and_drops_foreign_gateway() {
        let a = IfAddr {
            address: ip("10.1.0.2"),
            prefix_len: 24,
            gateway: None,
        };
        let (k, r) = src_entry(1, 7, &a, Some(ip("10.1.0.1")));
        assert_eq!(k.family, AF_INET);
        assert_eq!(r.ifindex, 7);
        assert_eq!(r.flags, ROUTE_HAS_GATEWAY);
        assert_eq!(words_addr(AF_INET, r.network), ip("10.1.0.0"));
        assert_eq!(
            describe_entry(&k, &r),
            "if 7 via 10.1.0.1 (on-link 10.1.0.0/24)"
        );
        let (_, r) = src_entry(1, 7, &a, Some(ip("fd01::1")));
        assert_eq!(
            r.flags, 0,
            "an IPv6 gateway is no gateway for an IPv4 address"
        );
        let a6 = IfAddr {
            address: ip("fd01::2"),
            prefix_len: 64,
            gateway: None,
        };
        let (k6, r6) = src_entry(1, 7, &a6, Some(ip("fe80::1")));
        assert_eq!(
            describe_entry(&k6, &r6),
            "if 7 via fe80::1 (on-link fd01::/64)"
        );
    }

    #[test]
    fn gateway_precedence() {
        let main = vec![route("0.0.0.0", 0, Some("10.1.0.254"), 3, 0)];
        let mut a = IfAddr {
            address: ip("10.1.0.2"),
            prefix_len: 24,
            gateway: Some(ip("10.1.0.1")),
        };
        let cfg = Some(Ipv4Addr::new(10, 1, 0, 9));
        assert_eq!(
            resolve_gateway(&a, cfg, None, &main, 3),
            Some(ip("10.1.0.1"))
        );
        a.gateway = None;
        assert_eq!(
            resolve_gateway(&a, cfg, None, &main, 3),
            Some(ip("10.1.0.9"))
        );
        assert_eq!(
            resolve_gateway(&a, None, None, &main, 3),
            Some(ip("10.1.0.254"))
        );
        assert_eq!(resolve_gateway(&a, None, None, &main, 4), None);
    }

    #[test]
    fn main_default_lowest_metric_not_carrier() {
        let routes = vec![
            route("10.0.0.0", 24, None, 2, 0),
            route("0.0.0.0", 0, Some("10.0.0.1"), 2, 100),
            route("0.0.0.0", 0, Some("10.1.0.1"), 3, 50),
            route("0.0.0.0", 0, None, 9, 0),
        ];
        assert_eq!(
            main_default(&routes, Some(9)),
            Some(MainDefault {
                oif: 3,
                gateway: Some(ip("10.1.0.1"))
            })
        );
        let e = default_entry(main_default(&routes, Some(9)).as_ref());
        assert_eq!(e.flags, DEFAULT_VALID | DEFAULT_HAS_GATEWAY);
        assert_eq!(default_entry(None), DefaultRoute::default());
    }

    #[test]
    fn unicast_prefixes_cover_exactly_below_multicast() {
        // Sum of sizes: IPv4 /1 + /2 + /3 = 7/8 of the space = up to 224.0.0.0.
        let v4 = unicast_prefixes(false);
        let covered: u64 = v4.iter().map(|(_, l)| 1u64 << (32 - l)).sum();
        assert_eq!(covered, 0xe000_0000);
        assert!(v4.iter().all(|p| !contains(*p, (ip("224.0.0.1"), 32))));
        assert!(v4.iter().any(|p| contains(*p, (ip("223.255.255.255"), 32))));
        let v6 = unicast_prefixes(true);
        for inside in ["2001:db8::1", "fd00::1", "fdff:ffff::1", "::1", "fc00::"] {
            assert!(
                v6.iter().any(|p| contains(*p, (ip(inside), 128))),
                "{inside}"
            );
        }
        for outside in ["fe80::1", "ff02::1", "febf::1", "fe00::"] {
            assert!(
                v6.iter().all(|p| !contains(*p, (ip(outside), 128))),
                "{outside}"
            );
        }
    }

    #[test]
    fn short_routes_are_not_shadowed() {
        let kept = unshadowing(
            unicast_prefixes(false),
            &[
                (ip("128.0.0.0"), 1),
                (ip("10.0.0.0"), 8),
                (ip("0.0.0.0"), 0),
            ],
        );
        assert_eq!(kept, vec![(ip("0.0.0.0"), 1)]);
    }

    fn facts_entries() -> Vec<(SrcKey, SrcRoute)> {
        vec![
            src_entry(
                1,
                3,
                &IfAddr {
                    address: ip("10.1.0.2"),
                    prefix_len: 24,
                    gateway: None,
                },
                Some(ip("10.1.0.1")),
            ),
            src_entry(
                1,
                3,
                &IfAddr {
                    address: ip("fd01::2"),
                    prefix_len: 64,
                    gateway: None,
                },
                Some(ip("fd01::1")),
            ),
        ]
    }

    #[test]
    fn plan_with_default_route() {
        let entries = facts_entries();
        let links = vec![
            link("lo", 1, 65536),
            link("eth0", 2, 1500),
            link("net1", 3, 1400),
            link(CARRIER_IFNAME, 9, 1400),
        ];
        let main4 = vec![
            route("0.0.0.0", 0, Some("10.0.0.1"), 2, 0),
            route("10.0.0.0", 24, None, 2, 0),
        ];
        let main6 = vec![route("::", 0, Some("fd00::1"), 2, 1024)];
        let plan = plan_pod(&PodFacts {
            entries: &entries,
            links: &links,
            main4: &main4,
            main6: &main6,
            carrier: Some(9),
            v4_default_src: Some(ip("10.0.0.2")),
            released: &[],
        });
        assert_eq!(plan.defaults[0].ifindex, 2);
        let c = plan.carrier.unwrap_or_else(|| panic!("carrier planned"));
        assert_eq!(c.mtu, 1400);
        assert_eq!(c.routes.len(), 3 + 7);
        assert!(c.routes.contains(&CarrierRoute {
            dst: ip("0.0.0.0"),
            prefix_len: 1,
            from: None,
            prefsrc: Some(ip("10.0.0.2"))
        }));
        assert!(c.routes.contains(&CarrierRoute {
            dst: ip("fc00::"),
            prefix_len: 7,
            from: Some(ip("fd01::2")),
            prefsrc: None
        }));
        assert_eq!(
            plan.attach,
            vec![("eth0".to_string(), 2), ("net1".to_string(), 3)]
        );
        assert_eq!(
            plan.loose_rp_filter,
            vec!["eth0".to_string(), "net1".to_string()]
        );
        assert_eq!(
            plan.neighbours,
            BTreeSet::from([(3, ip("10.1.0.1")), (3, ip("fd01::1"))])
        );
    }

    #[test]
    fn plan_without_default_route_uses_loopback_source() {
        let entries = facts_entries();
        let links = vec![link("eth0", 2, 1500), link("net1", 3, 1500)];
        let plan = plan_pod(&PodFacts {
            entries: &entries,
            links: &links,
            main4: &[],
            main6: &[],
            carrier: None,
            v4_default_src: None,
            released: &["eth0".to_string()],
        });
        let c = plan.carrier.unwrap_or_else(|| panic!("carrier planned"));
        assert!(c
            .routes
            .iter()
            .filter(|r| r.dst.is_ipv4())
            .all(|r| r.prefsrc == Some(NO_DEFAULT_V4_SRC)));
        assert_eq!(plan.defaults[0], DefaultRoute::default());
        assert_eq!(plan.attach, vec![("net1".to_string(), 3)]);
    }

    #[test]
    fn no_gateway_no_carrier() {
        let entries = vec![src_entry(
            1,
            3,
            &IfAddr {
                address: ip("10.1.0.2"),
                prefix_len: 24,
                gateway: None,
            },
            None,
        )];
        let links = vec![link("eth0", 2, 1500), link("net1", 3, 1500)];
        let main4 = vec![route("0.0.0.0", 0, Some("10.0.0.1"), 2, 0)];
        let plan = plan_pod(&PodFacts {
            entries: &entries,
            links: &links,
            main4: &main4,
            main6: &[],
            carrier: None,
            v4_default_src: Some(ip("10.0.0.2")),
            released: &[],
        });
        assert_eq!(plan.carrier, None);
        assert!(plan.loose_rp_filter.is_empty());
        assert_eq!(
            plan.attach.len(),
            2,
            "real interfaces still steer on-link destinations"
        );
    }

    #[test]
    fn source_specific_main_routes_are_ignored() {
        let mut r = route("::", 0, Some("fd01::1"), 3, 0);
        r.message.header.source_prefix_length = 128;
        r.message
            .attributes
            .push(RouteAttribute::Source(RouteAddress::Inet6(
                Ipv6Addr::LOCALHOST,
            )));
        assert_eq!(main_default(&[r], None), None);
    }
}
