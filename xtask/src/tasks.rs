//! `cargo xtask demo`, `cargo xtask bench` and `cargo xtask soak`: setup, the product binaries,
//! then the test kit's `tasks` binary (built only now, after `setup` installed what its BPF build
//! needs).

use anyhow::{ensure, Result};

use crate::util::{is_root, root, run_cmd};

/// Runs `tasks <args>` against freshly built release binaries. `optimised` builds the harness
/// itself with the release profile too (the benchmarks' namespaces, API stand-in and timing must
/// not be the slow part).
pub fn run(args: &[String], optimised: bool) -> Result<()> {
    run_with(args, true, optimised)
}

/// Runs `tasks <args>` against the debug binaries `cargo xtask test` runs (overflow checks and
/// debug assertions on), with a debug harness: the soak.
pub fn run_debug(args: &[String]) -> Result<()> {
    run_with(args, false, false)
}

fn run_with(args: &[String], release: bool, optimised: bool) -> Result<()> {
    crate::setup::run()?;
    ensure!(
        is_root(),
        "the demo and the benchmarks create network namespaces: run `cargo xtask {}` as root",
        args.first().map(String::as_str).unwrap_or("demo")
    );
    eprintln!(
        "xtask: building {} binaries",
        if release { "release" } else { "debug" }
    );
    let bins = crate::build::binaries(release)?;
    // The benchmarks' no-op delegate (the recorder plugin) sits beside the harness.
    let mut plugin = crate::util::cargo();
    plugin.current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "multus-tests",
        "--bin",
        "cni-recorder",
    ]);
    if optimised {
        plugin.arg("--release");
    }
    run_cmd(&mut plugin)?;
    let mut cmd = crate::util::cargo();
    cmd.current_dir(root())
        .args(["run", "--quiet", "-p", "multus-tests", "--bin", "tasks"]);
    if optimised {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args).env("MULTUS_BIN_DIR", &bins);
    run_cmd(&mut cmd)
}
