//! The comparison half of a reconciliation: [`diff`] lists the [`Fix`]es that bring a pod in line
//! with its plan, from what was read ([`super::snapshot::Snapshot`] and [`Facts`]), without I/O.
//! CHECK reports the same fixes as drift ([`Fix::drift`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use multus_common::DefaultRoute;
use netlink_packet_route::route::RouteMessage;

use super::super::{
    bpf::{LinkTarget, BPF_TCX_EGRESS},
    carrier,
    error::Drift,
    pins::PodDir,
    plan::{CarrierRoute, PodPlan},
    state::{IfaceState, NL_FILTER, RP_FILTER_CHANGED},
    types::CARRIER_IFNAME,
};
use super::snapshot::Snapshot;
use crate::netns::netlink::Route;

/// Where a link pin points, or why that cannot be read.
pub type LinkRead = Result<LinkTarget, String>;

/// What [`diff`] compares besides the netlink [`Snapshot`]: the pod's record, maps, pins and
/// sysctls ([`Facts::read`]).
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The pod attaches its real interfaces with TCX links (else with netlink filters).
    pub tcx: bool,
    /// The pod's record says the carrier's peer lives in an anchor namespace.
    pub anchored: bool,
    /// A TCX link pin of the carrier (made by an earlier version) exists.
    pub carrier_link_pin: bool,
    /// The pod's defaults-map entries (IPv4, IPv6).
    pub defaults: [DefaultRoute; 2],
    /// Id of the carrier program the pins hold (0 when not read: no carrier of SBR's planned).
    pub carrier_prog: u32,
    /// Id of the egress program the pins hold (0 when not read: nothing to attach).
    pub egress_prog: u32,
    /// Interfaces with a link pin.
    pub link_pins: BTreeSet<String>,
    /// Where the link pins of the interfaces the plan attaches point, or why that cannot be read
    /// (TCX pods only).
    pub links: BTreeMap<String, LinkRead>,
    /// The pod's interface records.
    pub records: Vec<(String, IfaceState)>,
    /// rp_filter (own, effective) of the interfaces the plan wants loose.
    pub rp_filter: BTreeMap<String, (u32, u32)>,
}

/// One difference between the plan and the pod, and how to remove it.
#[derive(Debug)]
pub enum Fix {
    /// Write a defaults-map entry.
    SetDefault {
        index: u32,
        expected: multus_common::DefaultRoute,
        actual: multus_common::DefaultRoute,
    },
    /// Create the carrier.
    CreateCarrier { mtu: u32 },
    /// Retire (or delete) the carrier with its routes.
    DeleteCarrier { index: u32 },
    /// Change the carrier's MTU.
    CarrierMtu { index: u32, mtu: u32, actual: u32 },
    /// Bring the carrier pair up.
    CarrierUp,
    /// The carrier is not NOARP: it was not made by SBR.
    CarrierForeign,
    /// Attach the carrier program.
    AttachCarrier { reason: String },
    /// Add a carrier route.
    AddRoute {
        route: CarrierRoute,
        oif: u32,
        /// A carrier route with the same key (destination, and source prefix for IPv6) exists
        /// with other attributes (an IPv4 preferred source that changed): replaced in one step.
        replace: bool,
    },
    /// Delete a carrier route.
    DelRoute {
        route: CarrierRoute,
        message: RouteMessage,
    },
    /// Attach the egress program to a real interface.
    Attach { ifname: String, reason: String },
    /// Detach the program from an interface that should have none: remove its link pin (`tcx`) or
    /// its netlink filter.
    Detach { ifname: String, tcx: bool },
    /// Make the rp_filter of an interface loose (recording its own value).
    LooseRpFilter { ifname: String, own: u32 },
    /// Put back the rp_filter SBR changed.
    RestoreRpFilter { ifname: String, orig: u32 },
    /// Install a managed neighbour entry for a gateway.
    AddNeighbour { ifindex: u32, addr: IpAddr },
    /// Remove a neighbour entry SBR installed.
    DelNeighbour { ifindex: u32, addr: IpAddr },
}

