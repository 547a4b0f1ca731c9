//! Source-based routing programs of the multus dataplane (tc egress, attached with TCX).
//!
//! Two entry points share one decision ([`steer`]):
//! - [`sbr_carrier`] runs on the egress of the pod's carrier device, a NOARP veth that the pod's
//!   default-routed unicast traffic is routed to. The carrier is not a real path: every IP unicast
//!   packet on it is redirected (by source address to its interface, otherwise the way of the main
//!   default route) or dropped, never passed.
//! - [`sbr_egress`] runs on the egress of the pod's real interfaces and only acts on a packet whose
//!   source address belongs to another managed interface (the main table sent it out of the wrong
//!   interface through a more specific route); everything else passes untouched.
//!
//! Redirection uses `bpf_redirect_neigh` with an explicit next hop (the interface's gateway, or the
//! destination when it is on the interface's prefix), so the kernel resolves the neighbour on the
//! target interface. ARP, ND, non-IP, L2 multicast/broadcast, link-local and unspecified addresses
//! are never redirected by source.
//!
//! The programs are loaded once per node and shared by every pod. A packet's pod is the network
//! namespace of the device it leaves by: [`netns_cookie`] reads `skb->dev->nd_net.net->net_cookie`
//! (offsets from the kernel's BTF, set by userspace at load), the value `SO_NETNS_COOKIE` gives
//! userspace inside the pod. `bpf_get_netns_cookie(skb)` is not used: for tc programs it returns
//! the namespace of `skb->sk` and falls back to the initial namespace for packets without a socket
//! (forwarded packets, netfilter REJECT replies), so those would lose their pod.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{bpf_redir_neigh, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::{bpf_probe_read_kernel, generated::bpf_redirect_neigh},
    macros::{classifier, map},
    maps::{HashMap, PerCpuHashMap},
    programs::TcContext,
};
use aya_log_ebpf::debug;
use multus_common::{
    CounterKey, DefaultKey, DefaultRoute, IfCounters, SrcKey, SrcRoute, AF_INET, AF_INET6,
    COUNTERS_MAP_ENTRIES, DEFAULTS_MAP_ENTRIES, DEFAULT_V4, DEFAULT_V6, DEFAULT_VALID,
    MAP_NO_PREALLOC, ROUTE_HAS_GATEWAY, SRC_MAP_ENTRIES,
};

/// Pod and source address -> route of the interface that owns it.
#[map]
static SBR_SRC: HashMap<SrcKey, SrcRoute> =
    HashMap::with_max_entries(SRC_MAP_ENTRIES, MAP_NO_PREALLOC);

/// Each pod's main-table default route, per family.
#[map]
static SBR_DEFAULTS: HashMap<DefaultKey, DefaultRoute> =
    HashMap::with_max_entries(DEFAULTS_MAP_ENTRIES, MAP_NO_PREALLOC);

/// Per-interface counters of each pod (entries made by userspace, only updated here).
#[map]
static SBR_COUNTERS: PerCpuHashMap<CounterKey, IfCounters> =
    PerCpuHashMap::with_max_entries(COUNTERS_MAP_ENTRIES, MAP_NO_PREALLOC);

/// `offsetof(struct sk_buff, dev)`, set at load from the kernel's BTF.
#[unsafe(no_mangle)]
static SBR_SKB_DEV_OFFSET: u32 = 0;
/// Offset of `nd_net.net` in `struct net_device`, set at load.
#[unsafe(no_mangle)]
static SBR_DEV_NET_OFFSET: u32 = 0;
/// `offsetof(struct net, net_cookie)`, set at load.
#[unsafe(no_mangle)]
static SBR_NET_COOKIE_OFFSET: u32 = 0;

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Offset of the IPv4 source address (the destination follows it).
const IPV4_SRC: usize = ETH_HLEN + 12;
/// Offset of the IPv6 source address (the destination follows it).
const IPV6_SRC: usize = ETH_HLEN + 8;

