//! The read half of a reconciliation: the pod's links, routes, neighbours and filters
//! ([`Snapshot`], read once per operation) and what its record, maps, pins and sysctls say
//! ([`Facts`], read right before each [`super::diff::diff`], since applying fixes changes them).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use rtnetlink::Handle;

use super::super::{
    bpf::{self, PodMaps},
    carrier,
    error::{describe, nl, SbrError},
    plan::{is_real_interface, main_default, PodPlan},
    programs::ProgKind,
    state::{MODE_TCX, POD_ANCHORED},
    sysctl,
    types::{CARRIER_IFNAME, CARRIER_PEER_IFNAME},
};
use super::{diff::Facts, Ctx};
use crate::netns::netlink::{self as nlh, route_pref_source, route_table, LinkDetail, Route};

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
    pub(super) async fn add_new_carrier(
        &mut self,
        h: &Handle,
        link: LinkDetail,
    ) -> Result<(), SbrError> {
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

impl Facts {
    /// Reads what [`super::diff::diff`] compares against `plan` besides `snap`. Only what the
    /// comparison needs is read: a program id when something should run it, a TCX link's target
    /// for the interfaces the plan attaches, the rp_filter of the interfaces it wants loose.
    pub fn read(
        plan: &PodPlan,
        snap: &Snapshot,
        maps: &PodMaps,
        ctx: &mut Ctx<'_>,
    ) -> Result<Self, SbrError> {
        let dir = ctx.dir;
        let tcx = maps.record.mode == MODE_TCX;
        let defaults = [maps.default_entry(0)?, maps.default_entry(1)?];
        let carrier_prog = match (&plan.carrier, &snap.carrier) {
            (Some(_), Some(c)) if c.noarp => ctx.prog_id(maps, ProgKind::Carrier)?,
            _ => 0,
        };
        let egress_prog = if plan.attach.is_empty() {
            0
        } else {
            ctx.prog_id(maps, ProgKind::Egress)?
        };
        let link_pins: BTreeSet<String> =
            dir.if_links()?.into_iter().map(|(name, _)| name).collect();
        let links = if tcx {
            plan.attach
                .iter()
                .filter(|(name, _)| link_pins.contains(name))
                .map(|(name, _)| {
                    let target = bpf::link_target(&dir.if_link(name)).map_err(|e| describe(&e));
                    (name.clone(), target)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let rp_filter = plan
            .loose_rp_filter
            .iter()
            .map(|name| Ok((name.clone(), sysctl::rp_filter(name)?)))
            .collect::<Result<_, SbrError>>()?;
        Ok(Self {
            tcx,
            anchored: maps.record.flags & POD_ANCHORED != 0,
            carrier_link_pin: dir.carrier_link().exists(),
            defaults,
            carrier_prog,
            egress_prog,
            link_pins,
            links,
            records: maps.state.all(),
            rp_filter,
        })
    }
}
