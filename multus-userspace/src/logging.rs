//! Logging through `tracing` to stderr and/or the configured log file. stdout is never used: it
//! carries the CNI result.

use std::{fs::OpenOptions, os::unix::fs::OpenOptionsExt, path::Path, sync::Mutex};

use tracing::Level;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::LogLevel;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(level: LogLevel, file: Option<&Path>, to_stderr: bool) {
    let max = match level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Verbose => Level::INFO,
        LogLevel::Error => Level::ERROR,
        LogLevel::Panic => return,
    };
    let file = file.and_then(|p| OpenOptions::new().create(true).append(true).mode(0o600).open(p).ok());
    let builder = tracing_subscriber::fmt().with_ansi(false).with_target(false).with_max_level(max);
    let _ = match (file, to_stderr) {
        (Some(f), true) => builder.with_writer(Mutex::new(f).and(std::io::stderr)).try_init(),
        (Some(f), false) => builder.with_writer(Mutex::new(f)).try_init(),
        (None, _) => builder.with_writer(std::io::stderr).try_init(),
    };
}