impl Fix {
    /// The fix as CHECK reports it.
    pub fn drift(&self, dir: &PodDir) -> Drift {
        match self {
            Fix::SetDefault {
                index,
                expected,
                actual,
            } => Drift::DefaultDiffers {
                family: if *index == 0 { 4 } else { 6 },
                expected: format!("{expected:?}"),
                actual: format!("{actual:?}"),
            },
            Fix::CreateCarrier { .. } => Drift::Carrier(format!("{CARRIER_IFNAME} missing")),
            Fix::DeleteCarrier { index: 0 } => Drift::PinExtra(dir.carrier_link()),
            Fix::DeleteCarrier { .. } => Drift::Carrier(format!(
                "{CARRIER_IFNAME} exists but nothing is routed through it"
            )),
            Fix::CarrierMtu { mtu, actual, .. } => {
                Drift::Carrier(format!("MTU {actual}, expected {mtu}"))
            }
            Fix::CarrierUp => Drift::Carrier("down".into()),
            Fix::CarrierForeign => Drift::Carrier(format!(
                "{CARRIER_IFNAME} is not a NOARP device made by SBR"
            )),
            Fix::AttachCarrier { reason } => Drift::NotAttached {
                ifname: CARRIER_IFNAME.into(),
                reason: reason.clone(),
            },
            Fix::AddRoute { route, .. } => Drift::RouteMissing(route.to_string()),
            Fix::DelRoute { route, .. } => Drift::RouteExtra(route.to_string()),
            Fix::Attach { ifname, reason } => Drift::NotAttached {
                ifname: ifname.clone(),
                reason: reason.clone(),
            },
            Fix::Detach { ifname, tcx: true } => Drift::PinExtra(dir.if_link(ifname)),
            Fix::Detach { ifname, tcx: false } => Drift::NotAttached {
                ifname: ifname.clone(),
                reason: "SBR filter attached to an interface that should have none".into(),
            },
            Fix::LooseRpFilter { ifname, .. } => Drift::RpFilterStrict(ifname.clone()),
            Fix::RestoreRpFilter { ifname, orig } => Drift::Carrier(format!(
                "rp_filter of {ifname} still changed (original {orig}) without IPv4 carrier routes"
            )),
            Fix::AddNeighbour { ifindex, addr } => {
                Drift::NeighbourMissing(format!("{addr} on ifindex {ifindex}"))
            }
            Fix::DelNeighbour { ifindex, addr } => {
                Drift::NeighbourExtra(format!("{addr} on ifindex {ifindex}"))
            }
        }
    }
}

/// Why the link pinned for an interface at `ifindex` is not the expected attachment (None when it
/// is); `target` is None when there is no pin.
fn link_problem(target: Option<&LinkRead>, ifindex: u32, prog_id: u32) -> Option<String> {
    match target {
        None => Some("no link pin".into()),
        Some(Err(e)) => Some(e.clone()),
        Some(Ok(t)) if t.ifindex == 0 => Some("link detached (interface gone)".into()),
        Some(Ok(t)) if t.ifindex != ifindex => {
            Some(format!("link on ifindex {}, expected {ifindex}", t.ifindex))
        }
        Some(Ok(t)) if t.attach_type != BPF_TCX_EGRESS => {
            Some(format!("link attach type {}", t.attach_type))
        }
        Some(Ok(t)) if t.prog_id != prog_id => Some(format!(
            "link runs program {}, expected {prog_id}",
            t.prog_id
        )),
        Some(Ok(_)) => None,
    }
}