/// Carrier: redirects IP unicast by source address.
#[classifier]
pub fn sbr_carrier(ctx: TcContext) -> i32 {
    steer(&ctx, true)
}

/// Real interface: redirects packets whose source belongs to another managed interface.
#[classifier]
pub fn sbr_egress(ctx: TcContext) -> i32 {
    steer(&ctx, false)
}

/// What to do with a packet.
enum Verdict {
    /// Leave it to the kernel (continue with the next TCX program, if any).
    Pass,
    /// Redirect to `ifindex` with next hop `nh`, or with the next hop of the main table's route out
    /// of `ifindex` when `nh` is None (`fallback`: unmanaged source on the carrier).
    Redirect {
        ifindex: u32,
        family: u32,
        nh: Option<[u32; 4]>,
        fallback: bool,
    },
    /// Drop, counting the reason.
    Drop(DropReason),
}

enum DropReason {
    NoRoute,
    Malformed,
}

/// What happened to a packet, for the counters.
#[derive(Clone, Copy)]
enum Outcome {
    Passed,
    Redirected,
    Fallback,
    NoRoute,
    Malformed,
    RedirectFailed,
}

#[inline(always)]
fn steer(ctx: &TcContext, carrier: bool) -> i32 {
    // SAFETY: the context points at a valid __sk_buff for the duration of the program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let Some(cookie) = netns_cookie(ctx) else {
        // Cannot happen with the right offsets; the carrier must not pass IP unicast.
        return if carrier {
            TC_ACT_SHOT as i32
        } else {
            TC_ACT_UNSPEC
        };
    };
    let (verdict, matched) = decide(ctx, cookie, ifindex, carrier);
    let (action, outcome) = match verdict {
        Verdict::Pass => (TC_ACT_UNSPEC, Outcome::Passed),
        Verdict::Drop(DropReason::NoRoute) => (TC_ACT_SHOT as i32, Outcome::NoRoute),
        Verdict::Drop(DropReason::Malformed) => (TC_ACT_SHOT as i32, Outcome::Malformed),
        Verdict::Redirect {
            ifindex: target,
            family,
            nh,
            fallback,
        } => {
            if redirect(target, family, nh) {
                count_in(cookie, target);
                debug!(
                    ctx,
                    "sbr: if {} -> if {} (fallback {}) ns {}",
                    ifindex,
                    target,
                    fallback as u8,
                    cookie
                );
                (
                    TC_ACT_REDIRECT as i32,
                    if fallback {
                        Outcome::Fallback
                    } else {
                        Outcome::Redirected
                    },
                )
            } else {
                (TC_ACT_SHOT as i32, Outcome::RedirectFailed)
            }
        }
    };
    count(cookie, ifindex, matched, outcome);
    action
}

/// The cookie of the network namespace of the device the packet leaves by:
/// `skb->dev->nd_net.net->net_cookie`. The context of a tc program is the kernel's `sk_buff`.
#[inline(always)]
fn netns_cookie(ctx: &TcContext) -> Option<u64> {
    // SAFETY: read-only globals (rodata, frozen at load); bpf_probe_read_kernel never faults, it
    // returns an error for a bad address.
    unsafe {
        let dev_off = core::ptr::read_volatile(&SBR_SKB_DEV_OFFSET) as usize;
        let net_off = core::ptr::read_volatile(&SBR_DEV_NET_OFFSET) as usize;
        let cookie_off = core::ptr::read_volatile(&SBR_NET_COOKIE_OFFSET) as usize;
        let skb = ctx.skb.skb as *const u8;
        let dev: *const u8 = bpf_probe_read_kernel(skb.add(dev_off) as *const *const u8).ok()?;
        let net: *const u8 = bpf_probe_read_kernel(dev.add(net_off) as *const *const u8).ok()?;
        bpf_probe_read_kernel(net.add(cookie_off) as *const u64).ok()
    }
}

