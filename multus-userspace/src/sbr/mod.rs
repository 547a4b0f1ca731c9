//! eBPF source-based routing: a packet whose source address belongs to a managed interface leaves
//! through that interface, towards its gateway or an on-link destination, without per-interface
//! routing tables or policy rules.
//!
//! What ADD puts in the pod (see docs/sbr-design.md for the why):
//! - the source entries of the interface's addresses in a node-wide BPF hash map, keyed by the
//!   pod's network-namespace cookie;
//! - a carrier device ([`CARRIER_IFNAME`], a NOARP veth whose peer lives in a namespace of its own)
//!   with routes that send default-routed unicast traffic to it: IPv4 `0.0.0.0/1`, `128.0.0.0/2`,
//!   `192.0.0.0/3` with the main default's source, IPv6 `::/1` ... `fc00::/7` specific to each
//!   managed source (`from <addr>/128`);
//! - an egress program on the carrier (redirects by source, or the way of the main default route)
//!   and on every real interface (redirects a packet of another interface's source), attached with
//!   TCX or as netlink tc filters ([`AttachMode`]);
//! - rp_filter 2 (loose) on interfaces whose effective rp_filter was strict, when IPv4 routes go
//!   through the carrier.
//!
//! The programs are loaded once per node (by the first ADD) and shared by every pod. Routes
//! installed by the delegates are never changed. A pod's state is pinned under
//! [`SbrConfig::bpffs_dir`] in the node's mount namespace, where every operation works, also for a
//! caller in a private one ([`crate::netns::mountns`]); [`del`] removes exactly one interface's
//! share and the rest with the last interface; [`check`] reports drift; [`gc`] removes the pins of
//! stale containers and the program versions no pod uses.

mod anchor;
mod bpf;
mod btf;
mod carrier;
mod error;
mod inspect;
mod pins;
mod plan;
mod programs;
mod reconcile;
mod state;
mod sysctl;
mod timing;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

pub use bpf::LinkTarget;
pub use bpf::{BPF_TCX_EGRESS, BPF_TCX_INGRESS};
pub use error::{Drift, SbrError};
pub use inspect::{
    inspect, pods, AttachmentInfo, InterfaceRecord, LogReader, PodInfo, SourceEntry,
};
pub use multus_common::IfCounters;
pub use pins::{is_bpffs, validate_container_id, validate_ifname};
pub use plan::CarrierRoute;
pub use timing::Phase;

use crate::netns::{
    mountns::{self, IfUnknown},
    netlink::{self as nlh, ARPHRD_ETHER},
    NetNs, NetnsError,
};
use bpf::PodMaps;
use error::nl;
use pins::{remove_pin, Lock, PodDir};
use plan::{resolve_gateway, src_entry};
pub use programs::tc_programs_supported;
use programs::Programs;
use reconcile::{diff, plan_for, Ctx, Snapshot};
use state::{IfaceState, PodRecord, MANAGED, MODE_NETLINK, MODE_TCX, RELEASED, RP_FILTER_CHANGED};
use timing::Phases;

/// Name of the carrier device SBR creates in the pod.
pub const CARRIER_IFNAME: &str = "sbr-carrier";
/// Name of the carrier's veth peer.
pub const CARRIER_PEER_IFNAME: &str = "sbr-carrier-p";
/// Default directory for pins (bpffs is mounted on `/sys/fs/bpf` when nothing is).
pub const DEFAULT_BPFFS_DIR: &str = "/sys/fs/bpf/multus-sbr";
/// The oldest kernel SBR works on, in any attach mode: managed neighbour entries (Linux 5.16;
/// `SO_NETNS_COOKIE` needs 5.14). TCX needs [`TCX_MIN_KERNEL`].
pub const MIN_KERNEL: (u8, u8) = (5, 16);

/// How the programs are attached to a pod's interfaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Netlink tc filters: the same dataplane as TCX, about 10× faster to attach (no RCU grace
    /// period under RTNL per attach and per detach; docs/sbr-design.md §3.3, §10).
    #[default]
    Auto,
    /// TCX links (pinned per pod); fails on kernels without TCX. Each TCX attach waits for an RCU
    /// grace period (milliseconds); they coexist with other TCX programs in a defined order.
    Tcx,
    /// Netlink tc filters on a clsact qdisc (nothing pinned; no RCU grace period waited for).
    Netlink,
}

