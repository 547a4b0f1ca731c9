//! The JSON schema of multusctl's output (`apiVersion: multusctl/v1`). Every document is an
//! envelope `{apiVersion, kind, ...}`; field names are camelCase; absent values are `null` (never
//! left out) except the fields only `show` fills, which `list` leaves out. docs/cli.md documents
//! every field; changing one is a new apiVersion.

use std::{collections::BTreeMap, net::IpAddr};

use multus_common::{Counters, COUNTERS_LEN, COUNTER_NAMES};
use serde::{ser::SerializeStruct, Serialize, Serializer};
use serde_json::Value;

use crate::{
    cni::CniVersion,
    delegate::cache::{Origin, PodRef},
    sbr::{AttachmentInfo, IfAddr, IfCounters, PodInfo, CARRIER_IFNAME},
    sbrplugin::chain,
};

use super::{
    kube::ApiPod,
    node::{Live, NetnsState, Node, Record},
};

/// The `apiVersion` of every document.
pub const API_VERSION: &str = "multusctl/v1";

/// A document: `apiVersion`, `kind`, then the kind's own fields.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    /// Always [`API_VERSION`].
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// What the document is.
    pub kind: &'static str,
    /// The kind's fields.
    #[serde(flatten)]
    pub body: T,
}

impl<T: Serialize> Envelope<T> {
    /// Wraps `body` as a document of `kind`.
    pub fn new(kind: &'static str, body: T) -> Self {
        Envelope {
            api_version: API_VERSION,
            kind,
            body,
        }
    }
}

/// A list of items (`ContainerList`, `ContainerDetailList`).
#[derive(Debug, Serialize)]
pub struct Items<T: Serialize> {
    /// The items.
    pub items: Vec<T>,
}

/// The pod of a container, as the runtime named it at ADD.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (`null` when the runtime gave none).
    pub uid: Option<String>,
}

impl PodView {
    /// From the cache's record.
    pub fn from_ref(p: &PodRef) -> Self {
        PodView {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: (!p.uid.is_empty()).then(|| p.uid.clone()),
        }
    }

    /// `namespace/name`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One container (an item of `ContainerList`; `ContainerDetailList` items add the show-only fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// The container (sandbox) id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The pod, when the runtime named one.
    pub pod: Option<PodView>,
    /// The network namespace path recorded at ADD.
    pub netns: Option<String>,
    /// `present`, `gone`, `unknown` (nothing recorded) or `error`.
    pub netns_state: &'static str,
    /// Whether the delegate cache has an entry for the container.
    pub cached: bool,
    /// Why the cache entry could not be read.
    pub cache_error: Option<String>,
    /// Who wrote the cache entry: `native` (this implementation) or `reference` (the reference
    /// Multus, before the node was switched); `null` without an entry.
    pub cache_format: Option<&'static str>,
    /// When ADD ran (Unix seconds).
    pub created_at: Option<u64>,
    /// The attachments, in ADD order; then interfaces that only the pins know.
    pub interfaces: Vec<InterfaceView>,
    /// Source-based routing, when the container has pins or an `ebpf-sbr` plugin in a chain.
    pub sbr: Option<SbrView>,
    /// What the Kubernetes API says of the pod (`null` without API access).
    pub api: Option<ApiPod>,
}

/// One interface of a container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceView {
    /// The interface name inside the pod.
    pub ifname: String,
    /// The network (`namespace/name` for a NAD); `null` for interfaces only the pins know.
    pub network: Option<String>,
    /// The cluster network (its result is multus's result).
    pub master: bool,
    /// Carries the pod's default route.
    pub is_default: bool,
    /// The auxiliary CNI chain (`auxiliaryCNIChainName`): runs for the pod but makes no interface.
    pub auxiliary: bool,
    /// The CNI version the network speaks.
    pub cni_version: Option<String>,
    /// The plugin types of the delegate chain, in order.
    pub plugins: Vec<String>,
    /// Addresses from the cached result, as `address/prefix`.
    pub addresses: Vec<String>,
    /// Gateways from the cached result.
    pub gateways: Vec<String>,
    /// `managed` when its addresses are routed by source, else `null`.
    pub sbr: Option<&'static str>,
    /// show only: the cached result of the chain, as the delegates returned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// show only: the interface as it is now in the namespace (`null` when it is not there or the
    /// namespace is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Option<LiveView>>,
}

/// An interface as it is in the namespace.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveView {
    /// Index.
    pub ifindex: u32,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    pub mac: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Addresses on it (link-local included), as `address/prefix`.
    pub addresses: Vec<String>,
}

