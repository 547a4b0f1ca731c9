//! Builds the BPF objects (through the workspace's one builder) so the binaries can embed them.
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let root = multus_ebpf_builder::workspace_root_from(&manifest_dir);
    for dir in multus_ebpf_builder::source_dirs(&root) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    let objects = match multus_ebpf_builder::build(&root, &out_dir, true) {
        Ok(objects) => objects,
        Err(e) => {
            println!("cargo::error={e}");
            std::process::exit(1);
        }
    };
    // The name of the directory the node's programs are pinned in: FNV-1a (64 bits) of the object,
    // computed here rather than at every ADD.
    for object in objects {
        let hashed = std::fs::read(&object).and_then(|bytes| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            std::fs::write(object.with_extension("hash"), format!("{h:016x}"))
        });
        if let Err(e) = hashed {
            println!("cargo::error=cannot hash {}: {e}", object.display());
            std::process::exit(1);
        }
    }
}
