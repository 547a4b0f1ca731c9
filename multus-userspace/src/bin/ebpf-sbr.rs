//! `ebpf-sbr`: the chained CNI plugin that replaces `sbr` with eBPF source-based routing
//! (logic in `multus::sbrplugin`).
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-v")
    {
        println!(
            "ebpf-sbr {} (CNI {})",
            env!("CARGO_PKG_VERSION"),
            multus::cni::CniVersion::supported_strings().join(", ")
        );
        return ExitCode::SUCCESS;
    }
    multus::cni::runner::run(&multus::sbrplugin::SbrPlugin)
}