/// The oldest kernel with TCX attachments (Linux 6.6): `Tcx` needs it.
pub const TCX_MIN_KERNEL: (u8, u8) = (6, 6);

/// Whether `kernel` has TCX attachments.
pub fn kernel_has_tcx(kernel: aya::util::KernelVersion) -> bool {
    kernel >= aya::util::KernelVersion::new(TCX_MIN_KERNEL.0, TCX_MIN_KERNEL.1, 0)
}

impl AttachMode {
    /// The mode `Auto` stands for (netlink), or `self`; fails for `Tcx` without TCX.
    pub fn resolve(self) -> Result<AttachMode, SbrError> {
        match self {
            AttachMode::Auto => Ok(AttachMode::Netlink),
            AttachMode::Tcx if !aya::util::KernelVersion::current().is_ok_and(kernel_has_tcx) => {
                Err(SbrError::TcxUnsupported)
            }
            other => Ok(other),
        }
    }

    fn from_record(mode: u32) -> AttachMode {
        if mode == MODE_NETLINK {
            AttachMode::Netlink
        } else {
            AttachMode::Tcx
        }
    }
}

impl std::str::FromStr for AttachMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AttachMode::Auto),
            "tcx" => Ok(AttachMode::Tcx),
            "netlink" => Ok(AttachMode::Netlink),
            other => Err(format!(
                "unknown attach mode {other:?} (auto, tcx or netlink)"
            )),
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Auto => "auto",
            AttachMode::Tcx => "tcx",
            AttachMode::Netlink => "netlink",
        })
    }
}

/// Node-wide settings of SBR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbrConfig {
    /// Directory for the per-container pins, in the node's mount namespace; when it is not on
    /// bpffs, bpffs is mounted on `/sys/fs/bpf` for a directory below it, else on the directory.
    pub bpffs_dir: PathBuf,
    /// IPv4 gateway for addresses that prevResult gives none (sbr has no such option; this fixes its
    /// most common complaint).
    pub gateway_v4: Option<Ipv4Addr>,
    /// IPv6 gateway for addresses that prevResult gives none.
    pub gateway_v6: Option<Ipv6Addr>,
    /// Use the programs loaded with aya-log debug output (a version of their own, loaded beside
    /// the quiet one; applies when a pod's first interface is added).
    pub debug: bool,
    /// How a new pod's programs are attached (a pod keeps the mode of its first ADD).
    pub attach_mode: AttachMode,
}

