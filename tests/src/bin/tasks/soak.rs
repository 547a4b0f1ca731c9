//! `cargo xtask soak`: the long form of the soak (docs/reliability.md, "Soak"), `testkit::soak`
//! in thin mode, thick mode or both, its report printed; fails when the soak found a problem.

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::ValueEnum;
use testkit::soak::{self, Mode};

/// Which modes to soak.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Modes {
    /// The `multus` binary.
    Thin,
    /// `multus-shim` + one `multus-daemon`.
    Thick,
    /// Thin, then thick.
    Both,
}

/// Runs each mode for `minutes` at `concurrency`, prints the reports.
pub fn run(minutes: u64, concurrency: usize, modes: Modes) -> Result<()> {
    let modes: &[Mode] = match modes {
        Modes::Thin => &[Mode::Thin],
        Modes::Thick => &[Mode::Thick],
        Modes::Both => &[Mode::Thin, Mode::Thick],
    };
    let mut failed = Vec::new();
    for mode in modes {
        eprintln!("soak: {mode} mode, {minutes} min, {concurrency} workers");
        let report = soak::run(soak::Options::new(
            *mode,
            Duration::from_secs(minutes * 60),
            concurrency,
        ));
        println!("{}", report.render());
        if !report.failures().is_empty() {
            failed.push(mode.to_string());
        }
    }
    ensure!(
        failed.is_empty(),
        "the soak failed in {} mode",
        failed.join(" and ")
    );
    Ok(())
}
