//! `cargo xtask test`: setup, the workspace lints (clippy, Cargo.toml `[workspace.lints]`), build
//! (the debug binaries, and the image's binaries `cargo xtask image` uses), then every test of the
//! workspace (unit and privileged integration tests, which need root and never skip), then a short
//! run of every fuzz target (`crate::fuzz::SHORT`; a crash fails).

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{is_root, root, run_cmd};

pub fn run(extra: &[String]) -> Result<()> {
    crate::setup::run()?;
    if !is_root() {
        bail!("the integration tests create network namespaces and load BPF programs: run `cargo xtask test` as root");
    }
    let mut clippy = crate::util::cargo();
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
    // The image's binaries (a long fat-LTO build), up front: the tests that need the image run
    // `cargo xtask image` into their own podman storage and find them current.
    crate::image::build_binaries()?;
    let mut cmd = crate::util::cargo();
    cmd.current_dir(root())
        .args(["test", "--no-fail-fast"])
        .env("MULTUS_BIN_DIR", &bins);
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        cmd.env("RUST_TEST_THREADS", "4");
    }
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
        // a filtered run is someone after one test: the fuzz targets are not what they asked for
        return run_cmd(&mut cmd);
    }
    let tests = run_cmd(&mut cmd);
    // the short fuzz run of every target, even when a test failed (both are reported)
    let fuzzed = crate::fuzz::run(None, crate::fuzz::SHORT);
    match (tests, fuzzed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(t), Err(f)) => Err(anyhow::anyhow!("{t}\n{f}")),
    }
}
