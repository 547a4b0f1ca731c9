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
/// directory of the running test's own build (`target/<host tuple>/debug`, above `deps/`),
/// where `cargo xtask test` builds them before the tests run.
pub fn product(name: &str) -> PathBuf {
    let dir = std::env::var_os("MULTUS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(own_profile_dir);
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask test` (or `cargo build -p multus-userspace --bins`) first, or set MULTUS_BIN_DIR",
        p.display()
    );
    p
}

/// A binary of this test crate (`cni-recorder`), built beside the running test by cargo.
pub fn test_bin(name: &str) -> PathBuf {
    let p = own_profile_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: cargo builds it with the integration tests",
        p.display()
    );
    p
}

/// `target/<host tuple>/<profile>` of the running executable (a test in `deps/`, or a binary
/// such as xtask).
pub fn own_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's own path");
    let dir = exe.parent().expect("a directory holds the test executable");
    if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
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

/// A copy of the product binary `name` that any user can run: the tests that run a binary as
/// another user (uid 65534) must not run it from the work tree, which may sit under a directory
/// only root can enter (a root user's clone in /root). The copy lives in a temporary directory
/// (mode 0755) that goes with the returned guard.
pub fn world_executable(name: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("multus-bin-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the directory");
    let copy = dir.path().join(name);
    std::fs::copy(product(name), &copy).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the copy");
    (dir, copy)
}
