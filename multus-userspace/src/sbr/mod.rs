//! eBPF source-based routing: a packet whose source address belongs to a managed interface leaves
//! through that interface, towards its gateway or an on-link destination, without per-interface
//! routing tables or policy rules.
//!
//! What ADD puts in the pod (see docs/sbr-design.md for the why):
//! - the source entries of the interface's addresses in a BPF hash map;
//! - a carrier device ([`CARRIER_IFNAME`], a NOARP veth pair) with routes that send default-routed
//!   unicast traffic to it: IPv4 `0.0.0.0/1`, `128.0.0.0/2`, `192.0.0.0/3` with the main default's
//!   source, IPv6 `::/1` ... `fc00::/7` specific to each managed source (`from <addr>/128`);
//! - a TCX egress program on the carrier (redirects by source, or the way of the main default
//!   route) and on every real interface (redirects a packet of another interface's source);
//! - rp_filter 2 (loose) on interfaces whose effective rp_filter was strict, when IPv4 routes go
//!   through the carrier.
//!
//! Routes installed by the delegates are never changed. Everything is pinned per container under
//! [`SbrConfig::bpffs_dir`]; [`del`] removes exactly one interface's share and the rest with the
//! last interface; [`check`] reports drift; [`gc`] removes the pins of stale containers.

mod bpf;
mod carrier;
mod error;
mod inspect;
mod pins;
mod plan;
mod reconcile;
mod state;
mod sysctl;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

pub use bpf::LinkTarget;
pub use error::{Drift, SbrError};
pub use inspect::{inspect, pods, AttachmentInfo, InterfaceRecord, LogReader, PodInfo, SourceEntry};
pub use multus_common::IfCounters;
pub use pins::{validate_container_id, validate_ifname};
pub use plan::CarrierRoute;

use crate::netns::{
    netlink::{self as nlh, ARPHRD_ETHER},
    NetNs, NetnsError,
};
use bpf::PodMaps;
use error::nl;
use pins::{remove_pin, Lock, PodDir};
use plan::{resolve_gateway, src_entry};
use reconcile::{converge, diff, plan_for, Snapshot};
use state::{IfaceState, MANAGED, RELEASED, RP_FILTER_CHANGED};

/// Name of the carrier device SBR creates in the pod.
pub const CARRIER_IFNAME: &str = "sbr-carrier";
/// Name of the carrier's veth peer.
pub const CARRIER_PEER_IFNAME: &str = "sbr-carrier-p";
/// Default directory for pins (a bpffs is mounted there if it is not on one).
pub const DEFAULT_BPFFS_DIR: &str = "/sys/fs/bpf/multus-sbr";

/// Node-wide settings of SBR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbrConfig {
    /// Directory for the per-container pins; bpffs is mounted on it when it is not on bpffs.
    pub bpffs_dir: PathBuf,
    /// IPv4 gateway for addresses that prevResult gives none (sbr has no such option; this fixes its
    /// most common complaint).
    pub gateway_v4: Option<Ipv4Addr>,
    /// IPv6 gateway for addresses that prevResult gives none.
    pub gateway_v6: Option<Ipv6Addr>,
    /// Load the programs with aya-log debug output (applies when a pod's first interface is added).
    pub debug: bool,
}

impl SbrConfig {
    /// Settings with pins under `bpffs_dir` and nothing else set.
    pub fn new(bpffs_dir: impl Into<PathBuf>) -> Self {
        Self { bpffs_dir: bpffs_dir.into(), gateway_v4: None, gateway_v6: None, debug: false }
    }
}

impl Default for SbrConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BPFFS_DIR)
    }
}

/// An address of the interface, as prevResult gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub address: IpAddr,
    /// Prefix length of its subnet (the on-link prefix).
    pub prefix_len: u8,
    /// Gateway of that subnet, if any.
    pub gateway: Option<IpAddr>,
}

/// The interface to route by source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Interface name in the pod (CNI_IFNAME).
    pub ifname: String,
    /// Its addresses from prevResult; when empty, the interface's own global addresses are used.
    pub addresses: Vec<IfAddr>,
}

/// What ADD set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddReport {
    /// The interface's source entries.
    pub entries: Vec<SourceEntry>,
    /// Routes through the carrier (empty when no managed address has a gateway).
    pub carrier_routes: Vec<CarrierRoute>,
    /// Real interfaces with the egress program.
    pub attached: Vec<String>,
}

