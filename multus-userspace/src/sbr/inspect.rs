//! Read-only inspection of the pinned state, for the operators' CLI: pods, attachments, source
//! entries, defaults, interface records and counters. Nothing here enters a namespace or locks.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use multus_common::{
    IfCounters, SrcKey, SrcRoute, DEFAULT_HAS_GATEWAY, DEFAULT_V4, DEFAULT_V6, DEFAULT_VALID, ROUTE_HAS_GATEWAY,
};

use super::{
    bpf::{self, LinkTarget, PodMaps},
    pins::{self, PodDir, ProgKind},
    plan::words_addr,
    state::{MANAGED, RP_FILTER_CHANGED},
    SbrConfig, SbrError, CARRIER_IFNAME,
};

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
        let prefix_len: u32 = route.mask.iter().map(|w| u32::from_be(*w).count_ones()).sum();
        Self {
            address: words_addr(key.family, key.addr),
            ifindex: route.ifindex,
            gateway: (route.flags & ROUTE_HAS_GATEWAY != 0).then(|| words_addr(key.family, route.gateway)),
            network: words_addr(key.family, route.network),
            prefix_len: prefix_len as u8,
        }
    }
}

/// A pinned attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The interface name (or the carrier's).
    pub ifname: String,
    /// The pin.
    pub pin: PathBuf,
    /// What the link is attached to, or why that could not be read.
    pub target: Result<LinkTarget, String>,
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

/// Container ids that have pins.
pub fn pods(cfg: &SbrConfig) -> Result<Vec<String>, SbrError> {
    pins::pod_ids(&cfg.bpffs_dir)
}

/// Reads everything pinned for `container_id`.
pub fn inspect(cfg: &SbrConfig, container_id: &str) -> Result<PodInfo, SbrError> {
    let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
    let maps = PodMaps::open(&dir)?;
    let mut attachments: Vec<AttachmentInfo> = dir
        .if_links()?
        .into_iter()
        .map(|(ifname, pin)| {
            let target = bpf::link_target(&pin).map_err(|e| e.to_string());
            AttachmentInfo { ifname, pin, target }
        })
        .collect();
    let carrier = dir.carrier_link();
    if carrier.exists() {
        let target = bpf::link_target(&carrier).map_err(|e| e.to_string());
        attachments.insert(0, AttachmentInfo { ifname: CARRIER_IFNAME.into(), pin: carrier, target });
    }
    let mut entries: Vec<SourceEntry> = maps.entries().iter().map(|(k, r)| SourceEntry::from_map(k, r)).collect();
    entries.sort_by_key(|e| (e.ifindex, e.address));
    let mut defaults = [None, None];
    for (slot, (index, family)) in defaults.iter_mut().zip([(DEFAULT_V4, 2), (DEFAULT_V6, 10)]) {
        let d = maps.default_entry(index)?;
        if d.flags & DEFAULT_VALID != 0 {
            let gw = (d.flags & DEFAULT_HAS_GATEWAY != 0).then(|| words_addr(family, d.gateway));
            *slot = Some((d.ifindex, gw));
        }
    }
    let mut interfaces: Vec<InterfaceRecord> = maps
        .state
        .all()
        .into_iter()
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
        attachments,
        entries,
        defaults,
        interfaces,
        counters: maps.counters(),
    })
}

/// Reads the aya-log records of a pod's programs: they log each redirect and drop when the pod was
/// loaded with [`SbrConfig::debug`] (otherwise the log calls are compiled out by the verifier).
pub struct LogReader {
    logger: aya_log::EbpfLogger<Collector>,
    lines: Arc<Mutex<Vec<String>>>,
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
    pub fn open(cfg: &SbrConfig, container_id: &str) -> Result<Self, SbrError> {
        let dir = PodDir::new(&cfg.bpffs_dir, container_id)?;
        let id = bpf::prog_id(&dir, ProgKind::Carrier)?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let logger = aya_log::EbpfLogger::init_from_id_with_logger(id, Collector(lines.clone()))
            .map_err(|e| SbrError::Map { map: "AYA_LOGS", reason: e.to_string() })?;
        Ok(Self { logger, lines })
    }

    /// The records written since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        self.logger.flush();
        self.lines.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
    }
}