/// Why SBR's netlink filter on `ifindex` is not the expected one (None when it is).
fn filter_problem(snap: &Snapshot, ifindex: u32, prog_id: u32) -> Option<String> {
    match snap.filters.get(&ifindex) {
        None | Some(None) => Some("no SBR filter on the clsact egress hook".into()),
        Some(Some(id)) if *id != prog_id => {
            Some(format!("filter runs program {id}, expected {prog_id}"))
        }
        Some(Some(_)) => None,
    }
}

/// Lists the fixes that would bring the pod in line with `plan`.
pub fn diff(plan: &PodPlan, snap: &Snapshot, facts: &Facts) -> Vec<Fix> {
    let mut fixes = Vec::new();
    for (index, (expected, actual)) in plan.defaults.iter().zip(&facts.defaults).enumerate() {
        if actual != expected {
            fixes.push(Fix::SetDefault {
                index: index as u32,
                expected: *expected,
                actual: *actual,
            });
        }
    }

    match (&plan.carrier, &snap.carrier) {
        // A device of that name that is not NOARP was not made by SBR: leave it alone.
        (None, Some(c)) if c.noarp => fixes.push(Fix::DeleteCarrier {
            index: c.link.index,
        }),
        (None, Some(_)) => {}
        (None, None) => {
            if facts.carrier_link_pin || facts.anchored {
                fixes.push(Fix::DeleteCarrier { index: 0 });
            }
        }
        (Some(cp), None) => fixes.push(Fix::CreateCarrier { mtu: cp.mtu }),
        (Some(cp), Some(c)) => {
            let idx = c.link.index;
            if !c.noarp {
                fixes.push(Fix::CarrierForeign);
                return fixes;
            }
            if c.link.mtu != cp.mtu {
                fixes.push(Fix::CarrierMtu {
                    index: idx,
                    mtu: cp.mtu,
                    actual: c.link.mtu,
                });
            }
            if !c.link.up || !c.lower_up {
                fixes.push(Fix::CarrierUp);
            }
            if let Some(reason) = filter_problem(snap, idx, facts.carrier_prog) {
                fixes.push(Fix::AttachCarrier { reason });
            }
            let existing: Vec<(CarrierRoute, &Route)> = snap
                .carrier_routes
                .iter()
                .map(|r| (carrier::parse_route(r), r))
                .collect();
            let have: BTreeSet<&CarrierRoute> = existing.iter().map(|(c, _)| c).collect();
            for route in &cp.routes {
                if !have.contains(route) {
                    let replace = existing.iter().any(|(c, _)| {
                        (c.dst, c.prefix_len, c.from) == (route.dst, route.prefix_len, route.from)
                    });
                    fixes.push(Fix::AddRoute {
                        route: route.clone(),
                        oif: idx,
                        replace,
                    });
                }
            }
            for (route, r) in &existing {
                if !cp.routes.contains(route) {
                    fixes.push(Fix::DelRoute {
                        route: route.clone(),
                        message: r.message.clone(),
                    });
                }
            }
            for r in &snap.carrier_local6 {
                fixes.push(Fix::DelRoute {
                    route: carrier::parse_route(r),
                    message: r.message.clone(),
                });
            }
        }
    }

    for (ifname, index) in &plan.attach {
        let problem = if facts.tcx {
            link_problem(facts.links.get(ifname), *index, facts.egress_prog)
        } else {
            filter_problem(snap, *index, facts.egress_prog)
        };
        if let Some(reason) = problem {
            fixes.push(Fix::Attach {
                ifname: ifname.clone(),
                reason,
            });
        }
    }
    let planned = |name: &str| plan.attach.iter().any(|(n, _)| n == name);
    for ifname in &facts.link_pins {
        if !planned(ifname) {
            fixes.push(Fix::Detach {
                ifname: ifname.clone(),
                tcx: true,
            });
        }
    }
    for (ifname, st) in &facts.records {
        if st.flags & NL_FILTER != 0 && !planned(ifname) {
            fixes.push(Fix::Detach {
                ifname: ifname.clone(),
                tcx: false,
            });
        }
    }

    for ifname in &plan.loose_rp_filter {
        if let Some(&(own, 1)) = facts.rp_filter.get(ifname) {
            fixes.push(Fix::LooseRpFilter {
                ifname: ifname.clone(),
                own,
            });
        }
    }
    for (ifname, st) in &facts.records {
        if st.flags & RP_FILTER_CHANGED != 0 && !plan.loose_rp_filter.contains(ifname) {
            fixes.push(Fix::RestoreRpFilter {
                ifname: ifname.clone(),
                orig: st.rp_filter_orig,
            });
        }
    }

    for &(ifindex, addr) in &plan.neighbours {
        if !snap
            .neighbours
            .iter()
            .any(|n| n.ifindex == ifindex && n.addr == addr && n.managed)
        {
            fixes.push(Fix::AddNeighbour { ifindex, addr });
        }
    }
    for n in &snap.neighbours {
        if !plan.neighbours.contains(&(n.ifindex, n.addr)) {
            fixes.push(Fix::DelNeighbour {
                ifindex: n.ifindex,
                addr: n.addr,
            });
        }
    }
    fixes
}

