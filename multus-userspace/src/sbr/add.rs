//! ADD: routes packets sourced from an interface's addresses out of that interface ([`add`]), and
//! undoes exactly what a failed ADD did.

use crate::{cni::ContainerId, fault};
use std::{net::IpAddr, path::Path};

use super::bpf::PodMaps;
use super::carrier;
use super::del::{forget_interface, remove_in_ns};
use super::error::{nl, SbrError};
use super::inspect::SourceEntry;
use super::node::{drop_pod, netns_cookie, on_node};
use super::pins::{self, validate_ifname, Lock, PodDir};
use super::plan::{resolve_gateway, src_entry, CarrierRoute};
use super::programs::{self, Programs};
use super::reconcile::{self, Ctx, Snapshot};
use super::state::{IfaceState, PodRecord, MANAGED, MODE_NETLINK, MODE_TCX, RELEASED};
use super::timing::{Phase, Phases};
use super::types::{
    AttachMode, IfAddr, InterfaceSpec, SbrConfig, CARRIER_IFNAME, CARRIER_PEER_IFNAME,
};
use crate::netns::{
    mountns::IfUnknown,
    netlink::{self as nlh, ARPHRD_ETHER},
    NetNs,
};

/// What ADD set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddReport {
    /// The interface's source entries.
    pub entries: Vec<SourceEntry>,
    /// Routes through the carrier (empty when no managed address has a gateway).
    pub carrier_routes: Vec<CarrierRoute>,
    /// Real interfaces with the egress program.
    pub attached: Vec<String>,
    /// Where the time went.
    pub phases: Vec<Phase>,
    /// Whether this ADD loaded the programs (the node's first ADD of this program version).
    pub loaded: bool,
}

