//! Logging through `tracing` to stderr and/or the configured log file, which is rotated like the
//! reference's (see [`rotate`]). stdout is never used: it carries the CNI result.

pub mod rotate;

use std::{
    fs::OpenOptions, os::unix::fs::OpenOptionsExt, path::Path, sync::Mutex, time::SystemTime,
};

use tracing::Level;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::LogLevel;
pub use rotate::Rotation;

/// The log file and its rotation policy.
#[derive(Clone, Copy, Debug)]
pub struct LogFile<'a> {
    /// Path of the file.
    pub path: &'a Path,
    /// When and how it is rotated.
    pub rotation: &'a Rotation,
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing). A log
/// file that is due is rotated first; one that cannot be opened is reported on stderr and logging
/// goes on there.
pub fn init(level: LogLevel, file: Option<LogFile<'_>>, to_stderr: bool) {
    let max = match level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Verbose => Level::INFO,
        LogLevel::Error => Level::ERROR,
        LogLevel::Panic => return,
    };
    let mut notes = Vec::new();
    let file = file.and_then(|f| {
        notes.extend(rotate_due(f));
        match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(f.path)
        {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!(
                    "multus: cannot open log file {}: {e}; logging to stderr",
                    f.path.display()
                );
                None
            }
        }
    });
    let to_stderr = to_stderr || file.is_none();
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_max_level(max);
    let _ = match (file, to_stderr) {
        (Some(f), true) => builder
            .with_writer(Mutex::new(f).and(std::io::stderr))
            .try_init(),
        (Some(f), false) => builder.with_writer(Mutex::new(f)).try_init(),
        (None, _) => builder.with_writer(std::io::stderr).try_init(),
    };
    for note in notes {
        match note {
            Ok(done) => tracing::info!("{done}"),
            Err(failed) => tracing::error!("{failed}"),
        }
    }
}

/// Reports configuration keys that `command` of `plugin` ignored (see
/// [`crate::config::MultusConf::parse_for_teardown`]): always on stderr, where the runtime
/// records a plugin's complaints, and in the log.
pub fn report_ignored(plugin: &str, command: &str, ignored: &[String]) {
    for note in ignored {
        eprintln!(
            "{plugin}: {command}: invalid configuration: {note}; {command} goes on without it"
        );
        tracing::warn!("{command}: invalid configuration: {note}");
    }
}

/// Rotates the file if it is due and starts the compressor; what happened (`Err`: what failed), to
/// be logged once the subscriber is installed.
fn rotate_due(f: LogFile<'_>) -> Vec<Result<String, String>> {
    let mut notes = Vec::new();
    match rotate::rotate_if_full(f.path, f.rotation, SystemTime::now()) {
        Ok(None) => {}
        Ok(Some(r)) => {
            notes.push(Ok(format!("log file rotated to {}", r.backup.display())));
            for gone in &r.removed {
                notes.push(Ok(format!("old log backup removed: {}", gone.display())));
            }
            if !r.to_compress.is_empty() {
                if let Err(e) = rotate::spawn_compressor(f.path) {
                    notes.push(Err(format!("cannot start the log compressor: {e}; backups stay uncompressed until the next rotation")));
                }
            }
        }
        Err(e) => notes.push(Err(format!(
            "log rotation of {} failed: {e}",
            f.path.display()
        ))),
    }
    notes
}
