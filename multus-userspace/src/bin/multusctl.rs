//! `multusctl`: the operators' view of a multus node (see `multusctl --help` and docs/cli.md).
use std::process::ExitCode;

use clap::Parser;

pub(crate) fn main() -> ExitCode {
    let cli = multus::ctl::Cli::parse();
    match multus::ctl::run(cli).map_err(anyhow::Error::from) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(multus::ctl::EXIT_ERROR)
        }
    }
}

/// The reader of our output went away (`multusctl list | head`): not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<multus::ctl::CtlError>(), Some(multus::ctl::CtlError::Output(io)) if io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
