//! `cargo xtask setup`: installs only what is missing, so it is cheap to run before every task.

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{is_root, output, run_cmd};

/// Debian packages the tests, the demo and the benchmarks use.
const PACKAGES: &[&str] = &[
    "containernetworking-plugins",
    "iproute2",
    "iputils-ping",
    "iperf3",
    "tcpdump",
    "bpftool",
    "podman",
    "runc",
    // the infra container of a pod `podman kube play` runs (the deployment tests)
    "catatonit",
    "busybox-static",
    "ethtool",
    "procps",
    // a gRPC implementation to check the PodResources client and stand-in against
    "python3-grpcio",
];
/// The bpf-linker release that works with this project's nightly (see docs/building.md).
const BPF_LINKER_VERSION: &str = "0.10.3";

pub fn run() -> Result<()> {
    let mut missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if which("kubectl").is_none() {
        missing.push("kubernetes-client");
    }
    if !missing.is_empty() {
        if !is_root() {
            bail!("missing Debian packages {missing:?}; run `cargo xtask setup` as root");
        }
        eprintln!("setup: installing {missing:?}");
        run_cmd(Command::new("apt-get").arg("update").arg("-q"))?;
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("setup: installing the nightly toolchain");
        run_cmd(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if !components.lines().any(|l| l.trim().starts_with("rust-src")) {
        eprintln!("setup: adding rust-src to the nightly toolchain");
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if output(Command::new("cargo").args(["clippy", "--version"])).is_none() {
        eprintln!("setup: adding clippy to the default toolchain");
        run_cmd(Command::new("rustup").args(["component", "add", "clippy"]))?;
    }
    let linker = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if !linker.contains(BPF_LINKER_VERSION) {
        eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION}");
        run_cmd(Command::new("cargo").args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--locked",
            "--force",
        ]))?;
    }
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// The path of an executable on PATH.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}