/// Routes packets sourced from `iface`'s addresses out of `iface`, in the pod `netns`.
///
/// Idempotent: a repeated ADD rewrites the interface's entries and repairs the rest. On failure the
/// interface's share is rolled back.
pub fn add(cfg: &SbrConfig, container_id: &str, netns: &Path, iface: &InterfaceSpec) -> Result<AddReport, SbrError> {
    validate_ifname(&iface.ifname)?;
    reject_reserved(&iface.ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    let ns = NetNs::open(netns)?;
    pins::ensure_bpffs(&cfg.bpffs_dir)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    dir.create()?;
    let result = bpf::ensure_loaded(&dir, cfg.debug).and_then(|()| {
        let mut maps = PodMaps::open(&dir)?;
        let (dir, maps) = (&dir, &mut maps);
        ns.netlink(|h| async move {
            match add_in_ns(&h, cfg, iface, dir, maps).await {
                Ok(report) => Ok(report),
                Err(e) => {
                    if let Err(undo) = remove_in_ns(&h, &iface.ifname, dir, maps).await {
                        tracing::warn!("sbr: rollback of {} failed: {undo}", iface.ifname);
                    }
                    Err(e)
                }
            }
        })?
    });
    if result.is_err() && PodMaps::open(&dir).map(|m| m.entries().is_empty()).unwrap_or(true) {
        // Nothing of the pod is left: do not leave an empty pod behind.
        if let Err(e) = dir.remove() {
            tracing::warn!("sbr: cannot remove {}: {e}", dir.path().display());
        }
    }
    result
}

fn reject_reserved(ifname: &str) -> Result<(), SbrError> {
    if ifname == CARRIER_IFNAME || ifname == CARRIER_PEER_IFNAME {
        return Err(SbrError::ReservedIfName(ifname.to_string()));
    }
    Ok(())
}

/// The addresses ADD manages for an interface, with the index and the entries they become.
async fn interface_entries(
    h: &rtnetlink::Handle,
    cfg: &SbrConfig,
    iface: &InterfaceSpec,
) -> Result<(u32, Vec<(multus_common::SrcKey, multus_common::SrcRoute)>), SbrError> {
    let links = nlh::link_details(h).await.map_err(nl("list links"))?;
    let link = links
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
    let on_link = nlh::addresses(h, Some(index)).await.map_err(nl("list addresses"))?;
    let addrs: Vec<IfAddr> = if iface.addresses.is_empty() {
        on_link.iter().map(|a| IfAddr { address: a.addr, prefix_len: a.prefix_len, gateway: None }).collect()
    } else {
        for a in &iface.addresses {
            if !on_link.iter().any(|o| o.addr == a.address) {
                return Err(SbrError::AddressNotOnInterface { ifname: iface.ifname.clone(), addr: a.address });
            }
        }
        iface.addresses.clone()
    };
    let addrs: Vec<IfAddr> = addrs.into_iter().filter(|a| routable(a.address)).collect();
    if addrs.is_empty() {
        return Err(SbrError::NoAddresses(iface.ifname.clone()));
    }
    let main4 = nlh::main_routes(h, false).await.map_err(nl("list IPv4 routes"))?;
    let main6 = nlh::main_routes(h, true).await.map_err(nl("list IPv6 routes"))?;
    let entries = addrs
        .iter()
        .map(|a| {
            let main = if a.address.is_ipv4() { &main4 } else { &main6 };
            src_entry(index, a, resolve_gateway(a, cfg.gateway_v4, cfg.gateway_v6, main, index))
        })
        .collect();
    Ok((index, entries))
}

/// Addresses that can be routed by source (not link-local, loopback, multicast or unspecified).
fn routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_link_local() || a.is_loopback() || a.is_multicast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_unicast_link_local() || a.is_loopback() || a.is_multicast() || a.is_unspecified()),
    }
}

