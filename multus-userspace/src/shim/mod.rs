//! `multus-shim`, the CNI binary the runtime calls in thick mode: it forwards the call (its whole
//! environment and stdin) to `multus-daemon` over `<daemonSocketDir>/multus.sock` and prints the
//! answer in the runtime's CNI version. Blocking std I/O only: no async runtime, no Kubernetes
//! client on the way to the daemon.
//!
//! A call goes straight to the daemon. When the daemon is down (or refuses the call unprocessed
//! with 503 while it shuts down), ADD, CHECK, STATUS and GC wait for `/readyz` up to
//! `daemonReadyTimeoutSeconds` (10 s) and then fail with code 11 naming the socket. DEL does not
//! wait: it tears the container down from the cache by running the thin `multus` binary (next to
//! the shim, else on `CNI_PATH`) with the daemon's configuration overlaid on stdin, and passes its
//! CNI error through: DEL fails if that could not remove everything. Running the binary instead of
//! calling [`crate::metaplugin`] keeps the shim small (no Kubernetes client, no BPF loader, no async
//! runtime linked in: see docs/building.md).

pub mod http;

use std::{
    ffi::OsStr,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::Value;

use crate::{
    cni::{
        runner::{version_hint, version_info},
        CniError, CniVersion, Command, ErrorCode, Request,
    },
    daemon::{api, config as daemon_config},
    logging,
};

/// The thin binary that tears a container down when the daemon is down.
pub const THIN_BINARY: &str = "multus";

/// How long ADD, CHECK, STATUS and GC wait for the daemon by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of the readiness polls.
const POLL: Duration = Duration::from_millis(100);
/// The daemon's status for a call it refused without running it (shutting down, queue full).
const REFUSED_UNPROCESSED: u16 = 503;
/// Bound of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The keys of the shim's configuration it reads itself (the daemon reads the rest).
#[derive(Debug, Default, Deserialize)]
pub struct ShimConf {
    /// The runtime's version.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: Option<String>,
    /// Directory of the daemon's socket (the reference's key; default `/run/multus/`).
    #[serde(rename = "daemonSocketDir", default)]
    pub socket_dir: Option<PathBuf>,
    /// How long to wait for a daemon that is not ready (own key).
    #[serde(rename = "daemonReadyTimeoutSeconds", default)]
    pub ready_timeout_seconds: Option<f64>,
    /// The daemon's configuration, overlaid for the DEL done without the daemon (own key).
    #[serde(rename = "daemonConfigFile", default)]
    pub daemon_config_file: Option<PathBuf>,
    /// Log file.
    #[serde(rename = "logFile", default)]
    pub log_file: Option<PathBuf>,
    /// Log level.
    #[serde(rename = "logLevel", default)]
    pub log_level: Option<String>,
    /// Also log to stderr.
    #[serde(rename = "logToStderr", default)]
    pub log_to_stderr: Option<bool>,
}

impl ShimConf {
    /// The socket's path.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| daemon_config::DEFAULT_SOCKET_DIR.into())
            .join(api::SOCKET_NAME)
    }

    /// The readiness wait.
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout_seconds
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_READY_TIMEOUT)
    }
}

/// Runs the shim for this process and returns the exit code.
pub fn run() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        return print_error(
            &CniError::new(ErrorCode::IoFailure, format!("cannot read stdin: {e}")),
            &stdin,
        );
    }
    let command = match std::env::var("CNI_COMMAND") {
        Ok(c) => Command::parse(&c),
        Err(_) => None,
    };
    let outcome = match command {
        Some(Command::Version) => Ok(Some(version_info(&stdin))),
        Some(command) => forward(command, &stdin),
        None => Request::from_env().map(|_| None).map_err(CniError::from),
    };
    match outcome {
        Ok(Some(doc)) => print(&doc, ExitCode::SUCCESS),
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => print_error(&e, &stdin),
    }
}

fn print(doc: &Value, code: ExitCode) -> ExitCode {
    let mut bytes = serde_json::to_vec(doc).unwrap_or_default();
    bytes.push(b'\n');
    let mut out = std::io::stdout().lock();
    if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    code
}

fn print_error(e: &CniError, stdin: &[u8]) -> ExitCode {
    print(&e.to_json(version_hint(stdin)), ExitCode::FAILURE)
}

