//! Small helpers for running commands.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs a command, streaming its output; fails when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout (None when it cannot run or fails).
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Free space below which a build is likely to fail part-way (a fresh debug build and its
/// tests take about 2 GB, a release build about 1 GB more).
const LOW_DISK_BYTES: u64 = 4 << 30;

/// Warns on stderr when the filesystem holding `path` has little free space left, so a build
/// that then fails with ENOSPC is explained up front. Never fails.
pub fn warn_if_low_disk(path: &std::path::Path) {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return;
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    if free < LOW_DISK_BYTES {
        eprintln!(
            "warning: only {:.1} GiB free on the filesystem of {}; the build needs about 3 GiB",
            free as f64 / (1u64 << 30) as f64,
            path.display()
        );
    }
}

/// The variables `cargo run` sets for the crate it runs (xtask) and a plain `cargo build` from a
/// shell does not. Passed on to the builds xtask starts, they change those builds' inputs: ring's
/// build script reruns when `CARGO_MANIFEST_DIR` changes, so alternating `cargo xtask ...` and
/// `cargo build` rebuilt ring and everything above it (for the image: a full LTO build).
const RUN_ONLY_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

/// A `cargo` command with the environment a shell's `cargo` would have (see [`RUN_ONLY_VARS`];
/// the `CARGO_PKG_*` variables too).
pub fn cargo() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if RUN_ONLY_VARS.contains(&key.as_ref()) || key.starts_with("CARGO_PKG_") {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The workspace root.
pub fn root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cargo_drops_the_variables_cargo_run_set_for_xtask() {
        // This test runs under cargo, which sets them as `cargo run` does.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let cmd = super::cargo();
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            removed.contains(&"CARGO_MANIFEST_DIR".to_string()),
            "{removed:?}"
        );
        assert!(
            removed.contains(&"CARGO_PKG_NAME".to_string()),
            "{removed:?}"
        );
        assert!(!removed.iter().any(|k| k == "CARGO_HOME" || k == "PATH"));
    }
}
