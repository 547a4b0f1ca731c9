//! DEL: undoes ADD for one interface ([`del`]), and everything of the pod with its last one.

use crate::{cni::ContainerId, fault};
use std::path::Path;

use super::bpf::PodMaps;
use super::error::SbrError;
use super::node::{drop_unused_version, drop_unused_versions, on_node};
use super::pins::{remove_pin, validate_ifname, Lock, PodDir};
use super::reconcile::{self, Ctx, Snapshot};
use super::state::{self, IfaceState, MANAGED, RELEASED, RP_FILTER_CHANGED};
use super::timing::{Phase, Phases};
use super::types::SbrConfig;
use crate::netns::{mountns::IfUnknown, NetNs, NetnsError};

/// Undoes ADD for one interface. Idempotent, and succeeds when the namespace or the link is already
/// gone. With the pod's last interface, the carrier, its routes, the rp_filter changes, the pod's
/// entries in the node-wide maps and all its pins go too, and the programs when no other pod uses
/// them.
pub fn del(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<(), SbrError> {
    del_timed(cfg, container_id, netns, ifname).map(|_| ())
}

/// [`del`], returning where its time went.
pub fn del_timed(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<Vec<Phase>, SbrError> {
    on_node(IfUnknown::RunHere, || {
        del_here(cfg, container_id, netns, ifname)
    })
}

fn del_here(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<Vec<Phase>, SbrError> {
    let phases = Phases::new();
    validate_ifname(ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id);
    if !cfg.bpffs_dir.is_dir() {
        return Ok(phases.take());
    }
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    phases.mark("lock");
    if !dir.exists() {
        // Nothing of the pod, but maybe the programs its ADD loaded before dying.
        return drop_unused_versions(&cfg.bpffs_dir).map(|()| phases.take());
    }
    let mut maps = match PodMaps::open(&dir, &cfg.bpffs_dir) {
        Ok(m) => m,
        Err(e) => {
            // Half-made pod (ADD died before its maps were pinned), or its programs were removed
            // by hand: nothing else can be undone; GC sweeps the node maps.
            tracing::warn!("sbr: {e}; removing {}", dir.path().display());
            dir.remove()?;
            return drop_unused_versions(&cfg.bpffs_dir).map(|()| phases.take());
        }
    };
    phases.mark("pod");
    let ns = match netns.map(NetNs::open) {
        Some(Ok(ns)) => Some(ns),
        // Gone, or the path no longer names a namespace: nothing to undo inside it.
        Some(Err(NetnsError::NotFound(_) | NetnsError::NotNetns(_))) | None => None,
        Some(Err(e)) => return Err(e.into()),
    };
    let recorded = maps.state.get(ifname).map(|s| s.ifindex);
    let last = maps
        .entries()
        .iter()
        .all(|(_, r)| Some(r.ifindex) == recorded);
    let done_in_ns = match ns {
        Some(ns) => {
            let (maps, dir, phases) = (&mut maps, &dir, &phases);
            ns.netlink(|h| async move {
                // The path may name another namespace by now: only the pod's own is touched.
                if !crate::netns::current_netns_is(maps.cookie()) {
                    return Ok(false);
                }
                let mut ctx = Ctx::new(dir, phases);
                if last {
                    reconcile::teardown(&h, maps, &mut ctx).await?;
                } else {
                    remove_in_ns(&h, ifname, maps, &mut ctx).await?;
                }
                Ok::<_, SbrError>(true)
            })??
        }
        None => false,
    };
    if !done_in_ns {
        forget_interface(&mut maps, ifname, None)?;
        maps.remove_state(ifname)?;
        remove_pin(&dir.if_link(ifname))?;
    }
    if last || maps.entries().is_empty() {
        // Entries go only now that no route leads to the carrier; then the pins (the kernel
        // deletes the retired carrier and detaches the TCX links in the background).
        maps.purge()?;
        phases.mark("maps");
        fault::point("del.sbr.maps-purged");
        dir.remove()?;
        fault::point("del.sbr.pins-removed");
        drop_unused_version(&cfg.bpffs_dir, &maps.progs)?;
        phases.mark("pins");
    }
    Ok(phases.take())
}

/// Removes an interface's entries and counters and its MANAGED mark (keeping a recorded rp_filter
/// change for the restore); returns its previous record.
pub(super) fn forget_interface(
    maps: &mut PodMaps,
    ifname: &str,
    current: Option<u32>,
) -> Result<IfaceState, SbrError> {
    let previous = maps.state.get(ifname).unwrap_or_default();
    let indices: Vec<u32> = [Some(previous.ifindex).filter(|i| *i != 0), current]
        .into_iter()
        .flatten()
        .collect();
    for (k, r) in maps.entries() {
        if indices.contains(&r.ifindex) {
            maps.remove_entry(&k)?;
        }
    }
    maps.state.put(
        ifname,
        IfaceState {
            flags: previous.flags & !MANAGED,
            ..previous
        },
    )?;
    Ok(previous)
}

/// Removes an interface's share inside the namespace and converges the rest of the pod. An
/// interface that still exists is marked released so it gets no program until it is added again.
pub(super) async fn remove_in_ns(
    h: &rtnetlink::Handle,
    ifname: &str,
    maps: &mut PodMaps,
    ctx: &mut Ctx<'_>,
) -> Result<(), SbrError> {
    let snap = Snapshot::read(h, maps).await?;
    ctx.phases.mark("read");
    let previous = forget_interface(maps, ifname, None)?;
    let keep = previous.flags
        & (RP_FILTER_CHANGED | state::COUNTED | state::NL_FILTER | state::NL_QDISC_ADDED);
    match snap.index_of(ifname) {
        Some(index) if index == previous.ifindex || previous.ifindex == 0 => maps.put_state(
            ifname,
            IfaceState {
                ifindex: index,
                flags: RELEASED | keep,
                ..previous
            },
        )?,
        Some(index) => maps.put_state(
            ifname,
            IfaceState {
                ifindex: index,
                flags: RELEASED,
                ..previous
            },
        )?,
        None => maps.remove_state(ifname)?,
    }
    ctx.phases.mark("maps");
    // The converge detaches the program (a TCX link pin is removed last).
    reconcile::converge_from(h, maps, ctx, snap).await?;
    Ok(())
}
