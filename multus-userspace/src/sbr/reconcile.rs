//! Brings a pod in line with its plan: read the pod (snapshot), plan it from its source entries
//! ([`super::plan::plan_pod`]), list the differences as fixes, apply them, and repeat until nothing
//! is left to fix. CHECK runs the same comparison and reports the fixes as drift instead.

use std::{collections::BTreeSet, net::IpAddr};

use netlink_packet_route::route::RouteMessage;
use rtnetlink::Handle;

use super::{
    bpf::{self, PodMaps, BPF_TCX_EGRESS},
    carrier,
    error::nl,
    pins::{remove_pin, PodDir, ProgKind},
    plan::{main_default, plan_pod, CarrierRoute, PodFacts, PodPlan},
    state::{IfaceState, RELEASED, RP_FILTER_CHANGED},
    sysctl::{self, conf_path},
    Drift, SbrError, CARRIER_IFNAME,
};
use crate::netns::netlink::{self as nlh, route_pref_source, LinkDetail, Route};

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
}

impl Snapshot {
    /// Reads the pod.
    pub async fn read(h: &Handle) -> Result<Self, SbrError> {
        let links = nlh::link_details(h).await.map_err(nl("list links"))?;
        let carrier = links.iter().find(|l| l.link.name == CARRIER_IFNAME).cloned();
        let cidx = carrier.as_ref().map(|c| c.link.index);
        let (carrier4, main4): (Vec<_>, Vec<_>) = nlh::main_routes(h, false)
            .await
            .map_err(nl("list IPv4 routes"))?
            .into_iter()
            .partition(|r| r.oif.is_some() && r.oif == cidx);
        let (carrier6, main6): (Vec<_>, Vec<_>) = nlh::main_routes(h, true)
            .await
            .map_err(nl("list IPv6 routes"))?
            .into_iter()
            .partition(|r| r.oif.is_some() && r.oif == cidx);
        let carrier_local6 = match cidx {
            Some(c) => nlh::table_routes(h, true, u32::from(libc::RT_TABLE_LOCAL))
                .await
                .map_err(nl("list local IPv6 routes"))?
                .into_iter()
                .filter(|r| r.oif == Some(c))
                .collect(),
            None => Vec::new(),
        };
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
        Ok(Self { links, main4, main6, carrier, carrier_routes, carrier_local6, v4_default_src, neighbours })
    }

    /// The index of a link by name.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.links.iter().find(|l| l.link.name == name).map(|l| l.link.index)
    }
}

/// The source the kernel picks for the default route: ask it about the gateway (or, for a device
/// route, use the interface's first IPv4 address).
async fn default_source(h: &Handle, gateway: &Option<IpAddr>, oif: u32) -> Result<Option<IpAddr>, SbrError> {
    if let Some(gw) = gateway {
        let reply = nlh::route_get(h, *gw, Some(oif)).await.map_err(nl(format!("route get {gw}")))?;
        if let Some(src) = reply.as_ref().and_then(route_pref_source) {
            return Ok(Some(src));
        }
    }
    let addrs = nlh::addresses(h, Some(oif)).await.map_err(nl("list addresses"))?;
    Ok(addrs.iter().map(|a| a.addr).find(IpAddr::is_ipv4))
}

