//! `tasks`: the demo and the benchmarks, run by `cargo xtask demo` and `cargo xtask bench` after
//! `setup` has installed what they need and the release binaries are built. It lives in the test
//! kit's crate (which builds the BPF programs through multus-userspace) so that the `xtask` crate
//! itself builds with the stable toolchain alone.

mod bench;
mod demo;
mod util;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tasks", about = "The demo and the benchmarks (run through `cargo xtask`)")]
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
    }
}
