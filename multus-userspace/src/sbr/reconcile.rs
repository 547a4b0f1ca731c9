//! Brings a pod in line with its plan: read the pod (snapshot), plan it from its source entries
//! ([`super::plan::plan_pod`]), list the differences as fixes, apply them, and repeat until nothing
//! is left to fix. CHECK runs the same comparison and reports the fixes as drift instead.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use aya::programs::tc::SchedClassifier;
use netlink_packet_route::route::RouteMessage;
use rtnetlink::Handle;

use super::error::describe;
use super::{
    anchor,
    bpf::{self, PodMaps, BPF_TCX_EGRESS},
    carrier,
    error::{nl, Drift, SbrError},
    pins::{remove_pin, unmount_anchor, PodDir},
    plan::{is_real_interface, main_default, plan_pod, CarrierRoute, PodFacts, PodPlan},
    programs::ProgKind,
    state::{
        IfaceState, MODE_TCX, NL_FILTER, NL_QDISC_ADDED, POD_ANCHORED, RELEASED, RP_FILTER_CHANGED,
    },
    sysctl::{self, conf_path},
    timing::Phases,
    types::{CARRIER_IFNAME, CARRIER_PEER_IFNAME},
};
use crate::netns::netlink::{self as nlh, route_pref_source, route_table, LinkDetail, Route};

/// What an operation carries through the reconciliation: the pod's directory, the phase log, and
/// the programs opened from their pins with their ids (once per operation, whether to compare
/// ids or to attach).
pub struct Ctx<'a> {
    /// The pod's pins.
    pub dir: &'a PodDir,
    /// Where the time goes.
    pub phases: &'a Phases,
    progs: [Option<(u32, SchedClassifier)>; 2],
}

impl<'a> Ctx<'a> {
    /// A context for one operation.
    pub fn new(dir: &'a PodDir, phases: &'a Phases) -> Self {
        Self {
            dir,
            phases,
            progs: [None, None],
        }
    }

    fn opened(
        &mut self,
        maps: &PodMaps,
        kind: ProgKind,
    ) -> Result<&mut (u32, SchedClassifier), SbrError> {
        let slot = &mut self.progs[kind as usize];
        if slot.is_none() {
            *slot = Some(maps.progs.open(kind)?);
        }
        slot.as_mut()
            .ok_or_else(|| SbrError::Load(format!("program {} not opened", kind.name())))
    }

    fn prog(&mut self, maps: &PodMaps, kind: ProgKind) -> Result<&mut SchedClassifier, SbrError> {
        Ok(&mut self.opened(maps, kind)?.1)
    }

    /// The id of the program the pins hold.
    fn prog_id(&mut self, maps: &PodMaps, kind: ProgKind) -> Result<u32, SbrError> {
        Ok(self.opened(maps, kind)?.0)
    }
}

/// What the pod looks like now.
pub struct Snapshot {
    /// Every link.
    pub links: Vec<LinkDetail>,
    /// Main-table IPv4 routes, without the carrier's.
    pub main4: Vec<Route>,
    /// Main-table IPv6 routes, without the carrier's.
    pub main6: Vec<Route>,
    /// The carrier device, when it exists.
    pub carrier: Option<LinkDetail>,
    /// Main-table routes through the carrier (both families).
    pub carrier_routes: Vec<Route>,
    /// Local-table IPv6 routes through the carrier (the kernel's multicast route).
    pub carrier_local6: Vec<Route>,
    /// Source the main IPv4 default route gives unbound sockets.
    pub v4_default_src: Option<IpAddr>,
    /// Neighbour entries SBR installed.
    pub neighbours: Vec<nlh::Neighbour>,
    /// The program of SBR's netlink filter by interface index (None: no filter), read for the
    /// carrier and, with `real_filters`, for every real interface.
    pub filters: BTreeMap<u32, Option<u32>>,
}

