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
//! The programs are loaded once per node (by the first ADD, or the node daemon's [`hold()`]) and
//! shared by every pod. Routes
//! installed by the delegates are never changed. A pod's state is pinned under
//! [`SbrConfig::bpffs_dir`] in the node's mount namespace, where every operation works, also for a
//! caller in a private one ([`crate::netns::mountns`]); [`del()`] removes exactly one
//! interface's share and the rest with the last interface; [`check()`] reports drift; [`gc()`]
//! removes the pins of stale containers and the program versions no pod uses.

mod add;
mod anchor;
mod bpf;
mod btf;
mod carrier;
mod check;
mod cover;
mod del;
mod error;
mod gc;
mod hold;
mod inspect;
mod node;
mod pins;
mod plan;
mod programs;
mod reconcile;
mod state;
mod sysctl;
mod timing;
mod types;

pub use add::{add, AddReport};
pub use bpf::LinkTarget;
pub use bpf::{BPF_TCX_EGRESS, BPF_TCX_INGRESS};
pub use check::check;
pub use cover::cover;
pub use del::{del, del_timed};
pub use error::{Drift, SbrError};
pub use gc::{gc, GcReport};
pub use hold::{hold, Hold, HOLDER_COOKIE};
pub use inspect::{
    inspect, pods, AttachmentInfo, InterfaceRecord, LogReader, PodInfo, SourceEntry,
};
pub use multus_common::IfCounters;
pub use pins::{ensure_bpffs, is_bpffs, validate_ifname, SYS_FS_BPF};
pub use plan::CarrierRoute;
pub use programs::tc_programs_supported;
pub use timing::Phase;
pub use types::{
    kernel_has_tcx, AttachMode, IfAddr, InterfaceSpec, SbrConfig, CARRIER_IFNAME,
    CARRIER_PEER_IFNAME, DEFAULT_BPFFS_DIR, MIN_KERNEL, TCX_MIN_KERNEL,
};
