//! Types shared by the BPF programs (`multus-ebpf`) and userspace (`multus-userspace`).
//!
//! Every type here is `#[repr(C)]`, `Copy`, and free of implicit padding, so the byte layout is
//! the same on both sides of a BPF map. Userspace enables the `user` feature to get `aya::Pod`.
#![no_std]

/// Per-interface packet counters kept by the BPF programs, indexed by interface index.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfCounters {
    /// Packets the program inspected.
    pub seen: u64,
    /// Packets left to the kernel unchanged.
    pub passed: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: the types are #[repr(C)], Copy and have no padding (checked by the layout tests).
    unsafe impl aya::Pod for super::IfCounters {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn counters_have_no_padding() {
        assert_eq!(core::mem::size_of::<IfCounters>(), 16);
    }
}