impl Snapshot {
    /// Reads the pod, with the netlink filters of its real interfaces when `maps`' pod attaches
    /// with netlink (a TCX pod's links are read from their pins instead).
    pub async fn read(h: &Handle, maps: &PodMaps) -> Result<Self, SbrError> {
        let real_filters = maps.record.mode != MODE_TCX;
        let links: Vec<LinkDetail> = nlh::link_details(h)
            .await
            .map_err(nl("list links"))?
            .into_iter()
            .filter(|l| !l.link.name.starts_with(carrier::RETIRED_PREFIX))
            .collect();
        let carrier = links
            .iter()
            .find(|l| l.link.name == CARRIER_IFNAME)
            .cloned();
        let cidx = carrier.as_ref().map(|c| c.link.index);
        let main = u32::from(libc::RT_TABLE_MAIN);
        let (carrier4, main4): (Vec<_>, Vec<_>) = nlh::routes(h, false)
            .await
            .map_err(nl("list IPv4 routes"))?
            .into_iter()
            .filter(|r| route_table(&r.message) == main)
            .partition(|r| r.oif.is_some() && r.oif == cidx);
        // One IPv6 dump for both tables: the main table, and the local one for the carrier's
        // multicast route.
        let routes6 = nlh::routes(h, true).await.map_err(nl("list IPv6 routes"))?;
        let carrier_local6 = local6_of(&routes6, cidx);
        let (carrier6, main6): (Vec<_>, Vec<_>) = routes6
            .into_iter()
            .filter(|r| route_table(&r.message) == main)
            .partition(|r| r.oif.is_some() && r.oif == cidx);
        let v4_default_src = match main_default(&main4, cidx) {
            None => None,
            Some(d) => {
                let msg = main4
                    .iter()
                    .find(|r| r.is_default() && r.oif == Some(d.oif) && r.gateway == d.gateway)
                    .map(|r| &r.message);
                match msg.and_then(route_pref_source) {
                    Some(src) => Some(src),
                    None => default_source(h, &d.gateway, d.oif).await?,
                }
            }
        };
        let mut carrier_routes = carrier4;
        carrier_routes.extend(carrier6);
        let neighbours = nlh::neighbours(h)
            .await
            .map_err(nl("list neighbours"))?
            .into_iter()
            .filter(|n| n.protocol == carrier::RTPROT_SBR)
            .collect();
        let mut filters = BTreeMap::new();
        for l in &links {
            if Some(l.link.index) == cidx || (real_filters && is_real_interface(l)) {
                filters.insert(l.link.index, bpf::filter_prog(h, l.link.index).await?);
            }
        }
        Ok(Self {
            links,
            main4,
            main6,
            carrier,
            carrier_routes,
            carrier_local6,
            v4_default_src,
            neighbours,
            filters,
        })
    }

    /// Adds the carrier SBR just created (`link`) to the snapshot instead of reading everything
    /// again: a new carrier has no routes, no filter and no neighbours; only the multicast route
    /// the kernel gave it in the local table is read (it is there: [`carrier::create`] made the
    /// kernel process the carrier's link-watch event).
    async fn add_new_carrier(&mut self, h: &Handle, link: LinkDetail) -> Result<(), SbrError> {
        let routes6 = nlh::routes(h, true).await.map_err(nl("list IPv6 routes"))?;
        self.carrier_local6 = local6_of(&routes6, Some(link.link.index));
        self.carrier_routes.clear();
        self.filters.insert(link.link.index, None);
        self.links
            .retain(|l| l.link.name != CARRIER_IFNAME && l.link.name != CARRIER_PEER_IFNAME);
        self.links.push(link.clone());
        self.carrier = Some(link);
        Ok(())
    }

    /// The index of a link by name.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.links
            .iter()
            .find(|l| l.link.name == name)
            .map(|l| l.link.index)
    }
}

/// The local-table IPv6 routes through the carrier (the kernel's multicast route).
fn local6_of(routes6: &[Route], carrier: Option<u32>) -> Vec<Route> {
    let local = u32::from(libc::RT_TABLE_LOCAL);
    match carrier {
        Some(c) => routes6
            .iter()
            .filter(|r| route_table(&r.message) == local && r.oif == Some(c))
            .cloned()
            .collect(),
        None => Vec::new(),
    }
}

