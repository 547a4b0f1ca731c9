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

/// The product binary `name` built with the cargo feature `fault-injection` (`multus::fault`: the
/// crash tests), from `$MULTUS_FAULT_BIN_DIR`, else built once per test process into its own
/// target directory, `target/fault`, so the product binaries stay without it. A missing
/// `target/fault` is first seeded from the normal build by hard links (no disk, no time), so only
/// multus-userspace compiles.
pub fn fault_injection(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("MULTUS_FAULT_BIN_DIR") {
            return PathBuf::from(dir);
        }
        build_fault_injection().unwrap_or_else(|e| panic!("{e}"))
    });
    let p = dir.join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// `cargo build -p multus-userspace --bin multus --bin ebpf-sbr --bin multus-daemon --features
/// fault-injection --target-dir target/fault`, returning the directory of its binaries.
fn build_fault_injection() -> Result<PathBuf, String> {
    let profile_dir = own_profile_dir();
    let (Some(host_dir), Some(profile)) = (profile_dir.parent(), profile_dir.file_name()) else {
        return Err(format!(
            "{} is not in a target directory",
            profile_dir.display()
        ));
    };
    let (Some(target), Some(host)) = (host_dir.parent(), host_dir.file_name()) else {
        return Err(format!(
            "{} is not in a target directory",
            host_dir.display()
        ));
    };
    let fault = target.join("fault");
    if !fault.exists() {
        seed(target, &fault, host, profile)?;
    }
    let mut cmd = std::process::Command::new(env!("CARGO"));
    // Only the binaries the crash tests run, without incremental data: the build stays small.
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "multus-userspace",
            "--bin",
            "multus",
            "--bin",
            "ebpf-sbr",
            "--bin",
            "multus-daemon",
            "--features",
            "fault-injection",
            "--target-dir",
        ])
        .env("CARGO_INCREMENTAL", "0");
    cmd.arg(&fault);
    // What cargo set for this test crate must not reach the build: a build script that tracks
    // one of them (ring's tracks CARGO_MANIFEST_DIR) would rebuild everything above it.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_TARGET_TMPDIR",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the fault-injection binaries failed: {status}"
        ));
    }
    Ok(fault.join(host).join(profile))
}

/// Hard-links the normal build's dependencies into a new target directory `fault` (a copy made
/// in a temporary sibling, renamed into place, so a concurrent test process never sees half).
fn seed(
    target: &Path,
    fault: &Path,
    host: &std::ffi::OsStr,
    profile: &std::ffi::OsStr,
) -> Result<(), String> {
    let tmp = target.join(format!("fault.seed-{}", std::process::id()));
    let copy = |from: PathBuf, to: PathBuf| -> Result<(), String> {
        if !from.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&to).map_err(|e| format!("mkdir {}: {e}", to.display()))?;
        for sub in ["deps", "build", ".fingerprint"] {
            if !from.join(sub).exists() {
                continue;
            }
            let out = std::process::Command::new("cp")
                .arg("-al")
                .arg(from.join(sub))
                .arg(&to)
                .status()
                .map_err(|e| format!("cp: {e}"))?;
            if !out.success() {
                return Err(format!("cp -al {} failed", from.join(sub).display()));
            }
        }
        Ok(())
    };
    // Build scripts and proc-macros (built for the host without a target), then the product's.
    copy(target.join(profile), tmp.join(profile))?;
    copy(
        target.join(host).join(profile),
        tmp.join(host).join(profile),
    )?;
    if std::fs::rename(&tmp, fault).is_err() {
        // Another process seeded it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
