//! Types shared by the BPF programs (`multus-ebpf`) and userspace (`multus-userspace`).
//!
//! Every type here is `#[repr(C)]`, `Copy`, and free of implicit padding, so the byte layout is
//! the same on both sides of a BPF map. Userspace enables the `user` feature to get `aya::Pod`.
//!
//! Addresses are stored as four `u32` words holding the address bytes in network order (an IPv4
//! address uses the first word; the other three are zero), so the BPF side compares them with
//! plain word operations and userspace converts with `u32::from_ne_bytes`.
//!
//! The programs and maps are loaded once per node and shared by every pod: each key starts with
//! the pod's network-namespace cookie (the value `SO_NETNS_COOKIE` gives userspace, and that the
//! programs read from the namespace of the device a packet leaves by).
#![no_std]

/// `AF_INET`, the address family of an IPv4 [`SrcKey`].
pub const AF_INET: u32 = 2;
/// `AF_INET6`, the address family of an IPv6 [`SrcKey`].
pub const AF_INET6: u32 = 10;

/// Names of the BPF maps and programs, shared so both sides spell them the same way.
pub mod names {
    /// Pod and source address -> route of its interface ([`super::SrcKey`] -> [`super::SrcRoute`]).
    pub const SRC_MAP: &str = "SBR_SRC";
    /// Main-table default route per pod and family ([`super::DefaultKey`] -> [`super::DefaultRoute`]).
    pub const DEFAULTS_MAP: &str = "SBR_DEFAULTS";
    /// Per-interface, per-CPU counters ([`super::CounterKey`] -> [`super::IfCounters`]).
    pub const COUNTERS_MAP: &str = "SBR_COUNTERS";
    /// The aya-log ring buffer.
    pub const LOG_MAP: &str = "AYA_LOGS";
    /// The aya-log level global (0 disables every log statement).
    pub const LOG_LEVEL: &str = "AYA_LOG_LEVEL";
    /// The program on the carrier device's egress: every packet is redirected or dropped.
    pub const CARRIER_PROG: &str = "sbr_carrier";
    /// The program on a real interface's egress: packets of another interface's source are redirected.
    pub const EGRESS_PROG: &str = "sbr_egress";
    /// Read-only global: `offsetof(struct sk_buff, dev)` in the running kernel (from its BTF).
    pub const SKB_DEV_OFFSET: &str = "SBR_SKB_DEV_OFFSET";
    /// Read-only global: offset of the `struct net *` in `struct net_device` (`nd_net.net`).
    pub const DEV_NET_OFFSET: &str = "SBR_DEV_NET_OFFSET";
    /// Read-only global: `offsetof(struct net, net_cookie)`.
    pub const NET_COOKIE_OFFSET: &str = "SBR_NET_COOKIE_OFFSET";
}

/// Capacity of the source map (node-wide: every managed address of every pod).
pub const SRC_MAP_ENTRIES: u32 = 16384;
/// Capacity of the defaults map (two entries per pod).
pub const DEFAULTS_MAP_ENTRIES: u32 = 8192;
/// Capacity of the counters map (one entry per interface of every pod, carrier included).
pub const COUNTERS_MAP_ENTRIES: u32 = 16384;
/// `BPF_F_NO_PREALLOC`: the node-wide hash maps allocate entries as userspace adds them, so their
/// memory follows the number of pods rather than the capacity.
pub const MAP_NO_PREALLOC: u32 = 1;

/// Key of the source map: an address of a pod that source-based routing manages.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SrcKey {
    /// The pod's network-namespace cookie.
    pub cookie: u64,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u32,
    /// Zero (explicit, so the key has no padding).
    pub reserved: u32,
    /// The address (network byte order words; IPv4 in word 0).
    pub addr: [u32; 4],
}

/// Key of the defaults map: a pod and an address family.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DefaultKey {
    /// The pod's network-namespace cookie.
    pub cookie: u64,
    /// [`DEFAULT_V4`] or [`DEFAULT_V6`].
    pub index: u32,
    /// Zero.
    pub reserved: u32,
}

/// Key of the counters map: an interface of a pod.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// The pod's network-namespace cookie.
    pub cookie: u64,
    /// Interface index inside the pod.
    pub ifindex: u32,
    /// Zero.
    pub reserved: u32,
}