/// The source-based routing of a container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SbrView {
    /// The pin directory.
    pub pin_dir: String,
    /// `attached` (every program link attached), `partial`, `detached` (none attached: interfaces
    /// or namespace gone), `unattached` (pins but no link), `missing` (a chain has `ebpf-sbr` but
    /// there are no pins) or `unreadable`.
    pub state: &'static str,
    /// Why the pins could not be read.
    pub error: Option<String>,
    /// Number of source entries.
    pub entry_count: usize,
    /// Program links attached.
    pub links_attached: usize,
    /// Program links pinned.
    pub links_total: usize,
    /// Interfaces whose addresses are routed by source.
    pub managed_interfaces: Vec<String>,
    /// show only: the source entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<EntryView>>,
    /// show only: the main default routes the programs fall back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defaults: Option<DefaultsView>,
    /// show only: the programs attached, per interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub programs: Option<Vec<ProgramView>>,
    /// show only: SBR's per-interface records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<RecordView>>,
    /// show only: counters per interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<Vec<CountersItem>>,
}

/// One source entry: packets from `source` leave by `ifname`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    /// The managed source address.
    pub source: String,
    /// Its on-link prefix, as `network/prefix`.
    pub network: String,
    /// The interface index it leaves by.
    pub ifindex: u32,
    /// The interface name (`null` when unknown).
    pub ifname: Option<String>,
    /// The next hop for off-link destinations.
    pub gateway: Option<String>,
    /// The interface's MTU now (`null` when the namespace cannot be read).
    pub mtu: Option<u32>,
}

/// The main default route per family, as the programs use it.
#[derive(Debug, Serialize)]
pub struct DefaultsView {
    /// IPv4.
    pub ipv4: Option<DefaultView>,
    /// IPv6.
    pub ipv6: Option<DefaultView>,
}

/// One default route.
#[derive(Debug, Serialize)]
pub struct DefaultView {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub ifname: Option<String>,
    /// Gateway (`null`: on-link).
    pub gateway: Option<String>,
}

/// A program attached to an interface.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgramView {
    /// The interface (`sbr-carrier` for the carrier).
    pub ifname: String,
    /// Its index now; `0` when the link is detached.
    pub ifindex: u32,
    /// `sbr_carrier` or `sbr_egress`.
    pub program: &'static str,
    /// The kernel's program id.
    pub program_id: Option<u32>,
    /// The kernel's BPF link id (`None` for a netlink filter, which is not a BPF link).
    pub link_id: Option<u32>,
    /// `tcx-egress`, `tcx-ingress` or `netlink-clsact-egress`.
    pub attach_mode: Option<String>,
    /// The program is attached to an interface.
    pub attached: bool,
    /// The link pin (`None` for a netlink filter: it lives as long as its device, unpinned).
    pub pin: Option<String>,
    /// Why the link could not be read.
    pub error: Option<String>,
}

/// What SBR records of an interface.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    /// Interface.
    pub ifname: String,
    /// Index when recorded.
    pub ifindex: u32,
    /// Routed by source.
    pub managed: bool,
    /// The rp_filter value SBR replaced (with 2), when it did.
    pub rp_filter_orig: Option<u32>,
}

/// The counters of one interface (totals as `u64`; `stats --watch` rates as `f64`): one JSON key
/// per counter, named as in [`COUNTER_NAMES`], in field order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CountersView<T = u64>(pub Counters<T>);

impl<T: Copy + Serialize> Serialize for CountersView<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Counters", COUNTERS_LEN)?;
        for (name, value) in COUNTER_NAMES.into_iter().zip(self.0.to_array()) {
            s.serialize_field(name, &value)?;
        }
        s.end()
    }
}

impl From<&IfCounters> for CountersView {
    fn from(c: &IfCounters) -> Self {
        CountersView(*c)
    }
}

impl<T: Copy> CountersView<T> {
    /// The values in field order (the order of [`COUNTER_NAMES`] and `COUNTER_HEADERS`).
    pub fn values(&self) -> [T; COUNTERS_LEN] {
        self.0.to_array()
    }
}

/// The counters of one interface of a container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountersItem {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name (`null` when unknown).
    pub ifname: Option<String>,
    /// The counters.
    pub counters: CountersView,
}

/// Interface names by index, from the pins (link targets and records) and, when given, the live
/// namespace.
pub fn ifnames(info: &PodInfo, live: Option<&Live>) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for r in &info.interfaces {
        if r.ifindex != 0 {
            out.insert(r.ifindex, r.ifname.clone());
        }
    }
    for a in &info.attachments {
        if let Ok(t) = &a.target {
            if t.ifindex != 0 {
                out.insert(t.ifindex, a.ifname.clone());
            }
        }
    }
    if let Some(live) = live {
        for l in &live.links {
            out.insert(l.index, l.name.clone());
        }
    }
    out
}

