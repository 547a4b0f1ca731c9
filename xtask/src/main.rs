//! Project tasks. `cargo xtask test` and `cargo xtask demo` are the README's two commands; both
//! start with `setup`, which installs only what is missing.
//!
//! This crate builds with the stable toolchain alone: it depends on nothing whose build needs
//! the nightly toolchain, rust-src or bpf-linker (a test in tests/tests/workspace.rs asserts it
//! from `cargo metadata`), so `setup` can run on a machine that has none of them. The demo and
//! the benchmarks live in the test kit's `tasks` binary, built and run after `setup`.

mod build;
mod fuzz;
mod image;
mod setup;
mod tasks;
mod test;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Build, test, demo and benchmark the multus dataplane"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing: Debian packages, nightly rust-src, bpf-linker 0.10.3, cargo-fuzz.
    Setup,
    /// Build the BPF objects into target/ebpf-objects.
    BuildEbpf,
    /// Build the binaries (multus, ebpf-sbr, multusctl) with their BPF objects embedded.
    Build {
        /// Release profile.
        #[arg(long)]
        release: bool,
    },
    /// The container image localhost/multus-rs:<version> (podman, offline, FROM scratch); fails
    /// above 25 MB. Also saved as target/multus-rs/multus-rs-<version>.tar.
    Image {
        /// Another version label and tag than the workspace version (e.g. for upgrade tests).
        #[arg(long)]
        tag: Option<String>,
    },
    /// Run every test (unit and privileged integration tests); needs root.
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Fuzz every parser of outside input (fuzz/, cargo-fuzz, nightly): each target to ten
    /// million executions unless told otherwise.
    Fuzz {
        /// Only this target (a file name of fuzz/fuzz_targets without `.rs`).
        #[arg(long)]
        target: Option<String>,
        /// Executions per target (default 10000000).
        #[arg(long, conflicts_with = "seconds")]
        runs: Option<u64>,
        /// Seconds per target instead of a number of executions.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// A local node made of network namespaces: add a pod with two networks, ping, delete.
    Demo,
    /// Benchmarks, side by side with the reference, written to docs/benchmarks.md.
    Bench {
        /// `core`, `kube`, `sbr` or `thick`, and their options (`cargo xtask bench core --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// The soak: 64-way ADD/DEL of two-network pods (one with ebpf-sbr) with random API and
    /// delegate faults, thin and thick; prints calls, failures by cause, latency, daemon RSS.
    Soak {
        /// Minutes per mode.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Concurrent ADD/DEL workers.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// `thin`, `thick` or `both`.
        #[arg(long, default_value = "both")]
        mode: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup => setup::run(),
        Cmd::BuildEbpf => build::ebpf(),
        Cmd::Build { release } => build::binaries(release).map(|_| ()),
        Cmd::Image { tag } => image::run(tag),
        Cmd::Test { args } => test::run(&args),
        Cmd::Fuzz {
            target,
            runs,
            seconds,
        } => {
            crate::setup::run()?;
            let budget = match (runs, seconds) {
                (_, Some(s)) => fuzz::Budget::Seconds(s),
                (Some(n), None) => fuzz::Budget::Runs(n),
                (None, None) => fuzz::Budget::Runs(fuzz::LONG_RUNS),
            };
            fuzz::run(target.as_deref(), budget)
        }
        Cmd::Demo => tasks::run(&["demo".to_string()], false),
        Cmd::Bench { args } => {
            let mut all = vec!["bench".to_string()];
            all.extend(args);
            tasks::run(&all, true)
        }
        // The debug build, as `cargo xtask test` runs it: overflow checks and debug assertions on.
        Cmd::Soak {
            minutes,
            concurrency,
            mode,
        } => tasks::run_debug(&[
            "soak".to_string(),
            format!("--minutes={minutes}"),
            format!("--concurrency={concurrency}"),
            format!("--mode={mode}"),
        ]),
    }
}
