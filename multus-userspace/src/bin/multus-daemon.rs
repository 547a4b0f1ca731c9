//! `multus-daemon`: the per-node process of thick mode (see `multus::daemon`).
use std::{path::PathBuf, process::ExitCode};

use multus::daemon::config::DEFAULT_CONFIG_FILE;

fn main() -> ExitCode {
    multus::fault::lead_group();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        // The thin-mode agent (auto-configuration and kubeconfig upkeep).
        Some("thin") => return ExitCode::from(multus::autoconf::cli::thin_main(&argv[1..])),
        // Removes the generated configuration so the node falls back to the primary network.
        Some("uninstall") => {
            return ExitCode::from(multus::autoconf::cli::uninstall_main(&argv[1..]))
        }
        _ => {}
    }
    let mut config = PathBuf::from(DEFAULT_CONFIG_FILE);
    let mut args = argv.into_iter();
    while let Some(arg) = args.next() {
        // The reference's Go flags take one dash; two work as well.
        let flag = arg.trim_start_matches('-');
        match flag.split_once('=') {
            Some(("config", value)) => config = value.into(),
            _ if flag == "config" => match args.next() {
                Some(v) => config = v.into(),
                None => {
                    eprintln!("multus-daemon: -config needs a path");
                    return ExitCode::from(2);
                }
            },
            _ if flag == "version" || flag == "v" => {
                println!("multus-daemon {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("multus-daemon: unknown argument {arg:?}; usage: multus-daemon [-config PATH] [-version]");
                return ExitCode::from(2);
            }
        }
    }
    match multus::daemon::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multus-daemon: {e}");
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
