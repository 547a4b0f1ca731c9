//! `multus`: the CNI meta-plugin binary that kubelet's runtime calls.
use std::{ffi::OsString, path::Path, process::ExitCode};

use multus::logging::rotate;

pub(crate) fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Internal: the detached compressor of rotated log backups (see multus::logging::rotate).
    if let [flag, path] = args.as_slice() {
        if flag == rotate::COMPRESS_ARG {
            return if rotate::compress_backups(Path::new(path)).is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    }
    multus::cni::runner::run(&multus::metaplugin::MultusPlugin)
}
