//! `multus-daemon`: the per-node process of thick mode (see `multus::daemon`), and the image's
//! entry points: `multus-daemon install --mode thick|thin --cni-bin-dir DIR [--from DIR]` copies
//! the node's CNI binaries (see `multus::install`); `-install-cni-bin-dir DIR -install-mode MODE`
//! does the same at daemon start, before serving; `thin` runs the thin-mode agent and `uninstall`
//! removes the generated configuration (see `multus::autoconf`).
use std::{path::PathBuf, process::ExitCode};

use multus::daemon::config::DEFAULT_CONFIG_FILE;

const USAGE: &str = "usage: multus-daemon [-config PATH] [-install-cni-bin-dir DIR -install-mode thick|thin] [-version]\n       multus-daemon install --mode thick|thin --cni-bin-dir DIR [--from DIR]\n       multus-daemon thin --cni-conf-dir DIR [--node-cni-conf-dir DIR] [--master-cni NAME] [--service-account-dir DIR]\n       multus-daemon uninstall --cni-conf-dir DIR";

pub(crate) fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("install") => install_command(&args[1..]),
        // The thin-mode agent (auto-configuration and kubeconfig upkeep).
        Some("thin") => ExitCode::from(multus::autoconf::cli::thin_main(&args[1..])),
        // Removes the generated configuration so the node falls back to the primary network.
        Some("uninstall") => ExitCode::from(multus::autoconf::cli::uninstall_main(&args[1..])),
        _ => daemon_command(&args),
    }
}

/// Splits Go-style flags (`-name value`, `-name=value`, two dashes work as well) into
/// (name, value) pairs; `bool_flags` take no value.
fn flags(args: &[String], bool_flags: &[&str]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix('-').map(|f| f.trim_start_matches('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        match flag.split_once('=') {
            Some((name, value)) => out.push((name.to_string(), Some(value.to_string()))),
            None if bool_flags.contains(&flag) => out.push((flag.to_string(), None)),
            None => match it.next() {
                Some(value) => out.push((flag.to_string(), Some(value.clone()))),
                None => return Err(format!("-{flag} needs a value")),
            },
        }
    }
    Ok(out)
}

fn usage_error(why: &str) -> ExitCode {
    eprintln!("multus-daemon: {why}\n{USAGE}");
    ExitCode::from(2)
}

fn mode_of(value: &str) -> Result<multus::install::Mode, String> {
    multus::install::Mode::parse(value)
        .ok_or_else(|| format!("install mode {value:?} is neither thick nor thin"))
}

fn daemon_command(args: &[String]) -> ExitCode {
    let mut config = PathBuf::from(DEFAULT_CONFIG_FILE);
    let (mut install_dir, mut install_mode) = (None::<PathBuf>, None);
    let parsed = match flags(args, &["version", "v"]) {
        Ok(p) => p,
        Err(why) => return usage_error(&why),
    };
    for (name, value) in parsed {
        match (name.as_str(), value) {
            ("version" | "v", _) => {
                println!("multus-daemon {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            ("config", Some(v)) => config = v.into(),
            ("install-cni-bin-dir", Some(v)) => install_dir = Some(v.into()),
            ("install-mode", Some(v)) => match mode_of(&v) {
                Ok(m) => install_mode = Some(m),
                Err(why) => return usage_error(&why),
            },
            (other, _) => return usage_error(&format!("unknown flag -{other}")),
        }
    }
    let install = match (install_dir, install_mode) {
        (Some(to), mode) => Some((to, mode.unwrap_or(multus::install::Mode::Thick))),
        (None, Some(_)) => return usage_error("-install-mode needs -install-cni-bin-dir"),
        (None, None) => None,
    };
    if let Some((to, mode)) = install {
        // The daemon's own logging, set up early so the installation is in its log.
        if let Ok(conf) = multus::daemon::config::DaemonConfig::load(&config) {
            multus::daemon::init_logging(&conf);
        }
        if let Err(code) = install_binaries(mode, None, to) {
            return code;
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

fn install_command(args: &[String]) -> ExitCode {
    let (mut mode, mut to, mut from) = (None, None::<PathBuf>, None::<PathBuf>);
    let parsed = match flags(args, &[]) {
        Ok(p) => p,
        Err(why) => return usage_error(&why),
    };
    for (name, value) in parsed {
        match (name.as_str(), value) {
            ("mode", Some(v)) => match mode_of(&v) {
                Ok(m) => mode = Some(m),
                Err(why) => return usage_error(&why),
            },
            ("cni-bin-dir", Some(v)) => to = Some(v.into()),
            ("from", Some(v)) => from = Some(v.into()),
            (other, _) => return usage_error(&format!("install: unknown flag --{other}")),
        }
    }
    let (Some(mode), Some(to)) = (mode, to) else {
        return usage_error("install needs --mode and --cni-bin-dir");
    };
    multus::logging::init(multus::config::LogLevel::Verbose, None, true);
    match install_binaries(mode, from, to) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Runs the installation; on failure reports it on stderr and in the log.
fn install_binaries(
    mode: multus::install::Mode,
    from: Option<PathBuf>,
    to: PathBuf,
) -> Result<(), ExitCode> {
    let result = from
        .map(Ok)
        .unwrap_or_else(multus::install::own_directory)
        .and_then(|from| multus::install::run(&multus::install::Options { mode, from, to }));
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("multus-daemon: install: {e}");
            tracing::error!("install: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}
