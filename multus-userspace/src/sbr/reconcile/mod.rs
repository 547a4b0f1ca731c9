//! Brings a pod in line with its plan: read the pod ([`snapshot`]), plan it from its source entries
//! ([`super::plan::plan_pod`]), list the differences as fixes ([`mod@diff`], pure), apply them, and
//! repeat until nothing is left to fix. CHECK runs the same comparison and reports the fixes as
//! drift instead.

pub mod diff;
pub mod snapshot;

pub use diff::{diff, Facts, Fix};
pub use snapshot::Snapshot;

use aya::programs::tc::SchedClassifier;
use rtnetlink::Handle;

use super::{
    anchor,
    bpf::{self, PodMaps},
    carrier,
    error::{nl, SbrError},
    pins::{remove_pin, unmount_anchor, PodDir},
    plan::{plan_pod, PodFacts, PodPlan},
    programs::ProgKind,
    state::{
        IfaceState, MODE_TCX, NL_FILTER, NL_QDISC_ADDED, POD_ANCHORED, RELEASED, RP_FILTER_CHANGED,
    },
    sysctl::{self, conf_path},
    timing::Phases,
    types::{CARRIER_IFNAME, CARRIER_PEER_IFNAME},
};
use crate::{
    fault,
    netns::netlink::{self as nlh, LinkDetail},
};

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
                fault::point("add.sbr.routes-added");
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
                fault::point("add.sbr.attached");
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
                fault::point("add.sbr.rp-filter-loosened");
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
    if created.is_ok() {
        fault::point("add.sbr.carrier-created");
    }
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
        let facts = Facts::read(&plan, &snap, maps, ctx)?;
        let fixes = diff(&plan, &snap, &facts);
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
    let plan = plan_for(&snap, maps);
    let left = diff(&plan, &snap, &Facts::read(&plan, &snap, maps, ctx)?);
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
    fault::point("del.sbr.carrier-removed");
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
    fault::point("del.sbr.config-restored");
    for (ifname, st) in maps.state.all() {
        if st.flags & NL_FILTER != 0 && index_of(&ifname) == Some(st.ifindex) {
            bpf::detach_filter(h, &ifname, st.ifindex, st.flags & NL_QDISC_ADDED != 0).await?;
        }
    }
    ctx.phases.mark("detach");
    fault::point("del.sbr.detached");
    Ok(())
}