/// `bpf_redirect_neigh` to `target`, with an explicit next hop or (None) the kernel's FIB choice
/// out of `target`. Returns whether the helper accepted the packet.
#[inline(always)]
fn redirect(target: u32, family: u32, nh: Option<[u32; 4]>) -> bool {
    // SAFETY: params is a valid bpf_redir_neigh on the stack and the size matches; a null params
    // pointer asks the kernel for a FIB lookup restricted to the target interface.
    let ret = unsafe {
        match nh {
            None => bpf_redirect_neigh(target, core::ptr::null_mut(), 0, 0),
            Some(nh) => {
                let mut params = bpf_redir_neigh {
                    nh_family: family,
                    __bindgen_anon_1: core::mem::zeroed(),
                };
                if family == AF_INET {
                    params.__bindgen_anon_1.ipv4_nh = nh[0];
                } else {
                    params.__bindgen_anon_1.ipv6_nh = nh;
                }
                bpf_redirect_neigh(
                    target,
                    &mut params,
                    core::mem::size_of::<bpf_redir_neigh>() as i32,
                    0,
                )
            }
        }
    };
    ret == TC_ACT_REDIRECT as i64
}

/// Counts one packet of `ifindex` (one map lookup per packet).
#[inline(never)]
fn count(cookie: u64, ifindex: u32, matched: bool, outcome: Outcome) {
    bump(cookie, ifindex, |c| {
        c.seen += 1;
        c.matched += matched as u64;
        match outcome {
            Outcome::Passed => c.passed += 1,
            Outcome::Redirected => c.redirected += 1,
            Outcome::Fallback => {
                c.redirected += 1;
                c.fallback += 1;
            }
            Outcome::NoRoute => c.dropped_no_route += 1,
            Outcome::Malformed => c.dropped_malformed += 1,
            Outcome::RedirectFailed => c.dropped_redirect += 1,
        }
    });
}

/// Counts a packet redirected to `ifindex`.
#[inline(never)]
fn count_in(cookie: u64, ifindex: u32) {
    bump(cookie, ifindex, |c| c.redirected_in += 1);
}

/// Decides the fate of one packet; the flag says whether its source was found in the map.
#[inline(always)]
fn decide(ctx: &TcContext, cookie: u64, ifindex: u32, carrier: bool) -> (Verdict, bool) {
    // L2 multicast/broadcast (bit 0 of the first destination byte): never ours.
    match ctx.load::<u8>(0) {
        Ok(b) if b & 1 == 0 => {}
        Ok(_) => return (Verdict::Pass, false),
        Err(_) => return (Verdict::Pass, false),
    }
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    let (family, src, dst) = match proto {
        ETH_P_IP => match ctx.load::<[u32; 2]>(IPV4_SRC) {
            Ok([s, d]) => (AF_INET, [s, 0, 0, 0], [d, 0, 0, 0]),
            Err(_) => return (malformed(carrier), false),
        },
        ETH_P_IPV6 => match ctx.load::<[[u32; 4]; 2]>(IPV6_SRC) {
            Ok([s, d]) => (AF_INET6, s, d),
            Err(_) => return (malformed(carrier), false),
        },
        // ARP and every other protocol: not routed by us.
        _ => return (Verdict::Pass, false),
    };
    let special = if family == AF_INET {
        special_v4(src[0], dst[0])
    } else {
        special_v6(&src, &dst)
    };

    let mut matched = false;
    if !special {
        let key = SrcKey {
            cookie,
            family,
            reserved: 0,
            addr: src,
        };
        // SAFETY: the value is only read, within this program run.
        if let Some(route) = unsafe { SBR_SRC.get(&key) } {
            matched = true;
            if !carrier && route.ifindex == ifindex {
                // Already leaving through the interface that owns the source.
                return (Verdict::Pass, true);
            }
            if on_link(&dst, route) {
                return (
                    Verdict::Redirect {
                        ifindex: route.ifindex,
                        family,
                        nh: Some(dst),
                        fallback: false,
                    },
                    true,
                );
            }
            if route.flags & ROUTE_HAS_GATEWAY != 0 {
                return (
                    Verdict::Redirect {
                        ifindex: route.ifindex,
                        family,
                        nh: Some(route.gateway),
                        fallback: false,
                    },
                    true,
                );
            }
            // The source's interface has no route for it: the main table decides, as without SBR.
        }
    }
    if !carrier {
        return (Verdict::Pass, matched);
    }
    // On the carrier, "the main table decides" means the way of the main default route: the kernel
    // looks the destination up restricted to the default route's interface. Letting it pick the
    // next hop (rather than passing the gateway) also gives the packet that interface's route, so
    // a packet queued while the gateway's neighbour resolves is later sent the right way.
    let key = DefaultKey {
        cookie,
        index: if family == AF_INET {
            DEFAULT_V4
        } else {
            DEFAULT_V6
        },
        reserved: 0,
    };
    // SAFETY: the value is only read, within this program run.
    match unsafe { SBR_DEFAULTS.get(&key) } {
        Some(d) if d.flags & DEFAULT_VALID != 0 => (
            Verdict::Redirect {
                ifindex: d.ifindex,
                family,
                nh: None,
                fallback: true,
            },
            matched,
        ),
        _ => (Verdict::Drop(DropReason::NoRoute), matched),
    }
}

