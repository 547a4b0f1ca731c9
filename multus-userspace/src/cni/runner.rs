//! Ties a plugin to a process: reads stdin and the environment, answers VERSION, dispatches the
//! other commands, and prints exactly one JSON document (result or error) on stdout.

use std::{
    io::{Read, Write},
    panic::AssertUnwindSafe,
    process::ExitCode,
};

use serde_json::{json, Value};

use super::{
    env::{EnvError, Request},
    error::{CniError, ErrorCode},
    version::CniVersion,
};

/// A CNI plugin: everything but VERSION is delegated to it.
pub trait Plugin {
    /// Handles ADD, DEL, CHECK, STATUS or GC. `Ok(Some(v))` prints `v`; `Ok(None)` prints nothing.
    fn handle(&self, request: &Request, stdin: &[u8]) -> Result<Option<Value>, CniError>;
}

impl From<EnvError> for CniError {
    fn from(e: EnvError) -> Self {
        CniError::new(ErrorCode::InvalidEnvironment, e.to_string())
    }
}

/// The version used for an error printed before (or without) a valid configuration.
pub fn version_hint(stdin: &[u8]) -> CniVersion {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(CniVersion::LATEST)
}

/// The answer to VERSION.
pub fn version_info(stdin: &[u8]) -> Value {
    json!({
        "cniVersion": version_hint(stdin).as_str(),
        "supportedVersions": CniVersion::supported_strings(),
    })
}

/// Runs `plugin` for this process and returns the exit code.
pub fn run(plugin: &impl Plugin) -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = match (read, Request::from_env()) {
        (Err(e), _) => Err(CniError::new(
            ErrorCode::IoFailure,
            format!("cannot read the configuration from stdin: {e}"),
        )),
        (_, Err(e)) => Err(e.into()),
        (Ok(_), Ok(req)) if req.command == super::Command::Version => {
            Ok(Some(version_info(&stdin)))
        }
        (Ok(_), Ok(req)) => {
            std::panic::catch_unwind(AssertUnwindSafe(|| plugin.handle(&req, &stdin)))
                .unwrap_or_else(|_| {
                    Err(CniError::new(
                        ErrorCode::Plugin(999),
                        "internal error: the plugin panicked; see its log",
                    ))
                })
        }
    };
    let (doc, code) = match outcome {
        Ok(Some(v)) => (Some(v), ExitCode::SUCCESS),
        Ok(None) => (None, ExitCode::SUCCESS),
        Err(e) => (Some(e.to_json(version_hint(&stdin))), ExitCode::FAILURE),
    };
    if let Some(doc) = doc {
        let mut out = std::io::stdout().lock();
        let mut bytes = serde_json::to_vec(&doc).unwrap_or_default();
        bytes.push(b'\n');
        if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_info_echoes_a_supported_request() {
        let v = version_info(br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
        assert_eq!(version_info(b"")["cniVersion"], "1.1.0");
    }
}
