//! Read-only inspection of the pinned state, for the operators' CLI: pods, attachments, source
//! entries, defaults, interface records and counters. Nothing here locks; only netlink filters
//! (which have no pin) are read inside the pod's namespace, found by its recorded path and checked
//! against its cookie.

use crate::cni::ContainerId;
use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use multus_common::{
    IfCounters, SrcKey, SrcRoute, DEFAULT_HAS_GATEWAY, DEFAULT_V4, DEFAULT_V6, DEFAULT_VALID,
    ROUTE_HAS_GATEWAY,
};

use super::error::{describe, SbrError};
use super::{
    bpf::{self, LinkTarget, PodMaps},
    node::on_node,
    pins::{self, PodDir},
    plan::words_addr,
    programs::ProgKind,
    state::{MANAGED, NL_FILTER, RELEASED, RP_FILTER_CHANGED},
    types::{AttachMode, SbrConfig, CARRIER_IFNAME},
};
use crate::netns::{mountns::IfUnknown, NetNs};

/// A source entry in readable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The managed source address.
    pub address: IpAddr,
    /// Interface it leaves by.
    pub ifindex: u32,
    /// Gateway for off-link destinations.
    pub gateway: Option<IpAddr>,
    /// On-link prefix.
    pub network: IpAddr,
    /// On-link prefix length.
    pub prefix_len: u8,
}

impl SourceEntry {
    /// Decodes a map entry.
    pub fn from_map(key: &SrcKey, route: &SrcRoute) -> Self {
        let prefix_len: u32 = route
            .mask
            .iter()
            .map(|w| u32::from_be(*w).count_ones())
            .sum();
        Self {
            address: words_addr(key.family, key.addr),
            ifindex: route.ifindex,
            gateway: (route.flags & ROUTE_HAS_GATEWAY != 0)
                .then(|| words_addr(key.family, route.gateway)),
            network: words_addr(key.family, route.network),
            prefix_len: prefix_len as u8,
        }
    }
}

/// An attachment of a pod's program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The interface name (or the carrier's).
    pub ifname: String,
    /// The pin (a TCX link); empty for a netlink filter, which has none.
    pub pin: PathBuf,
    /// What the link or filter is attached to, or why that could not be read. For a netlink
    /// filter, `id` and `attach_type` are 0 and `ifindex` 0 means the filter is missing.
    pub target: Result<LinkTarget, String>,
    /// [`AttachMode::Tcx`] (a pinned TCX link) or [`AttachMode::Netlink`] (a tc filter on clsact).
    pub mode: AttachMode,
}

/// What SBR records about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRecord {
    /// The interface.
    pub ifname: String,
    /// Its index when recorded.
    pub ifindex: u32,
    /// ADD manages its addresses.
    pub managed: bool,
    /// The rp_filter value SBR replaced, when it changed it.
    pub rp_filter_orig: Option<u32>,
}

/// Everything pinned for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// The container id.
    pub container_id: String,
    /// The pod's network-namespace cookie (its key in the node-wide maps).
    pub cookie: u64,
    /// The namespace path ADD was given, when it was recorded (it may since name another
    /// namespace: compare its cookie).
    pub netns: Option<PathBuf>,
    /// How the real interfaces' programs are attached (the carrier's is always a netlink filter).
    pub attach_mode: AttachMode,
    /// The program version (directory under the bpffs directory) the pod uses.
    pub version: String,
    /// Pinned links.
    pub attachments: Vec<AttachmentInfo>,
    /// Source entries.
    pub entries: Vec<SourceEntry>,
    /// Main default route per family as the programs use it: (ifindex, gateway).
    pub defaults: [Option<(u32, Option<IpAddr>)>; 2],
    /// Interface records.
    pub interfaces: Vec<InterfaceRecord>,
    /// Counters per interface index, summed over CPUs.
    pub counters: Vec<(u32, IfCounters)>,
}

/// Container ids that have pins (program versions are not listed).
pub fn pods(cfg: &SbrConfig) -> Result<Vec<ContainerId>, SbrError> {
    on_node(IfUnknown::RunHere, || pins::pod_ids(&cfg.bpffs_dir))
}

/// Reads everything pinned for `container_id` (in the node's mount namespace, where the pins are).
pub fn inspect(cfg: &SbrConfig, container_id: &ContainerId) -> Result<PodInfo, SbrError> {
    on_node(IfUnknown::RunHere, || inspect_here(cfg, container_id))
}