async fn add_in_ns(
    h: &rtnetlink::Handle,
    cfg: &SbrConfig,
    iface: &InterfaceSpec,
    dir: &PodDir,
    maps: &mut PodMaps,
) -> Result<AddReport, SbrError> {
    let (index, entries) = interface_entries(h, cfg, iface).await?;
    let previous = forget_interface(maps, &iface.ifname, Some(index))?;
    for (k, r) in &entries {
        maps.put_entry(*k, *r)?;
    }
    maps.state.put(
        &iface.ifname,
        IfaceState { ifindex: index, flags: MANAGED | (previous.flags & RP_FILTER_CHANGED), ..previous },
    )?;
    maps.ensure_counters(index)?;
    let plan = converge(h, maps, dir).await?;
    Ok(AddReport {
        entries: entries.iter().map(|(k, r)| SourceEntry::from_map(k, r)).collect(),
        carrier_routes: plan.carrier.map(|c| c.routes.into_iter().collect()).unwrap_or_default(),
        attached: plan.attach.into_iter().map(|(n, _)| n).collect(),
    })
}

/// Removes an interface's entries and counters and its MANAGED mark (keeping a recorded rp_filter
/// change for the restore); returns its previous record.
fn forget_interface(maps: &mut PodMaps, ifname: &str, current: Option<u32>) -> Result<IfaceState, SbrError> {
    let previous = maps.state.get(ifname).unwrap_or_default();
    let indices: Vec<u32> = [Some(previous.ifindex).filter(|i| *i != 0), current].into_iter().flatten().collect();
    for (k, r) in maps.entries() {
        if indices.contains(&r.ifindex) {
            maps.remove_entry(&k)?;
        }
    }
    for i in &indices {
        maps.remove_counters(*i)?;
    }
    maps.state.put(ifname, IfaceState { flags: previous.flags & !MANAGED, ..previous })?;
    Ok(previous)
}

/// Removes an interface's share inside the namespace and converges the rest of the pod. An
/// interface that still exists is marked released so it gets no program until it is added again.
async fn remove_in_ns(h: &rtnetlink::Handle, ifname: &str, dir: &PodDir, maps: &mut PodMaps) -> Result<(), SbrError> {
    let previous = forget_interface(maps, ifname, None)?;
    match nlh::link_by_name(h, ifname).await.map_err(nl(format!("look up {ifname}")))? {
        Some(link) => maps.state.put(
            ifname,
            IfaceState { ifindex: link.index, flags: RELEASED | (previous.flags & RP_FILTER_CHANGED), ..previous },
        )?,
        None => maps.state.remove(ifname)?,
    }
    remove_pin(&dir.if_link(ifname))?;
    converge(h, maps, dir).await?;
    Ok(())
}

