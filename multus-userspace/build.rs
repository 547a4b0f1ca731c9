//! Builds the BPF objects (through the workspace's one builder) so the binaries can embed them.
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = multus_ebpf_builder::workspace_root_from(&manifest_dir);
    for dir in multus_ebpf_builder::source_dirs(&root) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    if let Err(e) = multus_ebpf_builder::build(&root, &out_dir, true) {
        println!("cargo::error={e}");
        std::process::exit(1);
    }
}
