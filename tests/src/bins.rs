//! Where the binaries under test are.

use std::path::{Path, PathBuf};

/// Directory of the Debian reference CNI plugins.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A product binary (`multus`, `ebpf-sbr`, `multusctl`): from `$MULTUS_BIN_DIR`, else the
/// workspace's `target/debug` (built by `cargo xtask test` before the tests run).
pub fn product(name: &str) -> PathBuf {
    let dir = std::env::var_os("MULTUS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("debug"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask test` (or `cargo build -p multus-userspace --bins`) first, or set MULTUS_BIN_DIR",
        p.display()
    );
    p
}

/// A reference plugin from Debian's containernetworking-plugins.
pub fn reference(name: &str) -> PathBuf {
    let p = Path::new(REFERENCE_PLUGINS).join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask setup` (installs containernetworking-plugins)",
        p.display()
    );
    p
}
