//! The multus CNI meta-plugin, the eBPF source-based-routing plugin and the operators' CLI.
#![expect(
    clippy::result_large_err,
    reason = "errors are the cold path of a short-lived process; keeping them unboxed keeps them simple"
)]

pub mod autoconf;
pub mod cni;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod delegate;
pub mod devices;
pub mod error;
pub mod explain;
pub mod hash;
pub mod install;
pub mod kube;
pub mod logging;
pub mod metaplugin;
pub mod netns;
pub mod sbr;
pub mod sbrplugin;
pub mod shim;

/// BPF objects embedded at build time (built by `multus-ebpf-builder`).
pub mod bpf_objects {
    /// The source-based-routing programs (`multus-ebpf`, bin `multus-sbr`).
    pub static SBR: &[u8] =
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/multus-sbr.bpf.o"));
    /// FNV-1a (64 bits, hex) of [`SBR`], computed by the build script: names the directory the
    /// node's programs are pinned in.
    pub static SBR_HASH: &str = include_str!(concat!(env!("OUT_DIR"), "/multus-sbr.bpf.hash"));
}
