//! `multus`: the CNI meta-plugin binary that kubelet's runtime calls.
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--version" || a == "-v") {
        println!("multus {} (CNI {})", env!("CARGO_PKG_VERSION"), multus::cni::CniVersion::supported_strings().join(", "));
        return ExitCode::SUCCESS;
    }
    multus::cni::runner::run(&multus::metaplugin::MultusPlugin)
}