impl SbrConfig {
    /// Settings with pins under `bpffs_dir` and nothing else set.
    pub fn new(bpffs_dir: impl Into<PathBuf>) -> Self {
        Self {
            bpffs_dir: bpffs_dir.into(),
            gateway_v4: None,
            gateway_v6: None,
            debug: false,
            attach_mode: AttachMode::Auto,
        }
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
/// ([`on_node`]), and fails before changing anything when that cannot be done.
pub fn add(
    cfg: &SbrConfig,
    container_id: &str,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<AddReport, SbrError> {
    on_node(IfUnknown::Refuse, || {
        add_here(cfg, container_id, netns, iface)
    })
}

/// Runs an SBR operation where the pins, the bpffs mounts and the anchor namespaces it makes or
/// reads live beyond the call: in the node's mount namespace (in place when the caller is in it,
/// else on a thread that enters it; see [`crate::netns::mountns`]). `if_unknown` says what to do
/// when that namespace cannot be determined: an operation that makes such objects refuses.
fn on_node<T: Send>(
    if_unknown: IfUnknown,
    op: impl FnOnce() -> Result<T, SbrError> + Send,
) -> Result<T, SbrError> {
    mountns::in_node_mount_ns(if_unknown, op)?
}

fn add_here(
    cfg: &SbrConfig,
    container_id: &str,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<AddReport, SbrError> {
    let phases = Phases::new();
    validate_ifname(&iface.ifname)?;
    reject_reserved(&iface.ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
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
    container_id: &str,
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
    Ok((maps?, loaded))
}

/// The cookie of the calling thread's network namespace.
fn netns_cookie() -> Result<u64, SbrError> {
    crate::netns::current_netns_cookie().map_err(|e| {
        SbrError::Unsupported(format!(
            "cannot read the namespace cookie (SO_NETNS_COOKIE, Linux 5.14+): {e}"
        ))
    })
}

/// Removes everything of a pod from the node (its entries, its pins, its anchor) and the program
/// version it used when no other pod uses it.
fn drop_pod(bpffs_dir: &Path, maps: &mut PodMaps, dir: &PodDir) -> Result<(), SbrError> {
    maps.purge()?;
    dir.remove()?;
    drop_unused_version(bpffs_dir, &maps.progs)
}

fn drop_unused_version(bpffs_dir: &Path, progs: &Programs) -> Result<(), SbrError> {
    if progs.unused() && progs.dir().starts_with(bpffs_dir) {
        progs.remove()?;
    }
    Ok(())
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
async fn interface_entries(
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

/// Removes an interface's entries and counters and its MANAGED mark (keeping a recorded rp_filter
/// change for the restore); returns its previous record.
fn forget_interface(
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
async fn remove_in_ns(
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

/// Undoes ADD for one interface. Idempotent, and succeeds when the namespace or the link is already
/// gone. With the pod's last interface, the carrier, its routes, the rp_filter changes, the pod's
/// entries in the node-wide maps and all its pins go too, and the programs when no other pod uses
/// them.
pub fn del(
    cfg: &SbrConfig,
    container_id: &str,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<(), SbrError> {
    del_timed(cfg, container_id, netns, ifname).map(|_| ())
}

/// [`del`], returning where its time went.
pub fn del_timed(
    cfg: &SbrConfig,
    container_id: &str,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<Vec<Phase>, SbrError> {
    on_node(IfUnknown::RunHere, || {
        del_here(cfg, container_id, netns, ifname)
    })
}

fn del_here(
    cfg: &SbrConfig,
    container_id: &str,
    netns: Option<&Path>,
    ifname: &str,
) -> Result<Vec<Phase>, SbrError> {
    let phases = Phases::new();
    validate_ifname(ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    if !cfg.bpffs_dir.is_dir() {
        return Ok(phases.take());
    }
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    phases.mark("lock");
    if !dir.exists() {
        return Ok(phases.take());
    }
    let mut maps = match PodMaps::open(&dir, &cfg.bpffs_dir) {
        Ok(m) => m,
        Err(e) => {
            // Half-made pod (ADD died before its maps were pinned), or its programs were removed
            // by hand: nothing else can be undone; GC sweeps the node maps.
            tracing::warn!("sbr: {e}; removing {}", dir.path().display());
            return dir.remove().map(|()| phases.take());
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
        dir.remove()?;
        drop_unused_version(&cfg.bpffs_dir, &maps.progs)?;
        phases.mark("pins");
    }
    Ok(phases.take())
}

/// Brings a pod that SBR already manages up to date with its interfaces as they are now, as a
/// repeated ADD would, without changing which interfaces are managed: interfaces added to the pod
/// since (a later network of the pod, say) get the egress program, and the carrier, routes and
/// rp_filter follow. Multus calls it after its last delegate, so that a pod whose `ebpf-sbr`
/// network is not its last one is covered whole.
///
/// Returns the real interfaces that carry the egress program, or `None` when the container has
/// no SBR pod under this bpffs directory (nothing is done then).
pub fn cover(
    cfg: &SbrConfig,
    container_id: &str,
    netns: &Path,
) -> Result<Option<Vec<String>>, SbrError> {
    on_node(IfUnknown::Refuse, || cover_here(cfg, container_id, netns))
}

fn cover_here(
    cfg: &SbrConfig,
    container_id: &str,
    netns: &Path,
) -> Result<Option<Vec<String>>, SbrError> {
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    if !cfg.bpffs_dir.is_dir() || !dir.exists() {
        return Ok(None);
    }
    let ns = NetNs::open(netns)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    if !dir.map("pod").exists() {
        return Ok(None);
    }
    let mut maps = PodMaps::open(&dir, &cfg.bpffs_dir)?;
    let phases = Phases::new();
    let (maps, dir, phases) = (&mut maps, &dir, &phases);
    ns.netlink(|h| async move {
        // Only the pod's own namespace is touched.
        if !crate::netns::current_netns_is(maps.cookie()) {
            tracing::warn!(
                "sbr: {} is not the namespace SBR state of {} was made in; not covering it",
                netns.display(),
                dir.path().display()
            );
            return Ok(None);
        }
        let mut ctx = Ctx::new(dir, phases);
        let snap = Snapshot::read(&h, maps).await?;
        let plan = reconcile::converge_from(&h, maps, &mut ctx, snap).await?;
        Ok(Some(
            plan.attach.into_iter().map(|(name, _)| name).collect(),
        ))
    })?
}

/// Verifies what ADD set up for `iface`: pins, programs attached, map entries equal to the
/// interface's addresses, carrier and routes, defaults, rp_filter. Returns [`SbrError::Drift`]
/// naming every difference.
pub fn check(
    cfg: &SbrConfig,
    container_id: &str,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<(), SbrError> {
    on_node(IfUnknown::RunHere, || {
        check_here(cfg, container_id, netns, iface)
    })
}

fn check_here(
    cfg: &SbrConfig,
    container_id: &str,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<(), SbrError> {
    validate_ifname(&iface.ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    if !dir.exists() {
        return Err(SbrError::Drift(vec![Drift::PodMissing]));
    }
    require_pins(["pod", "state", "src"].map(|m| dir.map(m)))?;
    let ns = NetNs::open(netns)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    let opened = PodMaps::open_record(&dir)?;
    let progs = Programs::at(&cfg.bpffs_dir, &opened.1.version())?;
    require_pins(progs.pins())?;
    let maps = PodMaps::open_with(&dir, progs, opened)?;
    let drifts = ns.netlink(|h| async move {
        // The pins belong to another namespace than the one named now.
        if netns_cookie()? != maps.cookie() {
            return Ok(vec![Drift::PodMissing]);
        }
        let mut drifts = Vec::new();
        let snap = Snapshot::read(&h, &maps).await?;
        let (index, expected) = interface_entries(&h, cfg, maps.cookie(), iface, &snap).await?;
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
        // The node-wide map is what the programs read: compare it, for every address the pod has
        // on the interface.
        let actual: Vec<_> = maps
            .entries()
            .into_iter()
            .filter(|(_, r)| r.ifindex == index)
            .filter_map(|(k, _)| maps.node_entry(&k).map(|r| (k, r)))
            .collect();
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
        let plan = plan_for(&snap, &maps);
        let phases = Phases::new();
        let mut ctx = Ctx::new(&dir, &phases);
        drifts.extend(
            diff(&plan, &snap, &maps, &mut ctx)?
                .iter()
                .map(|f| f.drift(&dir)),
        );
        Ok::<_, SbrError>(drifts)
    })??;
    if drifts.is_empty() {
        Ok(())
    } else {
        Err(SbrError::Drift(drifts))
    }
}

/// Fails with [`Drift::PinMissing`] for every one of `pins` that does not exist.
fn require_pins(pins: impl IntoIterator<Item = PathBuf>) -> Result<(), SbrError> {
    let missing: Vec<Drift> = pins
        .into_iter()
        .filter(|p| !p.exists())
        .map(Drift::PinMissing)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SbrError::Drift(missing))
    }
}

/// What [`gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Containers whose pins were removed because they are not in the valid list.
    pub stale: Vec<String>,
    /// Containers whose pins were removed because their network namespace (or, for TCX, every
    /// attached interface) is gone.
    pub orphaned: Vec<String>,
    /// Program versions removed because no pod uses them.
    pub versions: Vec<String>,
}

/// Whether the pod's namespace is gone: its recorded path no longer opens, or names another
/// namespace. None when no path was recorded.
fn netns_gone(record: &PodRecord) -> Option<bool> {
    let path = record.netns()?;
    Some(match NetNs::open(&path) {
        Ok(ns) => {
            !matches!(ns.run(crate::netns::current_netns_cookie), Ok(Ok(c)) if c == record.cookie)
        }
        Err(_) => true,
    })
}

/// Removes the state of containers not in `valid_container_ids`, and of containers whose network
/// namespace no longer exists: their pins, their entries in the node-wide maps and their carrier
/// (deleted by the kernel when its anchor goes). A stale container's namespace, if it still
/// exists, is only entered to remove SBR's netlink filters. Program versions no pod uses are
/// removed, and entries of the node-wide maps that belong to no pod are swept.
pub fn gc(cfg: &SbrConfig, valid_container_ids: &[&str]) -> Result<GcReport, SbrError> {
    on_node(IfUnknown::RunHere, || gc_here(cfg, valid_container_ids))
}

fn gc_here(cfg: &SbrConfig, valid_container_ids: &[&str]) -> Result<GcReport, SbrError> {
    let mut report = GcReport::default();
    if !cfg.bpffs_dir.is_dir() {
        return Ok(report);
    }
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    let mut errors = Vec::new();
    let mut live_cookies = std::collections::BTreeSet::new();
    for id in pins::pod_ids(&cfg.bpffs_dir)? {
        let dir = PodDir::new(&cfg.bpffs_dir, &id)?;
        let valid = valid_container_ids.contains(&id.as_str());
        let maps = PodMaps::open(&dir, &cfg.bpffs_dir);
        let orphan = match &maps {
            Ok(m) if valid => {
                let mut links = dir
                    .if_links()?
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect::<Vec<_>>();
                if dir.carrier_link().exists() {
                    links.push(dir.carrier_link());
                }
                let links_gone = !links.is_empty()
                    && links
                        .iter()
                        .all(|p| bpf::link_target(p).map(|t| t.ifindex == 0).unwrap_or(true));
                netns_gone(&m.record).unwrap_or(links_gone)
                    || (m.record.mode == MODE_TCX && links_gone)
            }
            Ok(_) => false,
            // Unreadable (a half-made pod, or its programs removed by hand): a valid one is left
            // to its DEL (or repaired by its next ADD); a stale one goes below.
            Err(_) => false,
        };
        if valid && !orphan {
            if let Ok(record) = PodMaps::read_record(&dir) {
                live_cookies.insert(record.cookie);
            }
            continue;
        }
        let removed = match maps {
            Ok(mut m) => {
                if m.record.mode == MODE_NETLINK && netns_gone(&m.record) == Some(false) {
                    if let Err(e) = detach_filters_in_ns(&mut m) {
                        tracing::warn!("sbr: gc of {id}: {e}");
                    }
                }
                m.purge().and_then(|()| dir.remove())
            }
            Err(_) => dir.remove(),
        };
        match removed {
            Ok(()) if orphan => report.orphaned.push(id),
            Ok(()) => report.stale.push(id),
            Err(e) => errors.push(e),
        }
    }
    for progs in programs::versions(&cfg.bpffs_dir)? {
        if let Ok(mut node) = bpf::NodeMaps::open(&progs) {
            for cookie in node.cookies() {
                if !live_cookies.contains(&cookie) {
                    if let Err(e) = node.sweep(cookie) {
                        errors.push(e);
                    }
                }
            }
        }
        if progs.unused() {
            match progs.remove() {
                Ok(()) => report.versions.push(progs.name().to_string()),
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

/// Removes SBR's netlink filters from the (still existing) namespace of a stale netlink-mode pod.
fn detach_filters_in_ns(maps: &mut PodMaps) -> Result<(), SbrError> {
    let Some(path) = maps.record.netns() else {
        return Ok(());
    };
    let ns = NetNs::open(&path)?;
    let records = maps.state.all();
    ns.netlink(|h| async move {
        for (ifname, st) in records {
            if st.flags & state::NL_FILTER != 0 {
                bpf::detach_filter(
                    &h,
                    &ifname,
                    st.ifindex,
                    st.flags & state::NL_QDISC_ADDED != 0,
                )
                .await?;
            }
        }
        Ok::<_, SbrError>(())
    })?
}
