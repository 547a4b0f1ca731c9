//! Ties a plugin to a process: answers `--version` on the command line, reads stdin and the
//! environment, answers VERSION, dispatches the other commands, and prints exactly one JSON
//! document (result or error) on stdout.

use std::{
    ffi::OsStr,
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

/// A CNI plugin: everything but VERSION and `--version` is delegated to it.
pub trait Plugin {
    /// The binary's name, which `--version` prints (a method, so that the daemon can hold plugins
    /// as trait objects).
    fn name(&self) -> &'static str;

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

/// Whether the command line asks for the version (`--version` or `-v`): a runtime calls a plugin
/// without arguments, so such an argument comes from a person.
pub fn asks_version<A: AsRef<OsStr>>(args: impl IntoIterator<Item = A>) -> bool {
    args.into_iter()
        .any(|a| a.as_ref() == "--version" || a.as_ref() == "-v")
}

/// What `--version` prints: the binary, its version and the CNI versions it speaks.
pub fn version_line(name: &str) -> String {
    format!(
        "{name} {} (CNI {})",
        env!("CARGO_PKG_VERSION"),
        CniVersion::supported_strings().join(", ")
    )
}

/// The largest stdin read: a network configuration is a few kilobytes, a result-carrying one a
/// few more; the daemon's request body has the same bound ([`crate::daemon::api::MAX_BODY`]).
pub const MAX_STDIN: usize = 4 << 20;

/// Reads stdin up to [`MAX_STDIN`] bytes; more is refused (code 6) without reading it all, so a
/// runtime (or an attacker) cannot make the plugin hold an unbounded configuration in memory.
pub fn read_stdin(input: impl Read) -> Result<Vec<u8>, CniError> {
    let mut stdin = Vec::new();
    input
        .take(MAX_STDIN as u64 + 1)
        .read_to_end(&mut stdin)
        .map_err(|e| {
            CniError::new(
                ErrorCode::IoFailure,
                format!("cannot read the configuration from stdin: {e}"),
            )
        })?;
    if stdin.len() > MAX_STDIN {
        return Err(CniError::new(
            ErrorCode::DecodingFailure,
            format!(
                "the configuration on stdin is larger than {} MiB; a network configuration is a few kilobytes",
                MAX_STDIN >> 20
            ),
        ));
    }
    Ok(stdin)
}

/// Runs `plugin` for this process and returns the exit code.
pub fn run<P: Plugin>(plugin: &P) -> ExitCode {
    if asks_version(std::env::args_os().skip(1)) {
        let mut out = std::io::stdout().lock();
        return match writeln!(out, "{}", version_line(plugin.name())).and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let read = read_stdin(std::io::stdin().lock());
    let stdin = read
        .as_ref()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .to_vec();
    let outcome = match (read, Request::from_env()) {
        (Err(e), _) => Err(e),
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
    fn stdin_is_read_up_to_its_bound() {
        assert_eq!(read_stdin(&b"{}"[..]).unwrap(), b"{}");
        assert_eq!(
            read_stdin(&vec![b' '; MAX_STDIN][..]).unwrap().len(),
            MAX_STDIN
        );
        let e = read_stdin(std::io::repeat(b' ')).unwrap_err();
        assert_eq!(e.code, ErrorCode::DecodingFailure);
        assert!(e.msg.contains("larger than 4 MiB"), "{}", e.msg);
    }

    #[test]
    fn version_flag_and_line() {
        assert!(asks_version(["--version"]));
        assert!(asks_version(["x", "-v"]));
        assert!(!asks_version(["--verbose"]));
        assert!(!asks_version(Vec::<&str>::new()));
        let line = version_line("ebpf-sbr");
        assert!(
            line.starts_with(concat!("ebpf-sbr ", env!("CARGO_PKG_VERSION"), " (CNI ")),
            "{line}"
        );
        assert!(line.contains("1.1.0") && line.contains("0.1.0"), "{line}");
    }

    #[test]
    fn version_info_echoes_a_supported_request() {
        let v = version_info(br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
        assert_eq!(version_info(b"")["cniVersion"], "1.1.0");
    }
}
