//! `tasks`: the demo, the benchmarks and the soak, run by `cargo xtask demo`, `cargo xtask bench`
//! and `cargo xtask soak` after `setup` has installed what they need and the product binaries
//! are built (release ones for the demo and the benchmarks). It lives in the test
//! kit's crate (which builds the BPF programs through multus-userspace) so that the `xtask` crate
//! itself builds with the stable toolchain alone.

mod bench;
mod demo;
mod soak;
mod util;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tasks",
    about = "The demo and the benchmarks (run through `cargo xtask`)"
)]
struct Cli {
    /// Directory holding the release binaries under test (multus, ebpf-sbr, multusctl).
    #[arg(long, env = "MULTUS_BIN_DIR")]
    bins: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A local node made of network namespaces: pods with several networks, the API, SBR.
    Demo,
    /// Benchmarks, side by side with the reference, written to docs/benchmarks.md.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// ADD/DEL of two-network pods at high concurrency with random faults (docs/reliability.md).
    Soak {
        /// Minutes of new cycles per mode.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Concurrent workers (pods at a time).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// thin, thick or both.
        #[arg(long, value_enum, default_value = "both")]
        mode: soak::Modes,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        util::is_root(),
        "the demo and the benchmarks create network namespaces: run them as root"
    );
    match cli.cmd {
        Cmd::Demo => demo::run(&cli.bins),
        Cmd::Bench { which } => bench::run(which, &cli.bins),
        Cmd::Soak {
            minutes,
            concurrency,
            mode,
        } => soak::run(minutes, concurrency, mode),
    }
}
