//! `cargo xtask fuzz`: builds the cargo-fuzz targets of fuzz/ (their own workspace, the nightly
//! toolchain the BPF build uses) and runs each with libFuzzer, seeded from the corpus in the
//! repository (fuzz/corpus/<target>, read only: what a run finds goes to target/fuzz/corpus).
//! A crash, a panic, a timeout or an out-of-memory fails the task; the input is left in
//! target/fuzz/artifacts/<target>/. `cargo xtask test` ends with a short run of every target.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::util::{root, run_cmd};

/// How long each target runs.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// This many executions (`-runs=`).
    Runs(u64),
    /// This many seconds (`-max_total_time=`).
    Seconds(u64),
}

/// The short run `cargo xtask test` ends with.
pub const SHORT: Budget = Budget::Seconds(10);

/// The long form's default: ten million executions per target.
pub const LONG_RUNS: u64 = 10_000_000;

/// What one target's run reached.
struct Outcome {
    target: String,
    executions: u64,
    exec_per_sec: u64,
    seconds: f64,
}

/// Builds the targets and runs `only` (or every target) for `budget` each.
pub fn run(only: Option<&str>, budget: Budget) -> Result<()> {
    let fuzz_dir = root().join("fuzz");
    let targets = targets(&fuzz_dir)?;
    let chosen: Vec<String> = match only {
        Some(name) if targets.iter().any(|t| t == name) => vec![name.to_string()],
        Some(name) => bail!("no fuzz target {name:?}; the targets are {targets:?}"),
        None => targets,
    };
    let started = Instant::now();
    build()?;
    let built = started.elapsed().as_secs_f64();
    let mut outcomes = Vec::new();
    for target in &chosen {
        outcomes.push(run_one(target, budget)?);
    }
    eprintln!("\nfuzz: target, executions, exec/s, seconds");
    for o in &outcomes {
        eprintln!(
            "fuzz: {:<16} {:>12} {:>8} {:>8.1}",
            o.target, o.executions, o.exec_per_sec, o.seconds
        );
    }
    eprintln!(
        "fuzz: {} targets in {:.0} s (of which the build {built:.0} s)",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The target names: the `fuzz_targets/*.rs` files.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Where the fuzz build and its runs write (under the workspace's target/).
fn work_dir() -> PathBuf {
    root().join("target").join("fuzz")
}

/// Builds every target: release with debug assertions and overflow checks, no sanitizer (the
/// code under test is safe Rust; a panic, an abort, a timeout or an allocation over the limit is
/// what libFuzzer catches, and without ASan it runs about twice as many inputs a second).
fn build() -> Result<()> {
    ensure_cargo_fuzz()?;
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root())
        .args([
            "run",
            multus_ebpf_builder::EBPF_TOOLCHAIN,
            "cargo",
            "fuzz",
            "build",
            "--release",
            "--debug-assertions",
            "--sanitizer",
            "none",
            "--target",
        ])
        .arg(crate::build::host_tuple()?)
        .arg("--target-dir")
        .arg(work_dir());
    for key in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "CARGO_TARGET_DIR"] {
        cmd.env_remove(key);
    }
    run_cmd(&mut cmd).context("building the fuzz targets failed")
}

/// cargo-fuzz, installed by `cargo xtask setup`; a missing one is an error (never a skip).
fn ensure_cargo_fuzz() -> Result<()> {
    if crate::setup::cargo_fuzz_installed() {
        return Ok(());
    }
    bail!("cargo-fuzz is not installed; run `cargo xtask setup` (it runs `cargo install cargo-fuzz --locked`)")
}

fn run_one(target: &str, budget: Budget) -> Result<Outcome> {
    let work = work_dir();
    let binary = work
        .join(crate::build::host_tuple()?)
        .join("release")
        .join(target);
    let seeds = root().join("fuzz").join("corpus").join(target);
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let limit = match budget {
        Budget::Runs(n) => format!("-runs={n}"),
        Budget::Seconds(s) => format!("-max_total_time={s}"),
    };
    eprintln!("fuzz: {target} ({limit})");
    let started = Instant::now();
    let out = Command::new(&binary)
        .arg(&corpus)
        .arg(&seeds)
        .arg(limit)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args([
            // an input that takes ten seconds is a hang for parsers of a few KiB
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-malloc_limit_mb=512",
            "-max_len=16384",
            "-print_final_stats=1",
            "-print_pcs=0",
        ])
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzz target {target} failed ({}): the input is in {}\n{}",
            out.status,
            artifacts.display(),
            tail.join("\n")
        );
    }
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Outcome {
        target: target.to_string(),
        executions: stat("number_of_executed_units"),
        exec_per_sec: stat("average_exec_per_sec"),
        seconds,
    })
}