/// Headers could not be read: the carrier must not pass IP unicast, a real interface leaves it be.
#[inline(always)]
fn malformed(carrier: bool) -> Verdict {
    if carrier {
        Verdict::Drop(DropReason::Malformed)
    } else {
        Verdict::Pass
    }
}

/// IPv4 addresses that source routing never touches: unspecified or link-local source,
/// link-local, multicast, class E or limited-broadcast destination. Words are network order.
#[inline(always)]
fn special_v4(src: u32, dst: u32) -> bool {
    let s = src.to_ne_bytes();
    let d = dst.to_ne_bytes();
    src == 0 || (s[0] == 169 && s[1] == 254) || (d[0] == 169 && d[1] == 254) || d[0] >= 224
}

/// IPv6 addresses that source routing never touches: unspecified or link-local source,
/// link-local or multicast destination.
#[inline(always)]
fn special_v6(src: &[u32; 4], dst: &[u32; 4]) -> bool {
    let s = src[0].to_ne_bytes();
    let d = dst[0].to_ne_bytes();
    let unspecified = src[0] == 0 && src[1] == 0 && src[2] == 0 && src[3] == 0;
    let src_ll = s[0] == 0xfe && (s[1] & 0xc0) == 0x80;
    let dst_ll = d[0] == 0xfe && (d[1] & 0xc0) == 0x80;
    unspecified || src_ll || dst_ll || d[0] == 0xff
}

/// Whether `dst` is on the on-link prefix of the route.
#[inline(always)]
fn on_link(dst: &[u32; 4], route: &SrcRoute) -> bool {
    (dst[0] & route.mask[0]) == route.network[0]
        && (dst[1] & route.mask[1]) == route.network[1]
        && (dst[2] & route.mask[2]) == route.network[2]
        && (dst[3] & route.mask[3]) == route.network[3]
}

/// Updates this CPU's counters of the pod's interface `ifindex`. Userspace creates the entry when
/// it attaches a program; an interface without one (or of a pod being removed) is not counted, so
/// the programs never add entries that userspace would have to find and remove.
#[inline(always)]
fn bump(cookie: u64, ifindex: u32, f: impl FnOnce(&mut IfCounters)) {
    let key = CounterKey {
        cookie,
        ifindex,
        reserved: 0,
    };
    if let Some(c) = SBR_COUNTERS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value, and tc programs run with preemption disabled.
        f(unsafe { &mut *c })
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
