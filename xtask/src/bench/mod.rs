//! `cargo xtask bench <core|kube|sbr>`: measured side by side with the reference in one run,
//! reported as p50/p90 and ratios in docs/benchmarks.md together with the command.

mod core;
pub mod report;
pub mod stats;

use anyhow::{ensure, Result};
use clap::Subcommand;

use crate::util::is_root;

/// Which benchmark.
#[derive(Subcommand, Clone, Copy)]
pub enum Which {
    /// ADD/DEL of multus with two delegates vs the delegates called directly, and VERSION.
    Core {
        /// Cycles.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
    },
}

pub fn run(which: Which) -> Result<()> {
    crate::setup::run()?;
    ensure!(is_root(), "benchmarks create network namespaces: run as root");
    let bins = crate::build::binaries(true)?;
    match which {
        Which::Core { cycles } => core::run(&bins, cycles),
    }
}
