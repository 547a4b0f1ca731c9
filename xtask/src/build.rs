//! `cargo xtask build-ebpf` and `cargo xtask build`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::util::{root, run_cmd, warn_if_low_disk};

/// Builds the BPF objects with the workspace's one builder.
pub fn ebpf() -> Result<()> {
    let out = root().join("target").join("ebpf-objects");
    let objects = multus_ebpf_builder::build(&root(), &out, false)?;
    for o in objects {
        println!("{}", o.display());
    }
    Ok(())
}

/// Builds the product binaries; returns the directory holding them.
pub fn binaries(release: bool) -> Result<PathBuf> {
    warn_if_low_disk(&root());
    let mut cmd = crate::util::cargo();
    cmd.current_dir(root())
        .args(["build", "-p", "multus-userspace", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    run_cmd(&mut cmd)?;
    Ok(host_target_dir()?.join(if release { "release" } else { "debug" }))
}

/// `target/<host tuple>`: the workspace builds for the host named explicitly
/// (`build.target = "host-tuple"` in .cargo/config.toml), and xtask itself is one of its
/// debug binaries, `target/<host tuple>/debug/xtask`.
pub fn host_target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("xtask's own path")?;
    exe.parent()
        .and_then(|profile| profile.parent())
        .map(PathBuf::from)
        .with_context(|| format!("{} is not inside a target directory", exe.display()))
}

/// The host tuple the workspace builds for (the name of [`host_target_dir`]).
pub fn host_tuple() -> Result<String> {
    let dir = host_target_dir()?;
    dir.file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .with_context(|| format!("no host tuple in {}", dir.display()))
}
