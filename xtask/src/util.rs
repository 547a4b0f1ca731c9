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