fn forward(command: Command, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let shim: ShimConf = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            ErrorCode::DecodingFailure,
            format!("invalid CNI configuration passed to multus-shim: {e}"),
        )
    })?;
    init_logging(&shim);
    let socket = shim.socket();
    let body = serde_json::to_vec(&api::CniRequest::new(std::env::vars(), stdin))
        .map_err(|e| CniError::new(ErrorCode::IoFailure, e.to_string()))?;
    if command == Command::Del {
        return match http::request(&socket, "POST", api::CNI_PATH, &body, None) {
            Ok(answer) => answer_of(command, answer, &shim),
            Err(e) => {
                tracing::warn!("{e}; tearing the container down from the cache without the daemon");
                del_without_daemon(&shim, stdin).map(|_| None)
            }
        };
    }
    // Straight to the daemon: a ready one costs one round trip. Only a daemon that is not there
    // (nothing listens) or refused the call unprocessed (503: shutting down, queue full) is
    // waited for, then asked once more.
    let no_answer = |e: http::HttpError| {
        CniError::new(
            ErrorCode::TryAgainLater,
            format!("multus-daemon did not answer the {command} call: {e}; try again later"),
        )
    };
    let answer = match http::request(&socket, "POST", api::CNI_PATH, &body, None) {
        Ok(answer) if answer.status != REFUSED_UNPROCESSED => answer,
        Err(e) if !e.is_connect() => return Err(no_answer(e)),
        _ => {
            wait_ready(&socket, shim.ready_timeout())?;
            http::request(&socket, "POST", api::CNI_PATH, &body, None).map_err(no_answer)?
        }
    };
    answer_of(command, answer, &shim)
}