/// One difference between the plan and the pod, and how to remove it.
#[derive(Debug)]
pub enum Fix {
    /// Write a defaults-map entry.
    SetDefault { index: u32, expected: multus_common::DefaultRoute, actual: multus_common::DefaultRoute },
    /// Create the carrier.
    CreateCarrier { mtu: u32 },
    /// Delete the carrier (with its routes) and its link pin.
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
    AddRoute { route: CarrierRoute, oif: u32 },
    /// Delete a carrier route.
    DelRoute { route: CarrierRoute, message: RouteMessage },
    /// Attach the egress program to a real interface.
    Attach { ifname: String, reason: String },
    /// Remove the link pin of an interface that should have none.
    Detach { ifname: String },
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
            Fix::SetDefault { index, expected, actual } => Drift::DefaultDiffers {
                family: if *index == 0 { 4 } else { 6 },
                expected: format!("{expected:?}"),
                actual: format!("{actual:?}"),
            },
            Fix::CreateCarrier { .. } => Drift::Carrier(format!("{CARRIER_IFNAME} missing")),
            Fix::DeleteCarrier { .. } => {
                Drift::Carrier(format!("{CARRIER_IFNAME} exists but nothing is routed through it"))
            }
            Fix::CarrierMtu { mtu, actual, .. } => Drift::Carrier(format!("MTU {actual}, expected {mtu}")),
            Fix::CarrierUp => Drift::Carrier("down".into()),
            Fix::CarrierForeign => Drift::Carrier(format!("{CARRIER_IFNAME} is not a NOARP device made by SBR")),
            Fix::AttachCarrier { reason } => {
                Drift::NotAttached { ifname: CARRIER_IFNAME.into(), reason: reason.clone() }
            }
            Fix::AddRoute { route, .. } => Drift::RouteMissing(route.to_string()),
            Fix::DelRoute { route, .. } => Drift::RouteExtra(route.to_string()),
            Fix::Attach { ifname, reason } => Drift::NotAttached { ifname: ifname.clone(), reason: reason.clone() },
            Fix::Detach { ifname } => Drift::PinExtra(dir.if_link(ifname)),
            Fix::LooseRpFilter { ifname, .. } => Drift::RpFilterStrict(ifname.clone()),
            Fix::RestoreRpFilter { ifname, orig } => Drift::Carrier(format!(
                "rp_filter of {ifname} still changed (original {orig}) without IPv4 carrier routes"
            )),
            Fix::AddNeighbour { ifindex, addr } => Drift::NeighbourMissing(format!("{addr} on ifindex {ifindex}")),
            Fix::DelNeighbour { ifindex, addr } => Drift::NeighbourExtra(format!("{addr} on ifindex {ifindex}")),
        }
    }
}

/// Why the pinned link at `pin` is not the expected attachment (None when it is).
fn link_problem(pin: &std::path::Path, ifindex: u32, prog_id: u32) -> Option<String> {
    if !pin.exists() {
        return Some("no link pin".into());
    }
    match bpf::link_target(pin) {
        Err(e) => Some(e.to_string()),
        Ok(t) if t.ifindex == 0 => Some("link detached (interface gone)".into()),
        Ok(t) if t.ifindex != ifindex => Some(format!("link on ifindex {}, expected {ifindex}", t.ifindex)),
        Ok(t) if t.attach_type != BPF_TCX_EGRESS => Some(format!("link attach type {}", t.attach_type)),
        Ok(t) if t.prog_id != prog_id => Some(format!("link runs program {}, expected {prog_id}", t.prog_id)),
        Ok(_) => None,
    }
}

