//! BPF programs of the multus dataplane.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::TC_ACT_OK,
    macros::{classifier, map},
    maps::PerCpuHashMap,
    programs::TcContext,
};
use multus_common::IfCounters;

/// Per-interface counters, keyed by interface index.
#[map]
static COUNTERS: PerCpuHashMap<u32, IfCounters> = PerCpuHashMap::with_max_entries(64, 0);

/// Counts every packet leaving the interface and lets it pass.
#[classifier]
pub fn count_egress(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let ptr = COUNTERS.get_ptr_mut(&ifindex);
    match ptr {
        Some(c) => unsafe {
            (*c).seen += 1;
            (*c).passed += 1;
        },
        None => {
            let c = IfCounters { seen: 1, passed: 1 };
            let _ = COUNTERS.insert(&ifindex, &c, 0);
        }
    }
    TC_ACT_OK
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