/// Waits until the daemon's `/readyz` answers 200 (a daemon without `/readyz`, the reference's
/// v4.3.0, is asked `/healthz` instead), at most `timeout`.
pub fn wait_ready(socket: &Path, timeout: Duration) -> Result<(), CniError> {
    let deadline = Instant::now() + timeout;
    let mut path = api::READY_PATH;
    loop {
        let last = match http::request(socket, "GET", path, b"", Some(PROBE_TIMEOUT)) {
            Ok(a) if a.status == 200 => return Ok(()),
            Ok(a) if a.status == 404 && path == api::READY_PATH => {
                path = api::HEALTH_PATH;
                continue;
            }
            Ok(a) => format!("{path} answered {}", a.status),
            Err(e) => e.to_string(),
        };
        if Instant::now() + POLL > deadline {
            return Err(CniError::new(
                ErrorCode::TryAgainLater,
                format!(
                    "multus-daemon is not ready on {} after {timeout:?} ({last}); try again later",
                    socket.display()
                ),
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn answer_of(
    command: Command,
    answer: http::Answer,
    shim: &ShimConf,
) -> Result<Option<Value>, CniError> {
    if answer.status != 200 {
        if let Some(e) = CniError::parse(&answer.body) {
            return Err(e);
        }
        return Err(CniError::new(
            ErrorCode::IoFailure,
            format!(
                "multus-daemon answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body).trim()
            ),
        ));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let bad = |why: String| {
        CniError::new(
            ErrorCode::DecodingFailure,
            format!("multus-daemon's answer to ADD has no usable result: {why}"),
        )
    };
    let response: api::CniResponse =
        serde_json::from_slice(&answer.body).map_err(|e| bad(e.to_string()))?;
    let version = CniVersion::parse_opt(shim.cni_version.as_deref())
        .map_err(|e| CniError::new(ErrorCode::IncompatibleVersion, e.to_string()))?;
    api::result_for_runtime(&response.result, version)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// DEL through the thin code path: the daemon's configuration overlaid on stdin, as the daemon
/// would have done, then the cached attachments torn down.
fn del_without_daemon(shim: &ShimConf, stdin: &[u8]) -> Result<(), CniError> {
    let path = shim
        .daemon_config_file
        .clone()
        .unwrap_or_else(|| daemon_config::DEFAULT_CONFIG_FILE.into());
    let overlay = match daemon_config::DaemonConfig::load(&path) {
        Ok(conf) => conf.raw,
        Err(daemon_config::DaemonConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::warn!(
                "{} does not exist; tearing down with the shim's configuration alone",
                path.display()
            );
            Default::default()
        }
        Err(e) => {
            return Err(CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("multus-daemon is down and {e}"),
            ))
        }
    };
    let stdin = daemon_config::overlay(stdin, &overlay)
        .map_err(|e| CniError::new(ErrorCode::DecodingFailure, e))?;
    let own = std::env::current_exe().ok();
    let cni_path = std::env::var_os("CNI_PATH").unwrap_or_default();
    let thin = find_thin_binary(own.as_deref(), &cni_path, |p| p.is_file()).ok_or_else(|| {
        CniError::new(
            ErrorCode::IoFailure,
            format!(
                "multus-daemon is down and the thin {THIN_BINARY:?} binary that tears down without it is neither next to multus-shim nor on CNI_PATH {:?}; install it (multus-daemon install --mode thick)",
                cni_path
            ),
        )
    })?;
    run_thin(&thin, &stdin)
}

/// Where the thin binary is: next to the shim's own executable first (the installer puts them
/// side by side), else the first directory of `cni_path` that holds it.
fn find_thin_binary(
    own_exe: Option<&Path>,
    cni_path: &OsStr,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    own_exe
        .and_then(Path::parent)
        .into_iter()
        .map(Path::to_path_buf)
        .chain(std::env::split_paths(cni_path).filter(|d| !d.as_os_str().is_empty()))
        .map(|dir| dir.join(THIN_BINARY))
        .find(|candidate| exists(candidate))
}

/// Runs the thin binary with this process's environment (`CNI_COMMAND=DEL`, ...) and `stdin`;
/// its CNI error, if any, becomes ours.
fn run_thin(thin: &Path, stdin: &[u8]) -> Result<(), CniError> {
    let failed = |why: String| {
        CniError::new(
            ErrorCode::IoFailure,
            format!(
                "multus-daemon is down and the teardown by {} {why}",
                thin.display()
            ),
        )
    };
    let mut child = std::process::Command::new(thin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    if let Some(mut input) = child.stdin.take() {
        // A child that exits without reading everything reports why through its exit status.
        let _ = input.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("was lost: {e}")))?;
    thin_outcome(out.status.success(), out.status.code(), &out.stdout)
        .map_err(|why| CniError::parse(&out.stdout).unwrap_or_else(|| failed(why)))
}

/// The thin binary's verdict: success only when it exited 0; otherwise a description (its CNI
/// error on stdout, when it printed one, is taken by the caller).
fn thin_outcome(success: bool, code: Option<i32>, stdout: &[u8]) -> Result<(), String> {
    if success {
        return Ok(());
    }
    let printed = String::from_utf8_lossy(stdout);
    Err(match code {
        Some(c) => format!("failed with exit status {c}: {}", printed.trim()),
        None => "was killed by a signal".to_string(),
    })
}

fn init_logging(shim: &ShimConf) {
    let level = daemon_config::log_level(shim.log_level.as_deref());
    let rotation = logging::Rotation::from_options(None);
    let file = shim.log_file.as_deref().map(|path| logging::LogFile {
        path,
        rotation: &rotation,
    });
    logging::init(level, file, shim.log_to_stderr.unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_reference() {
        let s: ShimConf = serde_json::from_str(r#"{"cniVersion":"0.3.1"}"#).unwrap();
        assert_eq!(s.socket(), Path::new("/run/multus/multus.sock"));
        assert_eq!(s.ready_timeout(), DEFAULT_READY_TIMEOUT);
        let s: ShimConf =
            serde_json::from_str(r#"{"daemonSocketDir":"/tmp/x","daemonReadyTimeoutSeconds":0.5}"#)
                .unwrap();
        assert_eq!(s.socket(), Path::new("/tmp/x/multus.sock"));
        assert_eq!(s.ready_timeout(), Duration::from_millis(500));
    }

    #[test]
    fn the_thin_binary_is_looked_up_next_to_the_shim_then_on_cni_path() {
        let here = Path::new("/opt/cni/bin/multus-shim");
        let path = OsStr::new("/a:/b");
        let found = |only: &'static str| move |p: &Path| p == Path::new(only);
        assert_eq!(
            find_thin_binary(Some(here), path, found("/opt/cni/bin/multus")),
            Some(PathBuf::from("/opt/cni/bin/multus"))
        );
        assert_eq!(
            find_thin_binary(Some(here), path, found("/b/multus")),
            Some(PathBuf::from("/b/multus"))
        );
        assert_eq!(
            find_thin_binary(None, path, found("/a/multus")),
            Some(PathBuf::from("/a/multus"))
        );
        assert_eq!(
            find_thin_binary(Some(here), OsStr::new(""), found("/a/multus")),
            None
        );
    }

    #[test]
    fn the_thin_binary_succeeds_only_with_exit_status_zero() {
        assert_eq!(thin_outcome(true, Some(0), b""), Ok(()));
        assert!(thin_outcome(false, Some(1), b"boom")
            .unwrap_err()
            .contains("boom"));
        assert!(thin_outcome(false, None, b"")
            .unwrap_err()
            .contains("signal"));
    }

    #[test]
    fn waiting_for_a_missing_daemon_fails_with_try_again_naming_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("multus.sock");
        let started = Instant::now();
        let e = wait_ready(&socket, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(e.code, ErrorCode::TryAgainLater);
        assert!(e.msg.contains(&socket.display().to_string()), "{}", e.msg);
    }
}
