//! The readiness indicator file: written by the cluster network when it can serve pods.

use std::time::{Duration, Instant};

use crate::{cni::ErrorCode, config::MultusConf, error::Error};

/// Default wait of ADD for the file (the reference's 45 s).
const DEFAULT_WAIT: Duration = Duration::from_secs(45);

/// Whether the file exists (or none is configured).
pub fn is_ready(conf: &MultusConf) -> bool {
    conf.readiness_indicator_file
        .as_deref()
        .is_none_or(|p| p.as_os_str().is_empty() || p.exists())
}

/// Waits for the file (ADD); fails with "try again later" when it does not appear in time.
pub fn wait(conf: &MultusConf) -> Result<(), Error> {
    if is_ready(conf) {
        return Ok(());
    }
    let wait = conf
        .readiness_timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WAIT);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if is_ready(conf) {
            return Ok(());
        }
    }
    Err(not_ready(conf, ErrorCode::TryAgainLater, Some(wait)))
}

/// The error for a missing readiness file.
pub fn not_ready(conf: &MultusConf, code: ErrorCode, waited: Option<Duration>) -> Error {
    let file = conf
        .readiness_indicator_file
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let message = match waited {
        Some(w) => format!("the cluster network is not ready: readiness indicator file {file} did not appear within {w:?}"),
        None => format!("the cluster network is not ready: readiness indicator file {file} does not exist"),
    };
    Error::NotReady { message, code }
}