/// [`SrcRoute::flags`]: the interface has a gateway ([`SrcRoute::gateway`] is valid).
pub const ROUTE_HAS_GATEWAY: u32 = 1;

/// Value of the source map: where packets from that source leave.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrcRoute {
    /// Interface the address belongs to.
    pub ifindex: u32,
    /// `ROUTE_*` flags.
    pub flags: u32,
    /// Next hop for destinations off the on-link prefix (valid with [`ROUTE_HAS_GATEWAY`]).
    pub gateway: [u32; 4],
    /// On-link prefix of the address, already masked.
    pub network: [u32; 4],
    /// Mask of the on-link prefix.
    pub mask: [u32; 4],
}

/// [`DefaultKey::index`] of a pod's IPv4 default route.
pub const DEFAULT_V4: u32 = 0;
/// [`DefaultKey::index`] of a pod's IPv6 default route.
pub const DEFAULT_V6: u32 = 1;

/// [`DefaultRoute::flags`]: the entry is valid (the main table has a default route).
pub const DEFAULT_VALID: u32 = 1;
/// [`DefaultRoute::flags`]: the default route has a gateway (otherwise destinations are on-link).
pub const DEFAULT_HAS_GATEWAY: u32 = 2;

/// The main table's default route for one family, used for packets whose source is not managed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultRoute {
    /// Output interface.
    pub ifindex: u32,
    /// `DEFAULT_*` flags.
    pub flags: u32,
    /// Gateway (valid with [`DEFAULT_HAS_GATEWAY`]).
    pub gateway: [u32; 4],
}

/// Declares [`Counters`] and its names from one list: each counter is written once, with its
/// field name, its JSON name (the CLI's `--output json`), its table header and its meaning.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $field:ident, $json:literal, $header:literal;)+) => {
        /// Per-interface packet counters kept by the BPF programs, keyed by [`CounterKey`]
        /// (`T = u64`, [`IfCounters`]); userspace reuses the shape for derived values (rates).
        /// Userspace creates an interface's entry when it attaches a program; the programs only
        /// update existing entries, so nothing is left behind once userspace removes a pod.
        ///
        /// A packet the carrier redirects to `net1` counts `seen` and `redirected` on the carrier
        /// and `redirected_in` on `net1` (where `net1`'s own program then sees it again and lets
        /// it pass).
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counters<T> {
            $($(#[doc = $doc])+ pub $field: T,)+
        }

        /// The counters' names in field order, as the CLI's JSON spells them.
        pub const COUNTER_NAMES: [&str; COUNTERS_LEN] = [$($json),+];
        /// The counters' table headers in field order.
        pub const COUNTER_HEADERS: [&str; COUNTERS_LEN] = [$($header),+];

        impl<T: Copy> Counters<T> {
            /// The values in field order (the order of [`COUNTER_NAMES`]).
            pub fn to_array(&self) -> [T; COUNTERS_LEN] {
                [$(self.$field),+]
            }

            /// Counters from values in field order.
            pub fn from_array(values: [T; COUNTERS_LEN]) -> Self {
                let [$($field),+] = values;
                Counters { $($field),+ }
            }
        }
    };
}

/// The number of counters.
pub const COUNTERS_LEN: usize = 9;

counters! {
    /// Packets the program inspected on this interface.
    seen, "seen", "SEEN";
    /// Packets whose source address is in the source map.
    matched, "matched", "MATCHED";
    /// Packets this interface's program redirected to another interface.
    redirected, "redirected", "REDIRECTED";
    /// Packets redirected to this interface by a program of the pod.
    redirected_in, "redirectedIn", "REDIR-IN";
    /// Carrier packets of an unmanaged source sent the way of the main default route.
    fallback, "fallback", "FALLBACK";
    /// Packets left to the kernel unchanged.
    passed, "passed", "PASSED";
    /// Carrier packets with no next hop (no gateway for the source and no main default route).
    dropped_no_route, "droppedNoRoute", "DROP:NOROUTE";
    /// IP packets whose headers could not be read.
    dropped_malformed, "droppedMalformed", "DROP:MALFORMED";
    /// Packets `bpf_redirect_neigh` refused.
    dropped_redirect, "droppedRedirect", "DROP:REDIRECT";
}

/// The counters map's value: [`Counters`] of packets.
pub type IfCounters = Counters<u64>;