/// Lists the fixes that would bring the pod in line with `plan`.
pub fn diff(plan: &PodPlan, snap: &Snapshot, maps: &PodMaps, dir: &PodDir) -> Result<Vec<Fix>, SbrError> {
    let mut fixes = Vec::new();
    for (index, expected) in plan.defaults.iter().enumerate() {
        let index = index as u32;
        let actual = maps.default_entry(index)?;
        if actual != *expected {
            fixes.push(Fix::SetDefault { index, expected: *expected, actual });
        }
    }

    match (&plan.carrier, &snap.carrier) {
        // A device of that name that is not NOARP was not made by SBR: leave it alone.
        (None, Some(c)) if c.noarp => fixes.push(Fix::DeleteCarrier { index: c.link.index }),
        (None, Some(_)) => {}
        (None, None) => {
            if dir.carrier_link().exists() {
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
                fixes.push(Fix::CarrierMtu { index: idx, mtu: cp.mtu, actual: c.link.mtu });
            }
            if !c.link.up || !c.lower_up {
                fixes.push(Fix::CarrierUp);
            }
            if let Some(reason) = link_problem(&dir.carrier_link(), idx, bpf::prog_id(dir, ProgKind::Carrier)?) {
                fixes.push(Fix::AttachCarrier { reason });
            }
            let existing: Vec<(CarrierRoute, &Route)> =
                snap.carrier_routes.iter().map(|r| (carrier::parse_route(r), r)).collect();
            let have: BTreeSet<&CarrierRoute> = existing.iter().map(|(c, _)| c).collect();
            for route in &cp.routes {
                if !have.contains(route) {
                    fixes.push(Fix::AddRoute { route: route.clone(), oif: idx });
                }
            }
            for (route, r) in &existing {
                if !cp.routes.contains(route) {
                    fixes.push(Fix::DelRoute { route: route.clone(), message: r.message.clone() });
                }
            }
            for r in &snap.carrier_local6 {
                fixes.push(Fix::DelRoute { route: carrier::parse_route(r), message: r.message.clone() });
            }
        }
    }

    let egress_id = if plan.attach.is_empty() { 0 } else { bpf::prog_id(dir, ProgKind::Egress)? };
    for (ifname, index) in &plan.attach {
        if let Some(reason) = link_problem(&dir.if_link(ifname), *index, egress_id) {
            fixes.push(Fix::Attach { ifname: ifname.clone(), reason });
        }
    }
    for (ifname, _) in dir.if_links()? {
        if !plan.attach.iter().any(|(n, _)| *n == ifname) {
            fixes.push(Fix::Detach { ifname });
        }
    }

    for ifname in &plan.loose_rp_filter {
        let (own, effective) = sysctl::rp_filter(ifname)?;
        if effective == 1 {
            fixes.push(Fix::LooseRpFilter { ifname: ifname.clone(), own });
        }
    }
    for (ifname, st) in maps.state.all() {
        if st.flags & RP_FILTER_CHANGED != 0 && !plan.loose_rp_filter.contains(&ifname) {
            fixes.push(Fix::RestoreRpFilter { ifname, orig: st.rp_filter_orig });
        }
    }

    for &(ifindex, addr) in &plan.neighbours {
        if !snap.neighbours.iter().any(|n| n.ifindex == ifindex && n.addr == addr && n.managed) {
            fixes.push(Fix::AddNeighbour { ifindex, addr });
        }
    }
    for n in &snap.neighbours {
        if !plan.neighbours.contains(&(n.ifindex, n.addr)) {
            fixes.push(Fix::DelNeighbour { ifindex: n.ifindex, addr: n.addr });
        }
    }
    Ok(fixes)
}

/// Applies fixes in order.
pub async fn apply(
    h: &Handle,
    fixes: Vec<Fix>,
    snap: &Snapshot,
    maps: &mut PodMaps,
    dir: &PodDir,
) -> Result<(), SbrError> {
    for fix in fixes {
        match fix {
            Fix::SetDefault { index, expected, .. } => maps.set_default(index, expected)?,
            Fix::CreateCarrier { mtu } => {
                carrier::create(h, mtu).await?;
                // Indices changed: the caller reads the pod again before anything else.
                return Ok(());
            }
            Fix::DeleteCarrier { index } => {
                remove_pin(&dir.carrier_link())?;
                if index != 0 {
                    maps.remove_counters(index)?;
                    nlh::delete_link(h, index).await.map_err(nl(format!("delete {CARRIER_IFNAME}")))?;
                }
            }
            Fix::CarrierMtu { index, mtu, .. } => {
                nlh::set_link_mtu(h, index, mtu).await.map_err(nl(format!("set {CARRIER_IFNAME} MTU")))?
            }
            Fix::CarrierUp => {
                for name in [super::CARRIER_PEER_IFNAME, CARRIER_IFNAME] {
                    if let Some(i) = snap.index_of(name) {
                        nlh::set_link_up(h, i).await.map_err(nl(format!("set {name} up")))?;
                    }
                }
            }
            Fix::CarrierForeign => {
                return Err(SbrError::Drift(vec![Fix::CarrierForeign.drift(dir)]));
            }
            Fix::AttachCarrier { .. } => {
                bpf::attach(dir, ProgKind::Carrier, CARRIER_IFNAME, &dir.carrier_link())?;
                if let Some(i) = snap.index_of(CARRIER_IFNAME) {
                    maps.ensure_counters(i)?;
                }
            }
            Fix::AddRoute { route, oif } => nlh::add_route(h, carrier::route_message(&route, oif))
                .await
                .map_err(nl(format!("add route {route}")))?,
            Fix::DelRoute { route, message } => {
                nlh::delete_route(h, message).await.map_err(nl(format!("delete route {route}")))?
            }
            Fix::Attach { ifname, .. } => {
                bpf::attach(dir, ProgKind::Egress, &ifname, &dir.if_link(&ifname))?;
                if let Some(i) = snap.index_of(&ifname) {
                    maps.ensure_counters(i)?;
                }
            }
            Fix::Detach { ifname } => remove_pin(&dir.if_link(&ifname))?,
            Fix::LooseRpFilter { ifname, own } => {
                let mut st = maps.state.get(&ifname).unwrap_or_default();
                if st.flags & RP_FILTER_CHANGED == 0 {
                    st.rp_filter_orig = own;
                    st.flags |= RP_FILTER_CHANGED;
                    if st.ifindex == 0 {
                        st.ifindex = snap.index_of(&ifname).unwrap_or(0);
                    }
                    maps.state.put(&ifname, st)?;
                }
                sysctl::write(&conf_path("ipv4", &ifname, "rp_filter"), 2)?;
            }
            Fix::RestoreRpFilter { ifname, orig } => {
                restore_rp_filter(&ifname, orig, snap)?;
                let st = maps.state.get(&ifname).unwrap_or_default();
                maps.state.put(&ifname, IfaceState { flags: st.flags & !RP_FILTER_CHANGED, ..st })?;
            }
            Fix::AddNeighbour { ifindex, addr } => nlh::add_managed_neighbour(h, ifindex, addr, carrier::RTPROT_SBR)
                .await
                .map_err(nl(format!("add managed neighbour {addr}")))?,
            Fix::DelNeighbour { ifindex, addr } => {
                nlh::delete_neighbour(h, ifindex, addr).await.map_err(nl(format!("delete neighbour {addr}")))?
            }
        }
    }
    Ok(())
}

