//! SBR's public types: its node-wide settings ([`SbrConfig`], [`AttachMode`]), the interface an
//! operation is asked about ([`InterfaceSpec`], [`IfAddr`]) and the names and kernel versions it
//! relies on.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use super::error::SbrError;
use super::state::MODE_NETLINK;

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

    pub(super) fn from_record(mode: u32) -> AttachMode {
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
