//! `multus-node`: the image's one multi-call binary. Hard-linked as `multus`, `multus-daemon`,
//! `multusctl` and `ebpf-sbr`, it runs the same `main` as the binary of that name (the files of
//! the separate binaries are its modules), chosen by the name it was started under (`argv[0]`):
//! one copy of the library instead of four (see docs/building.md for the sizes).
use std::{ffi::OsStr, path::Path, process::ExitCode};

#[path = "ebpf-sbr.rs"]
mod ebpf_sbr;
#[path = "multus-daemon.rs"]
mod multus_daemon;
#[path = "multus.rs"]
mod multus_thin;
#[path = "multusctl.rs"]
mod multusctl;

/// The names this binary answers to.
const APPLETS: &[&str] = &["multus", "multus-daemon", "multusctl", "ebpf-sbr"];

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    // The log compressor restarts the running binary as /proc/self/exe (see
    // multus::logging::rotate): whatever the name, that is the thin binary's job.
    let compressing = args
        .next()
        .is_some_and(|a| a == multus::logging::rotate::COMPRESS_ARG);
    let name = if compressing {
        Some("multus")
    } else {
        Path::new(&arg0).file_name().and_then(OsStr::to_str)
    };
    match name {
        Some("multus") => multus_thin::main(),
        Some("multus-daemon") => multus_daemon::main(),
        Some("multusctl") => multusctl::main(),
        Some("ebpf-sbr") => ebpf_sbr::main(),
        _ => {
            eprintln!(
                "multus-node: started as {arg0:?}; run it under one of the names {} (a hard link or a copy named so)",
                APPLETS.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