/// The source the kernel picks for the default route: ask it about the gateway (or, for a device
/// route, use the interface's first IPv4 address).
async fn default_source(
    h: &Handle,
    gateway: &Option<IpAddr>,
    oif: u32,
) -> Result<Option<IpAddr>, SbrError> {
    if let Some(gw) = gateway {
        let reply = nlh::route_get(h, *gw, Some(oif))
            .await
            .map_err(nl(format!("route get {gw}")))?;
        if let Some(src) = reply.as_ref().and_then(route_pref_source) {
            return Ok(Some(src));
        }
    }
    let addrs = nlh::addresses(h, Some(oif))
        .await
        .map_err(nl("list addresses"))?;
    Ok(addrs.iter().map(|a| a.addr).find(IpAddr::is_ipv4))
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

/// Why the pinned link at `pin` is not the expected attachment (None when it is).
fn link_problem(pin: &std::path::Path, ifindex: u32, prog_id: u32) -> Option<String> {
    if !pin.exists() {
        return Some("no link pin".into());
    }
    match bpf::link_target(pin) {
        Err(e) => Some(describe(&e)),
        Ok(t) if t.ifindex == 0 => Some("link detached (interface gone)".into()),
        Ok(t) if t.ifindex != ifindex => {
            Some(format!("link on ifindex {}, expected {ifindex}", t.ifindex))
        }
        Ok(t) if t.attach_type != BPF_TCX_EGRESS => {
            Some(format!("link attach type {}", t.attach_type))
        }
        Ok(t) if t.prog_id != prog_id => Some(format!(
            "link runs program {}, expected {prog_id}",
            t.prog_id
        )),
        Ok(_) => None,
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
pub fn diff(
    plan: &PodPlan,
    snap: &Snapshot,
    maps: &PodMaps,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<Fix>, SbrError> {
    let dir = ctx.dir;
    let tcx = maps.record.mode == MODE_TCX;
    let mut fixes = Vec::new();
    for (index, expected) in plan.defaults.iter().enumerate() {
        let index = index as u32;
        let actual = maps.default_entry(index)?;
        if actual != *expected {
            fixes.push(Fix::SetDefault {
                index,
                expected: *expected,
                actual,
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
            if dir.carrier_link().exists() || maps.record.flags & POD_ANCHORED != 0 {
                fixes.push(Fix::DeleteCarrier { index: 0 });
            }
        }
        (Some(cp), None) => fixes.push(Fix::CreateCarrier { mtu: cp.mtu }),
        (Some(cp), Some(c)) => {
            let idx = c.link.index;
            if !c.noarp {
                fixes.push(Fix::CarrierForeign);
                return Ok(fixes);
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
            if let Some(reason) = filter_problem(snap, idx, ctx.prog_id(maps, ProgKind::Carrier)?) {
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

    let egress_id = if plan.attach.is_empty() {
        0
    } else {
        ctx.prog_id(maps, ProgKind::Egress)?
    };
    for (ifname, index) in &plan.attach {
        let problem = if tcx {
            link_problem(&dir.if_link(ifname), *index, egress_id)
        } else {
            filter_problem(snap, *index, egress_id)
        };
        if let Some(reason) = problem {
            fixes.push(Fix::Attach {
                ifname: ifname.clone(),
                reason,
            });
        }
    }
    let planned = |name: &str| plan.attach.iter().any(|(n, _)| n == name);
    for (ifname, _) in dir.if_links()? {
        if !planned(&ifname) {
            fixes.push(Fix::Detach { ifname, tcx: true });
        }
    }
    for (ifname, st) in maps.state.all() {
        if st.flags & NL_FILTER != 0 && !planned(&ifname) {
            fixes.push(Fix::Detach { ifname, tcx: false });
        }
    }

    for ifname in &plan.loose_rp_filter {
        let (own, effective) = sysctl::rp_filter(ifname)?;
        if effective == 1 {
            fixes.push(Fix::LooseRpFilter {
                ifname: ifname.clone(),
                own,
            });
        }
    }
    for (ifname, st) in maps.state.all() {
        if st.flags & RP_FILTER_CHANGED != 0 && !plan.loose_rp_filter.contains(&ifname) {
            fixes.push(Fix::RestoreRpFilter {
                ifname,
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
    Ok(fixes)
}

/// Applies fixes in order, except that link pins are removed last: releasing a TCX link makes a
/// kernel worker hold RTNL for an RCU grace period, which any later netlink change would wait for.
/// Returns the carrier when it was created (the rest of the fixes need its index: the caller plans
/// again).
pub async fn apply(
    h: &Handle,
    fixes: Vec<Fix>,
    snap: &Snapshot,
    maps: &mut PodMaps,
    ctx: &mut Ctx<'_>,
) -> Result<Option<LinkDetail>, SbrError> {
    let (unpins, fixes): (Vec<Fix>, Vec<Fix>) = fixes
        .into_iter()
        .partition(|f| matches!(f, Fix::Detach { tcx: true, .. }));
    let dir = ctx.dir;
    let mut fixes = fixes.into_iter().chain(unpins).peekable();
    while let Some(fix) = fixes.next() {
        match fix {
            Fix::SetDefault {
                index, expected, ..
            } => {
                maps.set_default(index, expected)?;
                ctx.phases.mark("maps");
            }
            Fix::CreateCarrier { mtu } => {
                // Indices changed: the caller plans again before anything else.
                return create_carrier(h, mtu, maps, ctx).await.map(Some);
            }
            Fix::DeleteCarrier { index } => {
                remove_carrier(h, index, maps, dir, true).await?;
                ctx.phases.mark("device");
            }
            Fix::CarrierMtu { index, mtu, .. } => {
                nlh::set_link_mtu(h, index, mtu)
                    .await
                    .map_err(nl(format!("set {CARRIER_IFNAME} MTU")))?;
                ctx.phases.mark("device");
            }
            Fix::CarrierUp => {
                for name in [CARRIER_PEER_IFNAME, CARRIER_IFNAME] {
                    if let Some(i) = snap.index_of(name) {
                        nlh::set_link_up(h, i)
                            .await
                            .map_err(nl(format!("set {name} up")))?;
                    }
                }
                ctx.phases.mark("device");
            }
            Fix::CarrierForeign => {
                return Err(SbrError::Drift(vec![Fix::CarrierForeign.drift(dir)]));
            }
            Fix::AttachCarrier { .. } => {
                if let Some(i) = snap.index_of(CARRIER_IFNAME) {
                    // The carrier is SBR's own device: a netlink filter is enough (nothing else
                    // runs there), costs no RCU grace period, and goes with the device.
                    let prog = ctx.prog(maps, ProgKind::Carrier)?;
                    bpf::attach_filter(h, prog, ProgKind::Carrier, CARRIER_IFNAME, i).await?;
                    ctx.phases.mark("attach");
                    maps.ensure_counters(CARRIER_IFNAME, i)?;
                    ctx.phases.mark("maps");
                }
            }
            Fix::AddRoute {
                route,
                oif,
                replace,
            } => {
                // A run of routes goes out at once: the kernel adds them one after the other
                // without waiting for us in between.
                let mut batch = vec![(route, oif, replace)];
                while let Some(Fix::AddRoute { .. }) = fixes.peek() {
                    if let Some(Fix::AddRoute {
                        route,
                        oif,
                        replace,
                    }) = fixes.next()
                    {
                        batch.push((route, oif, replace));
                    }
                }
                futures::future::try_join_all(batch.into_iter().map(
                    |(route, oif, replace)| async move {
                        let message = carrier::route_message(&route, oif);
                        let added = if replace {
                            nlh::replace_route(h, message).await
                        } else {
                            nlh::add_route(h, message).await
                        };
                        added.map_err(nl(format!("add route {route}")))
                    },
                ))
                .await?;
                ctx.phases.mark("routes");
            }
            Fix::DelRoute { route, message } => {
                nlh::delete_route(h, message)
                    .await
                    .map_err(nl(format!("delete route {route}")))?;
                ctx.phases.mark("routes");
            }
            Fix::Attach { ifname, .. } => {
                let Some(i) = snap.index_of(&ifname) else {
                    continue;
                };
                if maps.record.mode == MODE_TCX {
                    let prog = ctx.prog(maps, ProgKind::Egress)?;
                    bpf::attach_tcx(prog, ProgKind::Egress, &ifname, &dir.if_link(&ifname))?;
                } else {
                    let prog = ctx.prog(maps, ProgKind::Egress)?;
                    let added = bpf::attach_filter(h, prog, ProgKind::Egress, &ifname, i).await?;
                    let st = maps.state.get(&ifname).unwrap_or_default();
                    let flags = st.flags | NL_FILTER | if added { NL_QDISC_ADDED } else { 0 };
                    maps.put_state(
                        &ifname,
                        IfaceState {
                            ifindex: i,
                            flags,
                            ..st
                        },
                    )?;
                }
                ctx.phases.mark("attach");
                maps.ensure_counters(&ifname, i)?;
                ctx.phases.mark("maps");
            }
            Fix::Detach { ifname, tcx: true } => {
                remove_pin(&dir.if_link(&ifname))?;
                let st = maps.state.get(&ifname).unwrap_or_default();
                maps.put_state(
                    &ifname,
                    IfaceState {
                        flags: st.flags & !super::state::COUNTED,
                        ..st
                    },
                )?;
                ctx.phases.mark("detach");
            }
            Fix::Detach { ifname, tcx: false } => {
                let st = maps.state.get(&ifname).unwrap_or_default();
                if snap.index_of(&ifname) == Some(st.ifindex) {
                    bpf::detach_filter(h, &ifname, st.ifindex, st.flags & NL_QDISC_ADDED != 0)
                        .await?;
                }
                let flags = st.flags & !(NL_FILTER | NL_QDISC_ADDED | super::state::COUNTED);
                maps.put_state(&ifname, IfaceState { flags, ..st })?;
                ctx.phases.mark("detach");
            }
            Fix::LooseRpFilter { ifname, own } => {
                let mut st = maps.state.get(&ifname).unwrap_or_default();
                if st.flags & RP_FILTER_CHANGED == 0 {
                    st.rp_filter_orig = own;
                    st.flags |= RP_FILTER_CHANGED;
                    if st.ifindex == 0 {
                        st.ifindex = snap.index_of(&ifname).unwrap_or(0);
                    }
                    maps.put_state(&ifname, st)?;
                }
                sysctl::write(&conf_path("ipv4", &ifname, "rp_filter"), 2)?;
                ctx.phases.mark("config");
            }
            Fix::RestoreRpFilter { ifname, orig } => {
                restore_rp_filter(&ifname, orig, snap)?;
                let st = maps.state.get(&ifname).unwrap_or_default();
                maps.put_state(
                    &ifname,
                    IfaceState {
                        flags: st.flags & !RP_FILTER_CHANGED,
                        ..st
                    },
                )?;
                ctx.phases.mark("config");
            }
            Fix::AddNeighbour { ifindex, addr } => {
                nlh::add_managed_neighbour(h, ifindex, addr, carrier::RTPROT_SBR)
                    .await
                    .map_err(nl(format!("add managed neighbour {addr}")))?;
                ctx.phases.mark("config");
            }
            Fix::DelNeighbour { ifindex, addr } => {
                nlh::delete_neighbour(h, ifindex, addr)
                    .await
                    .map_err(nl(format!("delete neighbour {addr}")))?;
                ctx.phases.mark("config");
            }
        }
    }
    Ok(None)
}

/// Creates the carrier, with its peer in a new anchor namespace (or, when no anchor can be made,
/// in the pod: then deleting it later waits for the kernel).
async fn create_carrier(
    h: &Handle,
    mtu: u32,
    maps: &mut PodMaps,
    ctx: &mut Ctx<'_>,
) -> Result<LinkDetail, SbrError> {
    // An anchor left from a carrier deleted behind SBR's back is empty: drop it.
    unmount_anchor(&ctx.dir.anchor())?;
    let mut record = maps.record;
    record.flags &= !POD_ANCHORED;
    let made = anchor::new_namespace();
    let anchor = match made.and_then(|f| anchor::mount(&f, &ctx.dir.anchor()).map(|()| f)) {
        Ok(f) => {
            record.flags |= POD_ANCHORED;
            Some(f)
        }
        Err(e) => {
            tracing::warn!("sbr: {e}; the carrier's peer stays in the pod");
            None
        }
    };
    maps.set_record(record)?;
    ctx.phases.mark("anchor");
    let created = carrier::create(h, mtu, anchor.as_ref()).await;
    ctx.phases.mark("device");
    if created.is_err() && anchor.is_some() {
        unmount_anchor(&ctx.dir.anchor())?;
        record.flags &= !POD_ANCHORED;
        maps.set_record(record)?;
    }
    created
}

/// Removes the carrier at `index` (0: no device, only leftovers): an anchored one is retired (set
/// down and renamed, at once) and its anchor unmounted (`unmount`; otherwise the caller removes
/// the pod's pins later), so the kernel deletes it in the background; one without an anchor is
/// deleted, which waits for the kernel.
async fn remove_carrier(
    h: &Handle,
    index: u32,
    maps: &mut PodMaps,
    dir: &PodDir,
    unmount: bool,
) -> Result<(), SbrError> {
    let anchored = maps.record.flags & POD_ANCHORED != 0;
    if index != 0 {
        if anchored {
            carrier::retire(h, index).await?;
        } else {
            nlh::delete_link(h, index)
                .await
                .map_err(nl(format!("delete {CARRIER_IFNAME}")))?;
        }
    }
    maps.remove_state(CARRIER_IFNAME)?;
    if anchored && unmount {
        unmount_anchor(&dir.anchor())?;
        let mut record = maps.record;
        record.flags &= !POD_ANCHORED;
        maps.set_record(record)?;
    }
    // A TCX link of the carrier made by an earlier version.
    remove_pin(&dir.carrier_link())
}

/// Puts an interface's rp_filter back, unless the interface is gone or someone changed it since.
fn restore_rp_filter(ifname: &str, orig: u32, snap: &Snapshot) -> Result<(), SbrError> {
    if snap.index_of(ifname).is_none() {
        return Ok(());
    }
    restore_rp_filter_of(ifname, orig)
}

/// Puts an existing interface's rp_filter back, unless someone changed it since.
fn restore_rp_filter_of(ifname: &str, orig: u32) -> Result<(), SbrError> {
    let path = conf_path("ipv4", ifname, "rp_filter");
    if sysctl::read(&path)? == 2 {
        sysctl::write(&path, orig)?;
    }
    Ok(())
}

/// Plans and fixes the pod until nothing is left to fix, from the snapshot the caller read;
/// returns the final plan. The pod is read once: after creating the carrier the snapshot is
/// completed rather than read again, and fixes that applied without error are not read back
/// (CHECK does that).
pub async fn converge_from(
    h: &Handle,
    maps: &mut PodMaps,
    ctx: &mut Ctx<'_>,
    mut snap: Snapshot,
) -> Result<PodPlan, SbrError> {
    const ROUNDS: usize = 4;
    for _ in 0..ROUNDS {
        forget_released_gone(&snap, maps)?;
        let plan = plan_for(&snap, maps);
        let fixes = diff(&plan, &snap, maps, ctx)?;
        if fixes.is_empty() {
            return Ok(plan);
        }
        tracing::debug!(?fixes, "sbr: applying");
        match apply(h, fixes, &snap, maps, ctx).await? {
            None => return Ok(plan),
            Some(carrier) => {
                snap.add_new_carrier(h, carrier).await?;
                ctx.phases.mark("read");
            }
        }
    }
    let left = diff(&plan_for(&snap, maps), &snap, maps, ctx)?;
    Err(SbrError::Drift(
        left.iter().map(|f| f.drift(ctx.dir)).collect(),
    ))
}

/// Forgets released interfaces that no longer exist (or were recreated with another index).
fn forget_released_gone(snap: &Snapshot, maps: &mut PodMaps) -> Result<(), SbrError> {
    for (ifname, st) in maps.state.all() {
        if st.flags & RELEASED != 0 && snap.index_of(&ifname) != Some(st.ifindex) {
            maps.remove_state(&ifname)?;
        }
    }
    Ok(())
}

/// Interfaces DEL released that still exist as they were.
fn released(snap: &Snapshot, maps: &PodMaps) -> Vec<String> {
    maps.state
        .all()
        .into_iter()
        .filter(|(name, st)| st.flags & RELEASED != 0 && snap.index_of(name) == Some(st.ifindex))
        .map(|(name, _)| name)
        .collect()
}

/// Plans the pod from a snapshot, the current source entries and the released interfaces.
pub fn plan_for(snap: &Snapshot, maps: &PodMaps) -> PodPlan {
    let entries = maps.entries();
    let released = released(snap, maps);
    plan_pod(&PodFacts {
        entries: &entries,
        links: &snap.links,
        main4: &snap.main4,
        main6: &snap.main6,
        carrier: snap.carrier.as_ref().map(|c| c.link.index),
        v4_default_src: snap.v4_default_src,
        released: &released,
    })
}

/// Undoes everything SBR did in the pod when its last interface goes: the carrier (retired at once
/// when anchored: down, so its routes go, and renamed; the kernel deletes it once the caller
/// removes the pod's pins), SBR's neighbour entries, the rp_filter values it changed, and its
/// netlink filters. Link pins are removed by the caller afterwards (the kernel detaches them in the
/// background), after the pod's map entries, which go only once no route leads to the carrier.
pub async fn teardown(h: &Handle, maps: &mut PodMaps, ctx: &mut Ctx<'_>) -> Result<(), SbrError> {
    // Only links and SBR's neighbours matter here (routes go with the carrier).
    let links = nlh::link_details(h).await.map_err(nl("list links"))?;
    let neighbours: Vec<nlh::Neighbour> = nlh::neighbours(h)
        .await
        .map_err(nl("list neighbours"))?
        .into_iter()
        .filter(|n| n.protocol == carrier::RTPROT_SBR)
        .collect();
    let index_of = |name: &str| {
        links
            .iter()
            .find(|l| l.link.name == name)
            .map(|l| l.link.index)
    };
    ctx.phases.mark("read");
    match links.iter().find(|l| l.link.name == CARRIER_IFNAME) {
        Some(c) if c.noarp => remove_carrier(h, c.link.index, maps, ctx.dir, false).await?,
        _ => remove_carrier(h, 0, maps, ctx.dir, false).await?,
    }
    ctx.phases.mark("device");
    for n in &neighbours {
        nlh::delete_neighbour(h, n.ifindex, n.addr)
            .await
            .map_err(nl(format!("delete neighbour {}", n.addr)))?;
    }
    for (ifname, st) in maps.state.all() {
        if st.flags & RP_FILTER_CHANGED != 0 && index_of(&ifname).is_some() {
            restore_rp_filter_of(&ifname, st.rp_filter_orig)?;
        }
    }
    ctx.phases.mark("config");
    for (ifname, st) in maps.state.all() {
        if st.flags & NL_FILTER != 0 && index_of(&ifname) == Some(st.ifindex) {
            bpf::detach_filter(h, &ifname, st.ifindex, st.flags & NL_QDISC_ADDED != 0).await?;
        }
    }
    ctx.phases.mark("detach");
    Ok(())
}
