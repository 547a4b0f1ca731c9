//! The one BPF builder of the workspace.
//!
//! `cargo xtask build-ebpf` and the build script of `multus-userspace` both call [`build`], so a
//! plain `cargo build` always produces (and embeds) up-to-date BPF objects. The BPF crate is
//! compiled with the nightly toolchain for `bpfel-unknown-none` with `-Z build-std=core` and linked
//! by bpf-linker (see docs/building.md); everything it needs is installed by `cargo xtask setup`.

use std::{
    env,
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
    process::Command,
};

/// Name of the package holding the BPF programs.
pub const EBPF_PACKAGE: &str = "multus-ebpf";
/// The BPF target triple.
pub const EBPF_TARGET: &str = "bpfel-unknown-none";
/// The toolchain that builds BPF (passed to `rustup run`).
pub const EBPF_TOOLCHAIN: &str = "nightly";
/// The BPF object files (one per `[[bin]]` of `multus-ebpf`).
pub const EBPF_OBJECTS: &[&str] = &["multus-sbr"];

/// Why the BPF build failed.
#[derive(Debug)]
pub enum BuildError {
    /// The nested cargo could not be started.
    Spawn(std::io::Error),
    /// The nested cargo ran and failed.
    Failed(String),
    /// A built object could not be copied to the output directory.
    Copy(PathBuf, std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Spawn(e) => write!(
                f,
                "cannot run `rustup run {EBPF_TOOLCHAIN} cargo`: {e}; run `cargo xtask setup` (installs rust-src and bpf-linker)"
            ),
            BuildError::Failed(status) => write!(
                f,
                "building the BPF programs failed ({status}); if bpf-linker or rust-src is missing, run `cargo xtask setup`"
            ),
            BuildError::Copy(p, e) => write!(f, "cannot copy BPF object {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for BuildError {}

/// The workspace root, given the manifest directory of a crate one level below it.
pub fn workspace_root_from(manifest_dir: &Path) -> PathBuf {
    let mut dir = manifest_dir.to_path_buf();
    while !dir.join("multus-ebpf").is_dir() {
        if !dir.pop() {
            return manifest_dir.to_path_buf();
        }
    }
    dir
}

/// Directories whose changes must trigger a rebuild of the BPF objects.
pub fn source_dirs(workspace_root: &Path) -> Vec<PathBuf> {
    vec![
        workspace_root.join("multus-ebpf/src"),
        workspace_root.join("multus-ebpf/Cargo.toml"),
        workspace_root.join("multus-common/src"),
        workspace_root.join("multus-common/Cargo.toml"),
    ]
}

/// Builds every BPF object and copies them into `out_dir`; returns their paths.
///
/// `quiet` suppresses the nested cargo's progress output (the build script captures it anyway).
pub fn build(
    workspace_root: &Path,
    out_dir: &Path,
    quiet: bool,
) -> Result<Vec<PathBuf>, BuildError> {
    let target_dir = workspace_root.join("target").join("ebpf");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(workspace_root)
        .args([
            "run",
            EBPF_TOOLCHAIN,
            "cargo",
            "build",
            "--package",
            EBPF_PACKAGE,
            "--bins",
            "--release",
        ])
        .args([
            "--target",
            EBPF_TARGET,
            "-Z",
            "build-std=core",
            "--target-dir",
        ])
        .arg(&target_dir);
    if quiet {
        cmd.arg("--quiet");
    }
    let mut flags = OsString::new();
    for (i, flag) in [
        format!("--cfg=bpf_target_arch=\"{}\"", env::consts::ARCH),
        "-Cdebuginfo=2".to_string(),
        "-Clink-arg=--btf".to_string(),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            flags.push("\x1f");
        }
        flags.push(flag);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags);
    // The outer cargo (when called from a build script) sets these for the stable toolchain.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(key);
    }
    let status = cmd.status().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::Failed(status.to_string()));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| BuildError::Copy(out_dir.to_path_buf(), e))?;
    let built = target_dir.join(EBPF_TARGET).join("release");
    let mut objects = Vec::new();
    for name in EBPF_OBJECTS {
        let src = built.join(name);
        let dst = out_dir.join(format!("{name}.bpf.o"));
        std::fs::copy(&src, &dst).map_err(|e| BuildError::Copy(src.clone(), e))?;
        objects.push(dst);
    }
    Ok(objects)
}