/// Routes packets sourced from `iface`'s addresses out of `iface`, in the pod `netns`.
///
/// Idempotent: a repeated ADD rewrites the interface's entries and repairs the rest. On failure
/// only what this call did is undone: an interface it added is rolled back, one that an earlier
/// ADD manages gets that ADD's entries back. The node's first ADD loads and pins the programs;
/// later ones only attach them and write map entries. Runs in the node's mount namespace
/// (`node::on_node`), and fails before changing anything when that cannot be done.
pub fn add(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<AddReport, SbrError> {
    on_node(IfUnknown::Refuse, || {
        add_here(cfg, container_id, netns, iface)
    })
}

fn add_here(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<AddReport, SbrError> {
    let phases = Phases::new();
    validate_ifname(&iface.ifname)?;
    reject_reserved(&iface.ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id);
    let ns = NetNs::open(netns)?;
    pins::ensure_bpffs(&cfg.bpffs_dir)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    phases.mark("lock");
    let (dir, phases_ref, netns_path) = (&dir, &phases, ns.path());
    // Everything runs on the one thread inside the pod's namespace (entering it costs a thread).
    let report = ns.netlink(|h| async move {
        let (mut maps, loaded) =
            open_or_create_pod(cfg, container_id, netns_path, dir, phases_ref)?;
        let mut ctx = Ctx::new(dir, phases_ref);
        // A repeated ADD of a managed interface must not take away what the earlier one set up.
        let prior = managed_share(&maps, &iface.ifname);
        let result = match add_in_ns(&h, cfg, iface, &mut maps, &mut ctx).await {
            Ok(report) => Ok(report),
            Err(e) => {
                let undone = match prior {
                    Some(prior) => {
                        restore_in_ns(&h, &iface.ifname, prior, &mut maps, &mut ctx).await
                    }
                    None => remove_in_ns(&h, &iface.ifname, &mut maps, &mut ctx).await,
                };
                if let Err(undo) = undone {
                    tracing::warn!("sbr: rollback of {} failed: {undo}", iface.ifname);
                }
                Err(e)
            }
        };
        if result.is_err() && maps.entries().is_empty() {
            // Nothing of the pod is left: do not leave an empty pod behind.
            if let Err(e) = drop_pod(&cfg.bpffs_dir, &mut maps, dir) {
                tracing::warn!("sbr: cannot remove {}: {e}", dir.path().display());
            }
        }
        result.map(|r| AddReport { loaded, ..r })
    })??;
    Ok(AddReport {
        phases: phases.take(),
        ..report
    })
}

/// Opens the pod's maps, or makes the pod (loading the programs when this node has not yet).
/// Returns whether the programs were loaded.
fn open_or_create_pod(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns_path: &Path,
    dir: &PodDir,
    phases: &Phases,
) -> Result<(PodMaps, bool), SbrError> {
    if dir.map("pod").exists() {
        let opened = PodMaps::open_record(dir)?;
        let result = match Programs::at(&cfg.bpffs_dir, &opened.1.version()) {
            Ok(own) if own.complete() => (PodMaps::open_with(dir, own, opened)?, false),
            // Its program version is gone (removed by hand): move the pod to the current one.
            _ => {
                let current = Programs::at(&cfg.bpffs_dir, &Programs::current_name(cfg.debug))?;
                let loaded = current.ensure_loaded(cfg.debug)?;
                let mut maps = PodMaps::open_with(dir, current.clone(), opened)?;
                maps.switch_to(container_id, current)?;
                (maps, loaded)
            }
        };
        phases.mark("pod");
        return Ok(result);
    }
    // A half-made pod (an ADD that died before its record was pinned): start again.
    dir.remove()?;
    let mode = cfg.attach_mode.resolve()?;
    let progs = Programs::at(&cfg.bpffs_dir, &Programs::current_name(cfg.debug))?;
    let loaded = progs.ensure_loaded(cfg.debug)?;
    phases.mark("load");
    fault::point("add.sbr.programs-loaded");
    let cookie = netns_cookie()?;
    // One pod per namespace: the namespace's entries are keyed by its cookie alone.
    for version in programs::versions(&cfg.bpffs_dir)? {
        let other = version
            .users()
            .ok()
            .and_then(|users| users.get(&cookie, 0).ok());
        if other.is_some_and(|o| o != programs::id_hash(container_id)) {
            return Err(SbrError::NetnsInUse { cookie });
        }
    }
    dir.create()?;
    let mode = if mode == AttachMode::Netlink {
        MODE_NETLINK
    } else {
        MODE_TCX
    };
    let record = PodRecord::new(cookie, mode, progs.name(), netns_path);
    let maps = PodMaps::create(dir, container_id, progs, record);
    if maps.is_err() {
        let _ = dir.remove();
    }
    phases.mark("pod");
    fault::point("add.sbr.pod-pinned");
    Ok((maps?, loaded))
}

fn reject_reserved(ifname: &str) -> Result<(), SbrError> {
    if ifname == CARRIER_IFNAME
        || ifname == CARRIER_PEER_IFNAME
        || ifname.starts_with(carrier::RETIRED_PREFIX)
    {
        return Err(SbrError::ReservedIfName(ifname.to_string()));
    }
    Ok(())
}

/// The addresses ADD manages for an interface, with the index and the entries they become.
pub(super) async fn interface_entries(
    h: &rtnetlink::Handle,
    cfg: &SbrConfig,
    cookie: u64,
    iface: &InterfaceSpec,
    snap: &Snapshot,
) -> Result<(u32, Vec<(multus_common::SrcKey, multus_common::SrcRoute)>), SbrError> {
    let link = snap
        .links
        .iter()
        .find(|l| l.link.name == iface.ifname)
        .ok_or_else(|| SbrError::InterfaceNotFound(iface.ifname.clone()))?;
    if link.link_layer_type != ARPHRD_ETHER {
        return Err(SbrError::UnsupportedLinkType {
            ifname: iface.ifname.clone(),
            link_layer_type: link.link_layer_type,
        });
    }
    let index = link.link.index;
    let on_link = nlh::addresses(h, Some(index))
        .await
        .map_err(nl("list addresses"))?;
    let addrs: Vec<IfAddr> = if iface.addresses.is_empty() {
        on_link
            .iter()
            .map(|a| IfAddr {
                address: a.addr,
                prefix_len: a.prefix_len,
                gateway: None,
            })
            .collect()
    } else {
        for a in &iface.addresses {
            if !on_link.iter().any(|o| o.addr == a.address) {
                return Err(SbrError::AddressNotOnInterface {
                    ifname: iface.ifname.clone(),
                    addr: a.address,
                });
            }
        }
        iface.addresses.clone()
    };
    let addrs: Vec<IfAddr> = addrs.into_iter().filter(|a| routable(a.address)).collect();
    if addrs.is_empty() {
        return Err(SbrError::NoAddresses(iface.ifname.clone()));
    }
    let entries = addrs
        .iter()
        .map(|a| {
            let main = if a.address.is_ipv4() {
                &snap.main4
            } else {
                &snap.main6
            };
            src_entry(
                cookie,
                index,
                a,
                resolve_gateway(a, cfg.gateway_v4, cfg.gateway_v6, main, index),
            )
        })
        .collect();
    Ok((index, entries))
}

/// Addresses that can be routed by source (not link-local, loopback, multicast or unspecified).
fn routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_link_local() || a.is_loopback() || a.is_multicast() || a.is_unspecified())
        }
        IpAddr::V6(a) => {
            !(a.is_unicast_link_local()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified())
        }
    }
}