fn attach_mode(a: &AttachmentInfo, t: u32) -> String {
    if a.mode == crate::sbr::AttachMode::Netlink {
        return "netlink-clsact-egress".into();
    }
    match t {
        crate::sbr::BPF_TCX_EGRESS => "tcx-egress".into(),
        crate::sbr::BPF_TCX_INGRESS => "tcx-ingress".into(),
        other => format!("attach-type-{other}"),
    }
}

fn program_view(a: &AttachmentInfo) -> ProgramView {
    let program = if a.ifname == CARRIER_IFNAME {
        "sbr_carrier"
    } else {
        "sbr_egress"
    };
    let (target, error) = match &a.target {
        Ok(t) => (Some(*t), None),
        Err(e) => (None, Some(e.clone())),
    };
    ProgramView {
        ifname: a.ifname.clone(),
        ifindex: target.map(|t| t.ifindex).unwrap_or(0),
        program,
        program_id: target.map(|t| t.prog_id),
        link_id: target
            .filter(|_| a.mode != crate::sbr::AttachMode::Netlink)
            .map(|t| t.id),
        attach_mode: target.map(|t| attach_mode(a, t.attach_type)),
        attached: target.is_some_and(|t| t.ifindex != 0),
        pin: (!a.pin.as_os_str().is_empty()).then(|| a.pin.display().to_string()),
        error,
    }
}

/// Whether a link is attached to an interface.
pub fn link_attached(a: &AttachmentInfo) -> bool {
    a.target.as_ref().is_ok_and(|t| t.ifindex != 0)
}

/// Whether the pod has program links and every one is detached (its interfaces or namespace are
/// gone): what `check` calls orphaned pins and `gc` removes.
pub fn links_all_detached(info: &PodInfo) -> bool {
    !info.attachments.is_empty() && info.attachments.iter().all(|a| !link_attached(a))
}

fn addr_string(a: &IfAddr) -> String {
    format!("{}/{}", a.address, a.prefix_len)
}

fn sbr_view(node: &Node, rec: &Record, detail: bool, live: Option<&Live>) -> Option<SbrView> {
    let chained = rec.entry.as_ref().is_some_and(|e| {
        e.attachments
            .iter()
            .any(|a| chain::chained_plugin(&a.network).is_some())
    });
    let pin_dir = node.sbr.bpffs_dir.join(&rec.id).display().to_string();
    let empty = |state, error| SbrView {
        pin_dir: pin_dir.clone(),
        state,
        error,
        entry_count: 0,
        links_attached: 0,
        links_total: 0,
        managed_interfaces: Vec::new(),
        entries: detail.then(Vec::new),
        defaults: None,
        programs: detail.then(Vec::new),
        records: detail.then(Vec::new),
        counters: detail.then(Vec::new),
    };
    let info = match &rec.pins {
        None if chained => return Some(empty("missing", None)),
        None => return None,
        Some(Err(e)) => return Some(empty("unreadable", Some(e.clone()))),
        Some(Ok(info)) => info,
    };
    let attached = info.attachments.iter().filter(|a| link_attached(a)).count();
    let total = info.attachments.len();
    let state = match (attached, total) {
        (_, 0) => "unattached",
        (a, t) if a == t => "attached",
        (0, _) => "detached",
        _ => "partial",
    };
    let names = ifnames(info, live);
    let name = |i: u32| names.get(&i).cloned();
    let mut view = SbrView {
        pin_dir,
        state,
        error: None,
        entry_count: info.entries.len(),
        links_attached: attached,
        links_total: total,
        managed_interfaces: info
            .interfaces
            .iter()
            .filter(|r| r.managed)
            .map(|r| r.ifname.clone())
            .collect(),
        entries: None,
        defaults: None,
        programs: None,
        records: None,
        counters: None,
    };
    if detail {
        view.entries = Some(
            info.entries
                .iter()
                .map(|e| EntryView {
                    source: e.address.to_string(),
                    network: format!("{}/{}", e.network, e.prefix_len),
                    ifindex: e.ifindex,
                    ifname: name(e.ifindex),
                    gateway: e.gateway.map(|g| g.to_string()),
                    mtu: live.and_then(|l| l.link_by_index(e.ifindex)).map(|l| l.mtu),
                })
                .collect(),
        );
        let default = |d: Option<(u32, Option<IpAddr>)>| {
            d.map(|(ifindex, gw)| DefaultView {
                ifindex,
                ifname: name(ifindex),
                gateway: gw.map(|g| g.to_string()),
            })
        };
        view.defaults = Some(DefaultsView {
            ipv4: default(info.defaults[0]),
            ipv6: default(info.defaults[1]),
        });
        view.programs = Some(info.attachments.iter().map(program_view).collect());
        view.records = Some(
            info.interfaces
                .iter()
                .map(|r| RecordView {
                    ifname: r.ifname.clone(),
                    ifindex: r.ifindex,
                    managed: r.managed,
                    rp_filter_orig: r.rp_filter_orig,
                })
                .collect(),
        );
        view.counters = Some(
            info.counters
                .iter()
                .map(|(i, c)| CountersItem {
                    ifindex: *i,
                    ifname: name(*i),
                    counters: c.into(),
                })
                .collect(),
        );
    }
    Some(view)
}