// The map value's layout: nine u64 one after the other, no padding, on both sides.
const _: () = assert!(core::mem::size_of::<IfCounters>() == COUNTERS_LEN * 8);
const _: () = assert!(core::mem::align_of::<IfCounters>() == 8);

impl<T: Copy> Counters<T> {
    /// Applies `f` to every counter.
    pub fn map<U: Copy>(&self, f: impl FnMut(T) -> U) -> Counters<U> {
        Counters::from_array(self.to_array().map(f))
    }
}

impl IfCounters {
    /// Adds another CPU's (or interface's) counters to these.
    pub fn add(&mut self, other: &IfCounters) {
        let mut sum = self.to_array();
        for (s, o) in sum.iter_mut().zip(other.to_array()) {
            *s += o;
        }
        *self = Counters::from_array(sum);
    }

    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_no_route + self.dropped_malformed + self.dropped_redirect
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: the types are #[repr(C)], Copy and have no padding (checked by the layout tests).
    unsafe impl aya::Pod for super::IfCounters {}
    unsafe impl aya::Pod for super::SrcKey {}
    unsafe impl aya::Pod for super::DefaultKey {}
    unsafe impl aya::Pod for super::CounterKey {}
    unsafe impl aya::Pod for super::SrcRoute {}
    unsafe impl aya::Pod for super::DefaultRoute {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn counters_have_no_padding() {
        assert_eq!(size_of::<IfCounters>(), 9 * 8);
        assert_eq!(align_of::<IfCounters>(), 8);
        assert_eq!(offset_of!(IfCounters, dropped_redirect), 64);
    }

    #[test]
    fn src_key_has_no_padding() {
        assert_eq!(size_of::<SrcKey>(), 32);
        assert_eq!(align_of::<SrcKey>(), 8);
        assert_eq!(offset_of!(SrcKey, family), 8);
        assert_eq!(offset_of!(SrcKey, reserved), 12);
        assert_eq!(offset_of!(SrcKey, addr), 16);
    }

    #[test]
    fn pod_keys_have_no_padding() {
        assert_eq!(size_of::<DefaultKey>(), 16);
        assert_eq!(offset_of!(DefaultKey, index), 8);
        assert_eq!(offset_of!(DefaultKey, reserved), 12);
        assert_eq!(size_of::<CounterKey>(), 16);
        assert_eq!(offset_of!(CounterKey, ifindex), 8);
        assert_eq!(offset_of!(CounterKey, reserved), 12);
    }

    #[test]
    fn src_route_has_no_padding() {
        assert_eq!(size_of::<SrcRoute>(), 8 + 3 * 16);
        assert_eq!(offset_of!(SrcRoute, gateway), 8);
        assert_eq!(offset_of!(SrcRoute, network), 24);
        assert_eq!(offset_of!(SrcRoute, mask), 40);
    }

    #[test]
    fn default_route_has_no_padding() {
        assert_eq!(size_of::<DefaultRoute>(), 24);
        assert_eq!(offset_of!(DefaultRoute, gateway), 8);
    }

    #[test]
    fn counters_add_every_field() {
        let one = IfCounters {
            seen: 1,
            matched: 1,
            redirected: 1,
            redirected_in: 1,
            fallback: 1,
            passed: 1,
            dropped_no_route: 1,
            dropped_malformed: 1,
            dropped_redirect: 1,
        };
        let mut sum = IfCounters::default();
        sum.add(&one);
        sum.add(&one);
        // Every field is 2: the struct is nine u64 with no padding.
        let words: [u64; 9] = unsafe { core::mem::transmute(sum) };
        assert!(words.iter().all(|w| *w == 2));
        assert_eq!(sum.dropped(), 6);
    }

    #[test]
    fn counters_arrays_follow_the_field_order() {
        let c = IfCounters::from_array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!((c.seen, c.redirected_in, c.dropped_redirect), (1, 4, 9));
        // the array order is the memory order (what the BPF map holds)
        let words: [u64; 9] = unsafe { core::mem::transmute(c) };
        assert_eq!(words, c.to_array());
        assert_eq!(COUNTER_NAMES[3], "redirectedIn");
        assert_eq!(COUNTER_HEADERS[3], "REDIR-IN");
        assert_eq!(c.map(|v| v * 2).to_array()[8], 18);
    }
}
