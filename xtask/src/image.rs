//! `cargo xtask image [--tag VERSION]`: the container image `localhost/multus-rs:<version>`, built
//! offline with podman from deploy/image/Containerfile (`FROM scratch`, nothing pulled).
//!
//! Builds the two binaries the image holds (the multi-call `multus-node` and `multus-shim`) with
//! the `image` profile (Cargo.toml: release, stripped, fat LTO), stages a build context under
//! `target/multus-rs/context/` (`usr/bin/multus-daemon` and its hard links `multus`, `multusctl`,
//! `ebpf-sbr`, plus `usr/bin/multus-shim`), runs `podman build`, prints the image's size and fails
//! when it exceeds [`MAX_IMAGE_BYTES`], and saves the image as
//! `target/multus-rs/multus-rs-<version>.tar` (docker-archive, for `podman load` into another
//! storage, as the deployment tests may do). The same sources and version give the same image ID.
//! podman's own environment (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`) is honoured.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::util::{root, run_cmd, warn_if_low_disk};

/// The image's repository.
pub const REPOSITORY: &str = "localhost/multus-rs";
/// The size goal of the issue: 25 MB.
pub const MAX_IMAGE_BYTES: u64 = 25_000_000;
/// The names the multi-call binary is hard-linked under; the first is the file itself.
const MULTI_CALL_NAMES: &[&str] = &["multus-daemon", "multus", "multusctl", "ebpf-sbr"];

/// Builds, checks and saves the image; `tag` defaults to the workspace version.
pub fn run(tag: Option<String>) -> Result<()> {
    let version = tag.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!("--tag {version:?}: a tag is made of letters, digits, '.', '_' and '-'");
    }
    crate::setup::which("podman")
        .context("podman is not installed: run `cargo xtask setup` (installs podman)")?;
    // Not target/image/: cargo puts the `image` profile's host artifacts there.
    let image_dir = root().join("target").join("multus-rs");
    fs::create_dir_all(&image_dir)
        .with_context(|| format!("cannot create {}", image_dir.display()))?;
    // One image build at a time (test binaries run in parallel may each ask for the image).
    let _lock = lock(&image_dir.join("lock"))?;
    let built = build_binaries()?;
    let context = image_dir.join("context");
    stage(&built, &context)?;
    let reference = format!("{REPOSITORY}:{version}");
    run_cmd(
        Command::new("podman")
            // No layer cache (podman 4.3's keys a LABEL before `${VERSION}` is expanded, so another
            // --tag would get the first one's label); the time stamp of the last commit instead of
            // now: the same sources and version give the same image ID, and no dangling images.
            .args([
                "build",
                "--pull=never",
                "--quiet",
                "--layers=false",
                "--timestamp",
            ])
            .arg(source_date_epoch().to_string())
            .arg("--build-arg")
            .arg(format!("VERSION={version}"))
            .args(["--tag", &reference, "--file"])
            .arg(context.join("Containerfile"))
            .arg(&context),
    )?;
    let size = image_size(&reference)?;
    println!(
        "{reference}: {size} bytes ({:.1} MB); goal {:.0} MB",
        size as f64 / 1e6,
        MAX_IMAGE_BYTES as f64 / 1e6
    );
    let archive = image_dir.join(format!("multus-rs-{version}.tar"));
    let _ = fs::remove_file(&archive);
    run_cmd(
        Command::new("podman")
            .args(["save", "--quiet", "--format", "docker-archive", "--output"])
            .arg(&archive)
            .arg(&reference),
    )?;
    println!("saved as {}", archive.display());
    if size > MAX_IMAGE_BYTES {
        bail!("{reference} is {size} bytes, more than the goal of {MAX_IMAGE_BYTES}");
    }
    Ok(())
}

/// The Cargo profile of the image's binaries (Cargo.toml: release, stripped, fat LTO).
pub const PROFILE: &str = "image";

/// Builds the image's two binaries with the [`PROFILE`] profile; returns their directory.
pub fn build_binaries() -> Result<PathBuf> {
    warn_if_low_disk(&root());
    run_cmd(
        crate::util::cargo()
            .current_dir(root())
            .args(["build", "--profile", PROFILE, "-p", "multus-userspace"])
            .args(["--bin", "multus-node", "--bin", "multus-shim"]),
    )?;
    Ok(crate::build::host_target_dir()?.join(PROFILE))
}

/// Stages the build context: the Containerfile, the multi-call binary under its names (hard
/// links) and the shim, all mode 0755.
fn stage(built: &Path, context: &Path) -> Result<()> {
    if context.exists() {
        fs::remove_dir_all(context)
            .with_context(|| format!("cannot empty {}", context.display()))?;
    }
    let bin = context.join("usr").join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    fs::copy(
        root().join("deploy").join("image").join("Containerfile"),
        context.join("Containerfile"),
    )
    .context("cannot copy deploy/image/Containerfile")?;
    let copy = |from: &Path, to: &Path| -> Result<()> {
        fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", to.display()))
    };
    let first = bin.join(MULTI_CALL_NAMES[0]);
    copy(&built.join("multus-node"), &first)?;
    for name in &MULTI_CALL_NAMES[1..] {
        fs::hard_link(&first, bin.join(name))
            .with_context(|| format!("cannot link {name} to {}", first.display()))?;
    }
    copy(&built.join("multus-shim"), &bin.join("multus-shim"))
}

/// The time of the last commit (seconds since the epoch), or 0 outside a git work tree.
fn source_date_epoch() -> u64 {
    crate::util::output(
        Command::new("git")
            .current_dir(root())
            .args(["log", "-1", "--format=%ct"]),
    )
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// An exclusive `flock` on `path`, released when the file is dropped.
fn lock(path: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; it blocks until the lock is ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(file)
}

/// The image's size in bytes, as podman reports it.
fn image_size(reference: &str) -> Result<u64> {
    let out = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Size}}", reference])
        .output()
        .context("cannot run podman image inspect")?;
    if !out.status.success() {
        bail!(
            "podman image inspect {reference} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("podman reported the size {:?}", text.trim()))
}