#[cfg(test)]
mod tests {
    use super::super::super::{
        carrier::route_message,
        plan::CarrierPlan,
        state::{COUNTED, MANAGED},
    };
    use super::*;
    use crate::netns::netlink::Link;
    use crate::netns::netlink::{LinkDetail, Neighbour, ARPHRD_ETHER};

    const CARRIER: u32 = 9;
    const CARRIER_PROG: u32 = 31;
    const EGRESS_PROG: u32 = 32;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
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
            link_layer_type: ARPHRD_ETHER,
            noarp: false,
            lower_up: true,
            kind: Some("veth".into()),
        }
    }

    fn carrier_link(mtu: u32) -> LinkDetail {
        LinkDetail {
            noarp: true,
            ..link(CARRIER_IFNAME, CARRIER, mtu)
        }
    }

    fn croute(dst: &str, len: u8, from: Option<&str>, prefsrc: Option<&str>) -> CarrierRoute {
        CarrierRoute {
            dst: ip(dst),
            prefix_len: len,
            from: from.map(ip),
            prefsrc: prefsrc.map(ip),
        }
    }

    /// The route the kernel would list for `r` through the carrier.
    fn listed(r: &CarrierRoute) -> Route {
        Route {
            dst: r.dst,
            prefix_len: r.prefix_len,
            gateway: None,
            oif: Some(CARRIER),
            metric: None,
            message: route_message(r, CARRIER),
        }
    }

    fn empty_snapshot() -> Snapshot {
        Snapshot {
            links: vec![link("eth0", 2, 1500), link("net1", 3, 1500)],
            main4: Vec::new(),
            main6: Vec::new(),
            carrier: None,
            carrier_routes: Vec::new(),
            carrier_local6: Vec::new(),
            v4_default_src: None,
            neighbours: Vec::new(),
            filters: BTreeMap::new(),
        }
    }

    fn empty_plan() -> PodPlan {
        PodPlan {
            defaults: [DefaultRoute::default(); 2],
            carrier: None,
            attach: Vec::new(),
            loose_rp_filter: Vec::new(),
            neighbours: BTreeSet::new(),
        }
    }

    fn routes() -> BTreeSet<CarrierRoute> {
        [
            croute("0.0.0.0", 1, None, Some("10.0.0.2")),
            croute("::", 1, Some("fd01::2"), None),
        ]
        .into_iter()
        .collect()
    }

    /// A pod in line with its plan: a carrier with its routes and filter, two interfaces with
    /// the egress filter (netlink), a loose rp_filter, a managed neighbour, defaults written.
    fn in_line() -> (PodPlan, Snapshot, Facts) {
        let defaults = [
            DefaultRoute {
                ifindex: 2,
                flags: 1,
                gateway: [1, 0, 0, 0],
            },
            DefaultRoute::default(),
        ];
        let plan = PodPlan {
            defaults,
            carrier: Some(CarrierPlan {
                mtu: 1500,
                routes: routes(),
            }),
            attach: vec![("eth0".into(), 2), ("net1".into(), 3)],
            loose_rp_filter: vec!["net1".into()],
            neighbours: [(3, ip("10.1.0.1"))].into_iter().collect(),
        };
        let mut snap = empty_snapshot();
        snap.links.push(carrier_link(1500));
        snap.carrier = Some(carrier_link(1500));
        snap.carrier_routes = routes().iter().map(listed).collect();
        snap.filters = [
            (CARRIER, Some(CARRIER_PROG)),
            (2, Some(EGRESS_PROG)),
            (3, Some(EGRESS_PROG)),
        ]
        .into_iter()
        .collect();
        snap.neighbours = vec![Neighbour {
            ifindex: 3,
            addr: ip("10.1.0.1"),
            protocol: carrier::RTPROT_SBR,
            managed: true,
        }];
        let facts = Facts {
            defaults,
            carrier_prog: CARRIER_PROG,
            egress_prog: EGRESS_PROG,
            records: vec![
                ("eth0".into(), record(2, MANAGED | NL_FILTER | COUNTED)),
                (
                    "net1".into(),
                    record(3, MANAGED | NL_FILTER | COUNTED | RP_FILTER_CHANGED),
                ),
            ],
            rp_filter: [("net1".to_string(), (2, 2))].into_iter().collect(),
            ..Facts::default()
        };
        (plan, snap, facts)
    }

    fn record(ifindex: u32, flags: u32) -> IfaceState {
        IfaceState {
            ifindex,
            flags,
            rp_filter_orig: 1,
            reserved: 0,
        }
    }

    /// `diff` as CHECK would report it (the fixes' debug form, one per fix).
    fn fixes(plan: &PodPlan, snap: &Snapshot, facts: &Facts) -> Vec<String> {
        diff(plan, snap, facts)
            .iter()
            .map(|f| format!("{f:?}"))
            .collect()
    }

    #[test]
    fn a_pod_in_line_needs_nothing() {
        let (plan, snap, facts) = in_line();
        assert_eq!(fixes(&plan, &snap, &facts), Vec::<String>::new());
        assert!(diff(&empty_plan(), &empty_snapshot(), &Facts::default()).is_empty());
    }

    #[test]
    fn a_differing_default_is_written_with_its_family_index() {
        let (plan, snap, mut facts) = in_line();
        facts.defaults[0] = DefaultRoute::default();
        let found = diff(&plan, &snap, &facts);
        assert!(
            matches!(found.as_slice(), [Fix::SetDefault { index: 0, expected, actual }]
                if *expected == plan.defaults[0] && *actual == DefaultRoute::default()),
            "{found:?}"
        );
    }

    #[test]
    fn carrier_without_a_plan_is_removed_only_when_it_is_sbrs() {
        let mut snap = empty_snapshot();
        snap.carrier = Some(carrier_link(1500));
        let found = diff(&empty_plan(), &snap, &Facts::default());
        assert!(
            matches!(found.as_slice(), [Fix::DeleteCarrier { index: CARRIER }]),
            "{found:?}"
        );
        // Not NOARP: someone else's device of that name is left alone.
        snap.carrier = Some(link(CARRIER_IFNAME, CARRIER, 1500));
        assert!(diff(&empty_plan(), &snap, &Facts::default()).is_empty());
    }

    #[test]
    fn leftovers_of_a_gone_carrier_are_removed() {
        for facts in [
            Facts {
                carrier_link_pin: true,
                ..Facts::default()
            },
            Facts {
                anchored: true,
                ..Facts::default()
            },
        ] {
            let found = diff(&empty_plan(), &empty_snapshot(), &facts);
            assert!(
                matches!(found.as_slice(), [Fix::DeleteCarrier { index: 0 }]),
                "{facts:?}: {found:?}"
            );
        }
    }

    #[test]
    fn a_missing_carrier_is_created_and_nothing_else_about_it_is_compared() {
        let (plan, mut snap, facts) = in_line();
        snap.carrier = None;
        snap.carrier_routes.clear();
        let found = diff(&plan, &snap, &facts);
        assert!(
            matches!(found.as_slice(), [Fix::CreateCarrier { mtu: 1500 }]),
            "{found:?}"
        );
    }

    #[test]
    fn a_foreign_carrier_stops_the_comparison() {
        let (plan, mut snap, mut facts) = in_line();
        snap.carrier = Some(link(CARRIER_IFNAME, CARRIER, 1500));
        facts.egress_prog = 0; // would make every attachment differ, were it compared
        let found = diff(&plan, &snap, &facts);
        assert!(
            matches!(found.as_slice(), [Fix::CarrierForeign]),
            "{found:?}"
        );
    }

    #[test]
    fn carrier_mtu_state_and_filter_are_compared() {
        let (plan, mut snap, facts) = in_line();
        let mut c = carrier_link(1400);
        c.link.up = false;
        snap.carrier = Some(c);
        snap.filters.insert(CARRIER, Some(7));
        let found = fixes(&plan, &snap, &facts);
        assert_eq!(
            found,
            [
                "CarrierMtu { index: 9, mtu: 1500, actual: 1400 }",
                "CarrierUp",
                "AttachCarrier { reason: \"filter runs program 7, expected 31\" }",
            ]
        );
        snap.filters.remove(&CARRIER);
        snap.carrier = Some(carrier_link(1500));
        assert_eq!(
            fixes(&plan, &snap, &facts),
            ["AttachCarrier { reason: \"no SBR filter on the clsact egress hook\" }"]
        );
    }

    #[test]
    fn carrier_routes_missing_changed_extra_and_the_kernels_multicast_one() {
        let (plan, mut snap, facts) = in_line();
        let changed = croute("0.0.0.0", 1, None, Some("10.0.0.99"));
        let extra = croute("128.0.0.0", 2, None, Some("10.0.0.2"));
        let multicast = croute("ff00::", 8, None, None);
        snap.carrier_routes = vec![listed(&changed), listed(&extra)];
        snap.carrier_local6 = vec![listed(&multicast)];
        let found = diff(&plan, &snap, &facts);
        let summary: Vec<(String, String)> = found
            .iter()
            .map(|f| match f {
                Fix::AddRoute { route, replace, .. } => {
                    (format!("add {replace}"), route.to_string())
                }
                Fix::DelRoute { route, .. } => ("del".into(), route.to_string()),
                other => ("other".into(), format!("{other:?}")),
            })
            .collect();
        let r = routes();
        let mut r = r.iter();
        let (v4, v6) = (r.next(), r.next());
        assert_eq!(
            summary,
            [
                // Same key (destination) as the listed one: replaced in one step.
                (
                    "add true".into(),
                    v4.map(ToString::to_string).unwrap_or_default()
                ),
                (
                    "add false".into(),
                    v6.map(ToString::to_string).unwrap_or_default()
                ),
                ("del".into(), changed.to_string()),
                ("del".into(), extra.to_string()),
                ("del".into(), multicast.to_string()),
            ]
        );
    }

    #[test]
    fn netlink_attachments_are_compared_by_filter_program() {
        let (plan, mut snap, facts) = in_line();
        snap.filters.insert(2, None);
        snap.filters.insert(3, Some(99));
        assert_eq!(
            fixes(&plan, &snap, &facts),
            [
                "Attach { ifname: \"eth0\", reason: \"no SBR filter on the clsact egress hook\" }",
                "Attach { ifname: \"net1\", reason: \"filter runs program 99, expected 32\" }",
            ]
        );
    }

    #[test]
    fn tcx_attachments_are_compared_by_link_target() {
        let (plan, snap, mut facts) = in_line();
        facts.tcx = true;
        facts.records = vec![
            ("eth0".into(), record(2, MANAGED)),
            ("net1".into(), record(3, MANAGED | RP_FILTER_CHANGED)),
        ];
        facts.link_pins = ["eth0".to_string(), "net1".to_string()].into();
        let target = |prog_id, ifindex, attach_type| {
            Ok(LinkTarget {
                id: 1,
                prog_id,
                ifindex,
                attach_type,
            })
        };
        let cases: [(Option<LinkRead>, Option<&str>); 7] = [
            (Some(target(EGRESS_PROG, 2, BPF_TCX_EGRESS)), None),
            (None, Some("no link pin")),
            (Some(Err("pin unreadable".into())), Some("pin unreadable")),
            (
                Some(target(EGRESS_PROG, 0, BPF_TCX_EGRESS)),
                Some("link detached (interface gone)"),
            ),
            (
                Some(target(EGRESS_PROG, 5, BPF_TCX_EGRESS)),
                Some("link on ifindex 5, expected 2"),
            ),
            (
                Some(target(EGRESS_PROG, 2, BPF_TCX_EGRESS - 1)),
                Some("link attach type 46"),
            ),
            (
                Some(target(7, 2, BPF_TCX_EGRESS)),
                Some("link runs program 7, expected 32"),
            ),
        ];
        for (eth0, reason) in cases {
            facts.links = [("net1".to_string(), target(EGRESS_PROG, 3, BPF_TCX_EGRESS))]
                .into_iter()
                .chain(eth0.map(|t| ("eth0".to_string(), t)))
                .collect();
            let found = diff(&plan, &snap, &facts);
            let reasons: Vec<&str> = found
                .iter()
                .filter_map(|f| match f {
                    Fix::Attach { ifname, reason } if ifname == "eth0" => Some(reason.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(reasons, reason.into_iter().collect::<Vec<_>>(), "{found:?}");
            assert_eq!(found.len(), reasons.len(), "{found:?}");
        }
    }

    #[test]
    fn attachments_of_unplanned_interfaces_are_detached() {
        let (mut plan, snap, mut facts) = in_line();
        plan.attach.retain(|(name, _)| name == "eth0");
        facts.link_pins = ["old0".to_string()].into();
        let found = fixes(&plan, &snap, &facts);
        assert_eq!(
            found,
            [
                "Detach { ifname: \"old0\", tcx: true }",
                "Detach { ifname: \"net1\", tcx: false }",
            ]
        );
    }

    #[test]
    fn rp_filter_is_loosened_only_when_effectively_strict_and_restored_when_unplanned() {
        let (mut plan, snap, mut facts) = in_line();
        facts.rp_filter.insert("net1".into(), (0, 1));
        assert_eq!(
            fixes(&plan, &snap, &facts),
            ["LooseRpFilter { ifname: \"net1\", own: 0 }"]
        );
        facts.rp_filter.insert("net1".into(), (0, 0));
        assert!(diff(&plan, &snap, &facts).is_empty());
        plan.loose_rp_filter.clear();
        assert_eq!(
            fixes(&plan, &snap, &facts),
            ["RestoreRpFilter { ifname: \"net1\", orig: 1 }"]
        );
    }

    #[test]
    fn neighbours_are_managed_ones_of_the_plan_only() {
        let (plan, mut snap, facts) = in_line();
        snap.neighbours[0].managed = false;
        snap.neighbours.push(Neighbour {
            ifindex: 2,
            addr: ip("10.0.0.1"),
            protocol: carrier::RTPROT_SBR,
            managed: true,
        });
        assert_eq!(
            fixes(&plan, &snap, &facts),
            [
                "AddNeighbour { ifindex: 3, addr: 10.1.0.1 }",
                "DelNeighbour { ifindex: 2, addr: 10.0.0.1 }",
            ]
        );
    }
}
