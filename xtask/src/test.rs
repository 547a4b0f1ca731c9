//! `cargo xtask test`: setup, the workspace lints (clippy, Cargo.toml `[workspace.lints]`), build,
//! then every test of the workspace (unit and privileged integration tests, which need root and
//! never skip).

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{is_root, root, run_cmd};

pub fn run(extra: &[String]) -> Result<()> {
    crate::setup::run()?;
    if !is_root() {
        bail!("the integration tests create network namespaces and load BPF programs: run `cargo xtask test` as root");
    }
    let mut clippy = Command::new(env!("CARGO"));
    clippy
        .current_dir(root())
        .args(["clippy", "--quiet", "--all-targets", "--", "-D", "warnings"]);
    run_cmd(&mut clippy).map_err(|e| anyhow::anyhow!("the workspace lints failed: {e}"))?;
    // The fault-injection hook (multus::fault, the crash tests) is built only under its feature:
    // lint it too (the tests build its binaries into target/fault themselves).
    let mut faults = Command::new(env!("CARGO"));
    faults.current_dir(root()).args([
        "clippy",
        "--quiet",
        "-p",
        "multus-userspace",
        "--features",
        "fault-injection",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run_cmd(&mut faults).map_err(|e| anyhow::anyhow!("the fault-injection lints failed: {e}"))?;
    let bins = crate::build::binaries(false)?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["test", "--no-fail-fast"])
        .env("MULTUS_BIN_DIR", &bins);
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        cmd.env("RUST_TEST_THREADS", "4");
    }
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    run_cmd(&mut cmd)
}
