//! `ebpf-sbr`: the chained CNI plugin that replaces `sbr` with eBPF source-based routing
//! (logic in `multus::sbrplugin`).
use std::process::ExitCode;

pub(crate) fn main() -> ExitCode {
    multus::cni::runner::run(&multus::sbrplugin::SbrPlugin)
}