/// The view of one container; `detail` adds the show-only fields, `live` what the namespace holds.
pub fn container_view(
    node: &Node,
    rec: &Record,
    detail: bool,
    live: Option<&Live>,
    api: Option<ApiPod>,
) -> ContainerView {
    let info = rec.pins.as_ref().and_then(|p| p.as_ref().ok());
    let sbr_state = |ifname: &str| -> Option<&'static str> {
        info?
            .interfaces
            .iter()
            .any(|r| r.ifname == ifname && r.managed)
            .then_some("managed")
    };
    let live_view = |ifname: &str| -> Option<LiveView> {
        let live = live?;
        let link = live.link(ifname)?;
        Some(LiveView {
            ifindex: link.index,
            mtu: link.mtu,
            mac: link.mac.clone(),
            up: link.up,
            addresses: live
                .addresses
                .iter()
                .filter(|a| a.index == link.index)
                .map(|a| format!("{}/{}", a.addr, a.prefix_len))
                .collect(),
        })
    };
    let default_version = rec
        .entry
        .as_ref()
        .and_then(|e| CniVersion::parse_opt(Some(&e.cni_version)).ok())
        .unwrap_or(CniVersion::V0_1_0);
    let mut interfaces: Vec<InterfaceView> = rec
        .entry
        .iter()
        .flat_map(|e| e.attachments.iter())
        .map(|a| {
            let addrs = chain::cached_addresses(a.result.as_ref(), &a.ifname);
            InterfaceView {
                ifname: a.ifname.clone(),
                network: Some(a.name.clone()),
                master: a.master,
                is_default: a.is_default,
                auxiliary: a.auxiliary,
                cni_version: a
                    .network
                    .cni_version(default_version)
                    .ok()
                    .map(|v| v.as_str().to_string()),
                plugins: a
                    .network
                    .plugin_types()
                    .into_iter()
                    .map(String::from)
                    .collect(),
                addresses: addrs.iter().map(addr_string).collect(),
                gateways: addrs
                    .iter()
                    .filter_map(|x| x.gateway)
                    .map(|g| g.to_string())
                    .collect(),
                sbr: sbr_state(&a.ifname),
                result: detail.then(|| a.result.clone().unwrap_or(Value::Null)),
                live: detail.then(|| {
                    if a.auxiliary {
                        None
                    } else {
                        live_view(&a.ifname)
                    }
                }),
            }
        })
        .collect();
    if let Some(info) = info {
        for r in info.interfaces.iter().filter(|r| r.managed) {
            if !interfaces.iter().any(|i| i.ifname == r.ifname) {
                interfaces.push(InterfaceView {
                    ifname: r.ifname.clone(),
                    network: None,
                    master: false,
                    is_default: false,
                    auxiliary: false,
                    cni_version: None,
                    plugins: Vec::new(),
                    addresses: info
                        .entries
                        .iter()
                        .filter(|e| e.ifindex == r.ifindex)
                        .map(|e| format!("{}/{}", e.address, e.prefix_len))
                        .collect(),
                    gateways: info
                        .entries
                        .iter()
                        .filter(|e| e.ifindex == r.ifindex)
                        .filter_map(|e| e.gateway.map(|g| g.to_string()))
                        .collect(),
                    sbr: sbr_state(&r.ifname),
                    result: detail.then_some(Value::Null),
                    live: detail.then(|| live_view(&r.ifname)),
                });
            }
        }
    }
    let entry = rec.entry.as_ref();
    ContainerView {
        container_id: rec.id.to_string(),
        pod: entry.and_then(|e| e.pod.as_ref()).map(PodView::from_ref),
        netns: rec.netns_path.as_ref().map(|p| p.display().to_string()),
        netns_state: rec.netns.as_str(),
        cached: entry.is_some(),
        cache_error: rec.cache_error.clone(),
        cache_format: entry.map(|e| match e.origin {
            Origin::Ours => "native",
            Origin::Reference { .. } => "reference",
        }),
        created_at: entry.map(|e| e.created_at).filter(|t| *t != 0),
        interfaces,
        sbr: sbr_view(node, rec, detail, live),
        api,
    }
}

/// The live namespace of a record, when it is present.
pub fn live_of(rec: &Record) -> Option<Live> {
    if rec.netns != NetnsState::Present {
        return None;
    }
    let path = rec.netns_path.as_ref()?;
    match Live::read(path) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("cannot read the namespace of {}: {e}", rec.label());
            None
        }
    }
}
