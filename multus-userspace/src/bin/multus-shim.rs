//! `multus-shim`: the CNI binary of thick mode; it forwards each call to `multus-daemon`.
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os()
        .skip(1)
        .any(|a| a == "--version" || a == "-v")
    {
        println!(
            "multus-shim {} (CNI {})",
            env!("CARGO_PKG_VERSION"),
            multus::cni::CniVersion::supported_strings().join(", ")
        );
        return ExitCode::SUCCESS;
    }
    multus::shim::run()
}