fn inspect_here(cfg: &SbrConfig, container_id: &ContainerId) -> Result<PodInfo, SbrError> {
    let dir = PodDir::new(&cfg.bpffs_dir, container_id);
    let maps = PodMaps::open(&dir, &cfg.bpffs_dir)?;
    let mut attachments: Vec<AttachmentInfo> = dir
        .if_links()?
        .into_iter()
        .map(|(ifname, pin)| {
            let target = bpf::link_target(&pin).map_err(|e| describe(&e));
            AttachmentInfo {
                ifname,
                pin,
                target,
                mode: AttachMode::Tcx,
            }
        })
        .collect();
    let records = maps.state.all();
    let filtered: Vec<(String, u32, ProgKind)> = records
        .iter()
        .filter(|(name, st)| name == CARRIER_IFNAME || st.flags & NL_FILTER != 0)
        .map(|(name, st)| {
            (
                name.clone(),
                st.ifindex,
                if name == CARRIER_IFNAME {
                    ProgKind::Carrier
                } else {
                    ProgKind::Egress
                },
            )
        })
        .collect();
    if !filtered.is_empty() {
        let found = filter_targets(&maps, &filtered);
        for ((ifname, ifindex, _), target) in filtered.into_iter().zip(found) {
            let target = target.map(|prog_id| LinkTarget {
                id: 0,
                prog_id: prog_id.unwrap_or(0),
                ifindex: if prog_id.is_some() { ifindex } else { 0 },
                attach_type: 0,
            });
            let info = AttachmentInfo {
                ifname,
                pin: PathBuf::new(),
                target,
                mode: AttachMode::Netlink,
            };
            if info.ifname == CARRIER_IFNAME {
                attachments.insert(0, info);
            } else {
                attachments.push(info);
            }
        }
    }
    let mut entries: Vec<SourceEntry> = maps
        .entries()
        .iter()
        .map(|(k, r)| SourceEntry::from_map(k, r))
        .collect();
    entries.sort_by_key(|e| (e.ifindex, e.address));
    let mut defaults = [None, None];
    for (slot, (index, family)) in defaults.iter_mut().zip([(DEFAULT_V4, 2), (DEFAULT_V6, 10)]) {
        let d = maps.default_entry(index)?;
        if d.flags & DEFAULT_VALID != 0 {
            let gw = (d.flags & DEFAULT_HAS_GATEWAY != 0).then(|| words_addr(family, d.gateway));
            *slot = Some((d.ifindex, gw));
        }
    }
    let mut interfaces: Vec<InterfaceRecord> = records
        .into_iter()
        .filter(|(_, st)| st.flags & (MANAGED | RP_FILTER_CHANGED | RELEASED) != 0)
        .map(|(ifname, st)| InterfaceRecord {
            ifname,
            ifindex: st.ifindex,
            managed: st.flags & MANAGED != 0,
            rp_filter_orig: (st.flags & RP_FILTER_CHANGED != 0).then_some(st.rp_filter_orig),
        })
        .collect();
    interfaces.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    Ok(PodInfo {
        container_id: container_id.to_string(),
        cookie: maps.cookie(),
        netns: maps.record.netns(),
        attach_mode: AttachMode::from_record(maps.record.mode),
        version: maps.progs.name().to_string(),
        attachments,
        entries,
        defaults,
        interfaces,
        counters: maps.counters(),
    })
}

/// The program of SBR's filter on each of `ifaces` (None: no filter), read in the pod's namespace.
fn filter_targets(
    maps: &PodMaps,
    ifaces: &[(String, u32, ProgKind)],
) -> Vec<Result<Option<u32>, String>> {
    let fail = |e: String| ifaces.iter().map(|_| Err(e.clone())).collect();
    let Some(path) = maps.record.netns() else {
        return fail("no namespace path recorded".into());
    };
    let ns = match NetNs::open(&path) {
        Ok(ns) => ns,
        Err(e) => return fail(format!("namespace not reachable: {e}")),
    };
    let cookie = maps.cookie();
    let indices: Vec<u32> = ifaces.iter().map(|(_, i, _)| *i).collect();
    let read = ns.netlink(|h| async move {
        if !crate::netns::current_netns_is(cookie) {
            return Err("the recorded namespace path names another namespace".to_string());
        }
        let mut out = Vec::new();
        for i in indices {
            out.push(bpf::filter_prog(&h, i).await.map_err(|e| describe(&e)));
        }
        Ok(out)
    });
    match read {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => fail(e),
        Err(e) => fail(describe(&e)),
    }
}

/// Reads the aya-log records of a pod's programs: they log each redirect when the pod was added
/// with [`SbrConfig::debug`] (otherwise the log calls are compiled out by the verifier). The
/// programs are shared by the node's pods: only the records of this pod (its cookie) are kept.
pub struct LogReader {
    logger: aya_log::EbpfLogger<Collector>,
    lines: Arc<Mutex<Vec<String>>>,
    tag: String,
}

/// A `log::Log` that keeps the formatted records.
struct Collector(Arc<Mutex<Vec<String>>>);

impl log::Log for Collector {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{} {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

impl LogReader {
    /// Attaches to the log ring buffer of `container_id`'s programs.
    pub fn open(cfg: &SbrConfig, container_id: &ContainerId) -> Result<Self, SbrError> {
        let dir = PodDir::new(&cfg.bpffs_dir, container_id);
        let maps = PodMaps::open(&dir, &cfg.bpffs_dir)?;
        let id = maps.progs.prog_id(ProgKind::Carrier)?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let logger = aya_log::EbpfLogger::init_from_id_with_logger(id, Collector(lines.clone()))
            .map_err(|e| SbrError::Map {
                map: "AYA_LOGS",
                reason: describe(&e),
            })?;
        Ok(Self {
            logger,
            lines,
            tag: format!(" ns {}", maps.cookie()),
        })
    }

    /// The records of this pod written since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        self.logger.flush();
        let lines = self
            .lines
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        lines
            .into_iter()
            .filter(|l| l.ends_with(&self.tag))
            .collect()
    }
}