/// Undoes ADD for one interface. Idempotent, and succeeds when the namespace or the link is already
/// gone. With the pod's last interface, the carrier, its routes, the rp_filter changes and all pins
/// go too.
pub fn del(cfg: &SbrConfig, container_id: &str, netns: Option<&Path>, ifname: &str) -> Result<(), SbrError> {
    validate_ifname(ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    if !cfg.bpffs_dir.is_dir() {
        return Ok(());
    }
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    if !dir.exists() {
        return Ok(());
    }
    let mut maps = match PodMaps::open(&dir) {
        Ok(m) => m,
        Err(e) => {
            // Half-made pod (ADD died before its maps were pinned): nothing else can be undone.
            tracing::warn!("sbr: {e}; removing {}", dir.path().display());
            return dir.remove();
        }
    };
    let ns = match netns.map(NetNs::open) {
        Some(Ok(ns)) => Some(ns),
        // Gone, or the path no longer names a namespace: nothing to undo inside it.
        Some(Err(NetnsError::NotFound(_) | NetnsError::NotNetns(_))) | None => None,
        Some(Err(e)) => return Err(e.into()),
    };
    let recorded = maps.state.get(ifname).map(|s| s.ifindex);
    let last = maps.entries().iter().all(|(_, r)| Some(r.ifindex) == recorded);
    match ns {
        Some(ns) if last => {
            let maps = &mut maps;
            ns.netlink(|h| async move { reconcile::teardown(&h, maps).await })??
        }
        Some(ns) => {
            let (dir, maps) = (&dir, &mut maps);
            ns.netlink(|h| async move { remove_in_ns(&h, ifname, dir, maps).await })??
        }
        None => {
            forget_interface(&mut maps, ifname, None)?;
            maps.state.remove(ifname)?;
            remove_pin(&dir.if_link(ifname))?;
        }
    }
    if last || maps.entries().is_empty() {
        // Last: removing the pins detaches the programs (the kernel finishes that after we exit).
        dir.remove()?;
    }
    Ok(())
}

/// Verifies what ADD set up for `iface`: pins, programs attached, map entries equal to the
/// interface's addresses, carrier and routes, defaults, rp_filter. Returns [`SbrError::Drift`]
/// naming every difference.
pub fn check(cfg: &SbrConfig, container_id: &str, netns: &Path, iface: &InterfaceSpec) -> Result<(), SbrError> {
    validate_ifname(&iface.ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    if !dir.exists() {
        return Err(SbrError::Drift(vec![Drift::PodMissing]));
    }
    let missing: Vec<Drift> = [dir.prog(pins::ProgKind::Carrier), dir.prog(pins::ProgKind::Egress)]
        .into_iter()
        .chain(["src", "defaults", "counters", "state"].map(|m| dir.map(m)))
        .filter(|p| !p.exists())
        .map(Drift::PinMissing)
        .collect();
    if !missing.is_empty() {
        return Err(SbrError::Drift(missing));
    }
    let ns = NetNs::open(netns)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    let maps = PodMaps::open(&dir)?;
    let drifts = ns.netlink(|h| async move {
        let mut drifts = Vec::new();
        let (index, expected) = interface_entries(&h, cfg, iface).await?;
        match maps.state.get(&iface.ifname) {
            Some(st) if st.flags & MANAGED != 0 => {
                if st.ifindex != index {
                    drifts.push(Drift::IfindexChanged {
                        ifname: iface.ifname.clone(),
                        recorded: st.ifindex,
                        actual: index,
                    });
                }
            }
            _ => drifts.push(Drift::NotManaged(iface.ifname.clone())),
        }
        let actual: Vec<_> = maps.entries().into_iter().filter(|(_, r)| r.ifindex == index).collect();
        for (k, r) in &expected {
            let addr = plan::words_addr(k.family, k.addr);
            match actual.iter().find(|(ak, _)| ak == k) {
                None => drifts.push(Drift::EntryMissing(addr)),
                Some((_, ar)) if ar != r => drifts.push(Drift::EntryDiffers {
                    addr,
                    expected: plan::describe_entry(k, r),
                    actual: plan::describe_entry(k, ar),
                }),
                Some(_) => {}
            }
        }
        for (k, _) in &actual {
            if !expected.iter().any(|(ek, _)| ek == k) {
                drifts.push(Drift::EntryExtra(plan::words_addr(k.family, k.addr)));
            }
        }
        let snap = Snapshot::read(&h).await?;
        let plan = plan_for(&snap, &maps);
        drifts.extend(diff(&plan, &snap, &maps, &dir)?.iter().map(|f| f.drift(&dir)));
        Ok::<_, SbrError>(drifts)
    })??;
    if drifts.is_empty() {
        Ok(())
    } else {
        Err(SbrError::Drift(drifts))
    }
}

/// What [`gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Containers whose pins were removed because they are not in the valid list.
    pub stale: Vec<String>,
    /// Containers whose pins were removed because their namespace (every attached interface) is gone.
    pub orphaned: Vec<String>,
}

/// Removes the pins of containers not in `valid_container_ids`, and of containers whose network
/// namespace no longer exists (all their links are detached). Pins only: a stale container's
/// namespace, if it still exists, is not entered (its path is not known here).
pub fn gc(cfg: &SbrConfig, valid_container_ids: &[&str]) -> Result<GcReport, SbrError> {
    let mut report = GcReport::default();
    if !cfg.bpffs_dir.is_dir() {
        return Ok(report);
    }
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    let mut errors = Vec::new();
    for id in pins::pod_ids(&cfg.bpffs_dir)? {
        let dir = PodDir::new(&cfg.bpffs_dir, &id)?;
        let orphan = if valid_container_ids.contains(&id.as_str()) {
            let mut links = dir.if_links()?.into_iter().map(|(_, p)| p).collect::<Vec<_>>();
            if dir.carrier_link().exists() {
                links.push(dir.carrier_link());
            }
            !links.is_empty() && links.iter().all(|p| bpf::link_target(p).map(|t| t.ifindex == 0).unwrap_or(true))
        } else {
            false
        };
        if orphan || !valid_container_ids.contains(&id.as_str()) {
            match dir.remove() {
                Ok(()) if orphan => report.orphaned.push(id),
                Ok(()) => report.stale.push(id),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(SbrError::Multiple(errors))
    }
}