async fn add_in_ns(
    h: &rtnetlink::Handle,
    cfg: &SbrConfig,
    iface: &InterfaceSpec,
    maps: &mut PodMaps,
    ctx: &mut Ctx<'_>,
) -> Result<AddReport, SbrError> {
    let snap = Snapshot::read(h, maps).await?;
    let (index, entries) = interface_entries(h, cfg, maps.cookie(), iface, &snap).await?;
    ctx.phases.mark("read");
    let previous = forget_interface(maps, &iface.ifname, Some(index))?;
    for (k, r) in &entries {
        maps.put_entry(*k, *r)?;
    }
    maps.put_state(
        &iface.ifname,
        IfaceState {
            ifindex: index,
            flags: MANAGED | (previous.flags & !(MANAGED | RELEASED)),
            ..previous
        },
    )?;
    ctx.phases.mark("maps");
    fault::point("add.sbr.maps-written");
    let plan = reconcile::converge_from(h, maps, ctx, snap).await?;
    Ok(AddReport {
        entries: entries
            .iter()
            .map(|(k, r)| SourceEntry::from_map(k, r))
            .collect(),
        carrier_routes: plan
            .carrier
            .map(|c| c.routes.into_iter().collect())
            .unwrap_or_default(),
        attached: plan.attach.into_iter().map(|(n, _)| n).collect(),
        phases: Vec::new(),
        loaded: false,
    })
}

/// What an earlier ADD recorded for a managed interface: its record and its source entries.
type Share = (
    IfaceState,
    Vec<(multus_common::SrcKey, multus_common::SrcRoute)>,
);

/// The share of `ifname` when SBR already manages it (a repeated ADD), else `None`.
fn managed_share(maps: &PodMaps, ifname: &str) -> Option<Share> {
    let st = maps.state.get(ifname).filter(|s| s.flags & MANAGED != 0)?;
    let entries = maps
        .entries()
        .into_iter()
        .filter(|(_, r)| r.ifindex == st.ifindex)
        .collect();
    Some((st, entries))
}

/// Undoes a failed repeated ADD: the interface gets back the entries and the index the earlier
/// ADD recorded (the bookkeeping flags of what is attached now are kept), and the pod converges.
async fn restore_in_ns(
    h: &rtnetlink::Handle,
    ifname: &str,
    (prior, entries): Share,
    maps: &mut PodMaps,
    ctx: &mut Ctx<'_>,
) -> Result<(), SbrError> {
    let now = forget_interface(maps, ifname, Some(prior.ifindex))?;
    for (k, r) in entries {
        maps.put_entry(k, r)?;
    }
    maps.put_state(
        ifname,
        IfaceState {
            ifindex: prior.ifindex,
            flags: (now.flags & !RELEASED) | MANAGED,
            ..now
        },
    )?;
    let snap = Snapshot::read(h, maps).await?;
    reconcile::converge_from(h, maps, ctx, snap).await?;
    Ok(())
}
