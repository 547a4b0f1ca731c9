//! The multus CNI meta-plugin, the eBPF source-based-routing plugin and the operators' CLI.

pub mod netns;
pub mod sbr;

/// BPF objects embedded at build time (built by `multus-ebpf-builder`).
pub mod bpf_objects {
    /// The source-based-routing programs (`multus-ebpf`, bin `multus-sbr`).
    pub static SBR: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/multus-sbr.bpf.o"));
}
