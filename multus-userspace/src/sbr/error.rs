//! Errors of the source-based-routing library, and the drift CHECK reports.

use std::{fmt, net::IpAddr, path::PathBuf};

use crate::netns::NetnsError;

/// Why an SBR operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SbrError {
    /// The interface name is not a valid Linux interface name.
    #[error("invalid interface name {0:?}")]
    InvalidIfName(String),
    /// The bpffs directory could not be prepared (created, mounted, inspected).
    #[error("bpffs directory {path}: {source}")]
    Bpffs {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A pin could not be created, opened or removed.
    #[error("pin {path}: {reason}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The underlying error.
        source: rtnetlink::Error,
    },
    /// A sysctl could not be read or written.
    #[error("sysctl {path}: {source}")]
    Sysctl {
        /// The /proc/sys path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The interface does not exist in the namespace.
    #[error("interface {0} not found in the namespace")]
    InterfaceNotFound(String),
    /// Only Ethernet-like interfaces are supported.
    #[error("interface {ifname} has link type {link_layer_type}; only Ethernet-like (ARPHRD_ETHER) interfaces are supported")]
    UnsupportedLinkType {
        /// The interface.
        ifname: String,
        /// Its `ARPHRD_*` type.
        link_layer_type: u16,
    },
    /// The interface has no address to route by.
    #[error("interface {0} has no global address (none in prevResult and none on the interface)")]
    NoAddresses(String),
    /// An address of the request is not assigned to the interface.
    #[error("address {addr} is not assigned to interface {ifname}")]
    AddressNotOnInterface {
        /// The interface.
        ifname: String,
        /// The address.
        addr: IpAddr,
    },
    /// The interface name is already used by the carrier device.
    #[error("interface name {0} is reserved for the SBR carrier device")]
    ReservedIfName(String),
    /// The kernel does not support TCX (needs Linux 6.6 or later).
    #[error("the kernel does not support TCX attachments (Linux >= 6.6 needed)")]
    TcxUnsupported,
    /// The kernel lacks something the shared programs need (BTF describing `struct net`'s
    /// `net_cookie`, `SO_NETNS_COOKIE`: Linux 5.14 or later with `CONFIG_DEBUG_INFO_BTF`).
    #[error("unsupported kernel: {0}")]
    Unsupported(String),
    /// Another container's SBR state already uses this network namespace.
    #[error("network namespace (cookie {cookie}) already has SBR state of another container")]
    NetnsInUse {
        /// The namespace's cookie.
        cookie: u64,
    },
    /// Loading the BPF object or a program failed.
    #[error("BPF load: {0}")]
    Load(String),
    /// A BPF map operation failed.
    #[error("BPF map {map}: {reason}")]
    Map {
        /// The map.
        map: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Attaching a program failed.
    #[error("attach {prog} to {ifname}: {reason}")]
    Attach {
        /// The program.
        prog: &'static str,
        /// The interface.
        ifname: String,
        /// What went wrong.
        reason: String,
    },
    /// CHECK found the pod different from what ADD set up.
    #[error("SBR state drifted: {}", Joined(.0))]
    Drift(Vec<Drift>),
    /// Several independent cleanup steps failed (DEL and GC go on after a failure).
    #[error("{}", Joined(.0))]
    Multiple(Vec<SbrError>),
}

/// Displays a list as `a; b; c`.
struct Joined<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Joined<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

/// One difference between what ADD set up and what CHECK found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// No pin directory for the container.
    PodMissing,
    /// A pin is missing.
    PinMissing(PathBuf),
    /// A pin exists that should not.
    PinExtra(PathBuf),
    /// The interface is not recorded as managed.
    NotManaged(String),
    /// The interface was recorded with another index (it was recreated).
    IfindexChanged {
        /// The interface.
        ifname: String,
        /// Index recorded at ADD.
        recorded: u32,
        /// Index now.
        actual: u32,
    },
    /// The pinned link of an interface is not attached to it with the pod's program.
    NotAttached {
        /// The interface (or the carrier).
        ifname: String,
        /// What is wrong with the link.
        reason: String,
    },
    /// A source entry is missing.
    EntryMissing(IpAddr),
    /// A source entry differs from the expected one.
    EntryDiffers {
        /// The source address.
        addr: IpAddr,
        /// Expected entry (human readable).
        expected: String,
        /// Actual entry (human readable).
        actual: String,
    },
    /// A source entry of the interface exists that should not.
    EntryExtra(IpAddr),
    /// The defaults map differs from the main table's default route.
    DefaultDiffers {
        /// 4 or 6.
        family: u8,
        /// Expected entry.
        expected: String,
        /// Actual entry.
        actual: String,
    },
    /// The carrier device is missing or misconfigured.
    Carrier(String),
    /// A route through the carrier is missing.
    RouteMissing(String),
    /// A route through the carrier exists that should not.
    RouteExtra(String),
    /// The effective rp_filter of an interface is strict (1) although carrier routes exist.
    RpFilterStrict(String),
    /// A managed neighbour entry for a gateway is missing.
    NeighbourMissing(String),
    /// A managed neighbour entry of SBR exists that should not.
    NeighbourExtra(String),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::PodMissing => write!(f, "no SBR pins for the container"),
            Drift::PinMissing(p) => write!(f, "pin {} missing", p.display()),
            Drift::PinExtra(p) => write!(f, "unexpected pin {}", p.display()),
            Drift::NotManaged(i) => write!(f, "interface {i} is not managed"),
            Drift::IfindexChanged {
                ifname,
                recorded,
                actual,
            } => {
                write!(
                    f,
                    "interface {ifname} has index {actual}, recorded {recorded}"
                )
            }
            Drift::NotAttached { ifname, reason } => {
                write!(f, "program not attached to {ifname}: {reason}")
            }
            Drift::EntryMissing(a) => write!(f, "source entry {a} missing"),
            Drift::EntryDiffers {
                addr,
                expected,
                actual,
            } => {
                write!(f, "source entry {addr} is {actual}, expected {expected}")
            }
            Drift::EntryExtra(a) => write!(f, "unexpected source entry {a}"),
            Drift::DefaultDiffers {
                family,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "IPv{family} default entry is {actual}, expected {expected}"
                )
            }
            Drift::Carrier(r) => write!(f, "carrier: {r}"),
            Drift::RouteMissing(r) => write!(f, "carrier route {r} missing"),
            Drift::RouteExtra(r) => write!(f, "unexpected carrier route {r}"),
            Drift::RpFilterStrict(i) => write!(f, "rp_filter of {i} is strict"),
            Drift::NeighbourMissing(n) => write!(f, "managed neighbour {n} missing"),
            Drift::NeighbourExtra(n) => write!(f, "unexpected managed neighbour {n}"),
        }
    }
}

/// Shorthand for netlink errors.
pub(crate) fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> SbrError {
    let op = op.into();
    move |source| SbrError::Netlink { op, source }
}

/// An error's message followed by its sources' (aya's errors say only which call failed, e.g.
/// "`bpf_mprog_attach` failed", and keep the errno in their source). A source whose text the
/// message already holds is not repeated.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