/// Puts an interface's rp_filter back, unless the interface is gone or someone changed it since.
fn restore_rp_filter(ifname: &str, orig: u32, snap: &Snapshot) -> Result<(), SbrError> {
    if snap.index_of(ifname).is_none() {
        return Ok(());
    }
    let path = conf_path("ipv4", ifname, "rp_filter");
    if sysctl::read(&path)? == 2 {
        sysctl::write(&path, orig)?;
    }
    Ok(())
}

/// Reads, plans and fixes the pod until nothing is left to fix; returns the final plan.
pub async fn converge(h: &Handle, maps: &mut PodMaps, dir: &PodDir) -> Result<PodPlan, SbrError> {
    const ROUNDS: usize = 4;
    for _ in 0..ROUNDS {
        let snap = Snapshot::read(h).await?;
        forget_released_gone(&snap, maps)?;
        let plan = plan_for(&snap, maps);
        let fixes = diff(&plan, &snap, maps, dir)?;
        if fixes.is_empty() {
            return Ok(plan);
        }
        tracing::debug!(?fixes, "sbr: applying");
        apply(h, fixes, &snap, maps, dir).await?;
    }
    let snap = Snapshot::read(h).await?;
    let plan = plan_for(&snap, maps);
    let left = diff(&plan, &snap, maps, dir)?;
    if left.is_empty() {
        Ok(plan)
    } else {
        Err(SbrError::Drift(left.iter().map(|f| f.drift(dir)).collect()))
    }
}

/// Forgets released interfaces that no longer exist (or were recreated with another index).
fn forget_released_gone(snap: &Snapshot, maps: &mut PodMaps) -> Result<(), SbrError> {
    for (ifname, st) in maps.state.all() {
        if st.flags & RELEASED != 0 && snap.index_of(&ifname) != Some(st.ifindex) {
            maps.state.remove(&ifname)?;
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

/// Undoes everything SBR did in the pod when its last interface goes: deletes the carrier (its
/// routes and its TCX link go with it), SBR's neighbour entries, and puts back the rp_filter values
/// it changed. The caller removes the pins afterwards: the kernel detaches the links of the real
/// interfaces asynchronously, so no netlink request waits behind that.
pub async fn teardown(h: &Handle, maps: &mut PodMaps) -> Result<(), SbrError> {
    let snap = Snapshot::read(h).await?;
    if let Some(c) = &snap.carrier {
        if c.noarp {
            nlh::delete_link(h, c.link.index).await.map_err(nl(format!("delete {CARRIER_IFNAME}")))?;
        }
    }
    for n in &snap.neighbours {
        nlh::delete_neighbour(h, n.ifindex, n.addr).await.map_err(nl(format!("delete neighbour {}", n.addr)))?;
    }
    for (ifname, st) in maps.state.all() {
        if st.flags & RP_FILTER_CHANGED != 0 {
            restore_rp_filter(&ifname, st.rp_filter_orig, &snap)?;
        }
    }
    Ok(())
}
