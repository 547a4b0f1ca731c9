//! Finding and executing a CNI plugin binary: environment per the spec, config on stdin, result
//! on stdout, stderr captured for diagnostics, and a hard deadline so no call can hang.

use std::{
    io::{Read, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Child, Command as Process, Stdio},
    time::{Duration, Instant},
};

use crate::cni::{CniError, Command};

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No executable of that name in the search path.
    #[error("plugin {} not found in {}", crate::explain::quote(.plugin), display_path(.searched))]
    NotFound {
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// The process could not be started.
    #[error("cannot run plugin {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    /// The plugin did not finish in time and was killed.
    #[error("plugin {0} did not finish within {1:?} and was killed")]
    Timeout(PathBuf, Duration),
    /// The plugin returned a CNI error.
    #[error("{0}")]
    Plugin(CniError),
    /// The plugin failed without a CNI error on stdout.
    #[error("plugin {} exited with {status}{}", .binary.display(), stderr_suffix(.stderr))]
    Failed {
        /// The binary.
        binary: PathBuf,
        /// Exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// I/O with the child failed.
    #[error("I/O with plugin {0} failed: {1}")]
    Io(PathBuf, std::io::Error),
    /// The plugin succeeded but printed something that is not a result of its version.
    #[error("plugin {0} printed an invalid result: {1}")]
    BadOutput(PathBuf, String),
}

/// ": <stderr>", or nothing when the plugin printed nothing there.
fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

fn display_path(p: &[PathBuf]) -> String {
    let v: Vec<String> = p.iter().map(|p| p.display().to_string()).collect();
    if v.is_empty() {
        "an empty search path".into()
    } else {
        v.join(", ")
    }
}

/// The root every plugin runs in (`chrootDir` of multus-daemon in a container: the host's `/`);
/// set once at the daemon's start, never in the thin binary.
static PLUGIN_ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes every later plugin call run chrooted into `root`: plugins, `CNI_PATH`, `CNI_NETNS` and
/// the plugins' own state then resolve as on the host. Only the first call takes effect.
pub fn set_plugin_root(root: &Path) {
    let _ = PLUGIN_ROOT.set(root.to_path_buf());
}

/// Told of every plugin call (type, command, time taken), by a long-lived process for metrics.
pub type CallObserver = Box<dyn Fn(&str, Command, Duration) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<CallObserver> = std::sync::OnceLock::new();

/// Registers the observer of plugin calls. Only the first call takes effect.
pub fn set_observer(observer: CallObserver) {
    let _ = OBSERVER.set(observer);
}

/// Tells the observer, if any, of a plugin call.
pub fn observe(plugin: &str, command: Command, elapsed: Duration) {
    if let Some(o) = OBSERVER.get() {
        o(plugin, command, elapsed);
    }
}

/// A plugin run inside this process instead of as a child (the daemon's `ebpf-sbr`).
pub type InProcessPlugin = Box<dyn crate::cni::runner::Plugin + Send + Sync>;

/// Plugins a long-lived process runs in-process, by type; set once at its start.
static IN_PROCESS: std::sync::OnceLock<Vec<(&'static str, InProcessPlugin)>> =
    std::sync::OnceLock::new();

/// Makes later calls of these plugin types run in this process (no binary needed, no process
/// started). Only the first call takes effect.
pub fn set_in_process(plugins: Vec<(&'static str, InProcessPlugin)>) {
    let _ = IN_PROCESS.set(plugins);
}

/// The in-process plugin of type `plugin`, if one is registered.
pub fn in_process(plugin: &str) -> Option<&'static (dyn crate::cni::runner::Plugin + Send + Sync)> {
    IN_PROCESS
        .get()?
        .iter()
        .find(|(t, _)| *t == plugin)
        .map(|(_, p)| p.as_ref())
}

/// `path` (absolute, as a plugin sees it) where this process sees it.
fn as_seen_here(path: &Path) -> PathBuf {
    match PLUGIN_ROOT.get() {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// Finds the executable for plugin type `plugin` in `path` (first match wins); with a plugin
/// root, the directories are the root's and the path returned is as the plugin sees it.
pub fn find_plugin(plugin: &str, path: &[PathBuf]) -> Result<PathBuf, ExecError> {
    if crate::config::network::validate_plugin_type(plugin).is_ok() {
        for dir in path {
            let candidate = dir.join(plugin);
            if is_executable(&as_seen_here(&candidate)) {
                return Ok(candidate);
            }
        }
    }
    Err(ExecError::NotFound {
        plugin: plugin.to_string(),
        searched: path.to_vec(),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The environment of one plugin call.
#[derive(Clone, Debug)]
pub struct Invocation<'a> {
    /// The command.
    pub command: Command,
    /// Container id (empty for STATUS/GC).
    pub container_id: &'a str,
    /// Network namespace path (empty when unknown).
    pub netns: Option<&'a Path>,
    /// Interface name.
    pub ifname: &'a str,
    /// `CNI_ARGS`.
    pub args: &'a str,
    /// `CNI_PATH` for the plugin (and where it is looked up).
    pub path: &'a [PathBuf],
    /// Deadline for the call.
    pub timeout: Duration,
}

/// Runs `binary` with `stdin` and returns its stdout (the result JSON; may be empty for DEL).
pub fn exec(binary: &Path, inv: &Invocation<'_>, stdin: &[u8]) -> Result<Vec<u8>, ExecError> {
    let joined = std::env::join_paths(inv.path).unwrap_or_default();
    let mut cmd = Process::new(binary);
    cmd.env("CNI_COMMAND", inv.command.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env(
            "CNI_NETNS",
            inv.netns.map(|p| p.as_os_str()).unwrap_or_default(),
        )
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", joined)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A group of its own: a plugin killed at its deadline takes the processes it started along
    // (a shell plugin's `sleep`, a helper), which would otherwise live on, holding the pipes.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(root) = PLUGIN_ROOT.get() {
        let root = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
            .map_err(|e| ExecError::Spawn(binary.to_path_buf(), std::io::Error::other(e)))?;
        // SAFETY: chroot and chdir are async-signal-safe; `root` lives in the closure.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| ExecError::Spawn(binary.to_path_buf(), e))?;
    let io = |e| ExecError::Io(binary.to_path_buf(), e);
    let outcome = drive(&mut child, stdin, started + inv.timeout).map_err(io);
    let (stdout, stderr, exited) = match outcome {
        Ok(v) => v,
        Err(e) => {
            kill_group(&mut child);
            return Err(e);
        }
    };
    if !exited {
        kill_group(&mut child);
        return Err(ExecError::Timeout(binary.to_path_buf(), inv.timeout));
    }
    let status = child.wait().map_err(io)?;
    let stderr_text = String::from_utf8_lossy(&stderr).trim().to_string();
    if !stderr_text.is_empty() {
        tracing::debug!(plugin = %binary.display(), stderr = %stderr_text, "plugin stderr");
    }
    if status.success() {
        return Ok(stdout);
    }
    if let Some(mut e) = CniError::parse(&stdout) {
        if e.details.is_empty() && !stderr_text.is_empty() {
            e.details = stderr_text;
        }
        return Err(ExecError::Plugin(e));
    }
    Err(ExecError::Failed {
        binary: binary.to_path_buf(),
        status: status.to_string(),
        stderr: stderr_text,
    })
}

/// Kills the plugin and every process of its group (it leads one), then reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the group our own unreaped child leads (its pid is still ours).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Writes stdin, drains stdout and stderr, and waits for exit, all before `deadline`.
/// Returns (stdout, stderr, exited-in-time).
fn drive(
    child: &mut Child,
    stdin: &[u8],
    deadline: Instant,
) -> std::io::Result<(Vec<u8>, Vec<u8>, bool)> {
    let mut input = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // Plugins read all of stdin before writing; configs are far below the pipe buffer, but a
    // large one is written from a helper thread so it can never deadlock against stdout.
    let writer = match input.take() {
        Some(mut pipe) if stdin.len() > 32 * 1024 => {
            let data = stdin.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        Some(mut pipe) => {
            // A plugin that exits without reading stdin gives EPIPE: not our failure.
            let _ = pipe.write_all(stdin);
            None
        }
        None => None,
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while out.is_some() || err.is_some() {
        let mut fds = Vec::with_capacity(2);
        if let Some(o) = &out {
            fds.push(libc::pollfd {
                fd: o.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(e) = &err {
            fds.push(libc::pollfd {
                fd: e.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let Some(wait) = remaining_ms(deadline) else {
            return Ok((stdout, stderr, false));
        };
        // SAFETY: fds is a valid array of pollfd of the given length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            continue;
        }
        for fd in fds {
            if fd.revents == 0 {
                continue;
            }
            let is_out = out.as_ref().is_some_and(|o| o.as_raw_fd() == fd.fd);
            let n = if is_out {
                out.as_mut().map(|o| o.read(&mut buf)).unwrap_or(Ok(0))?
            } else {
                err.as_mut().map(|e| e.read(&mut buf)).unwrap_or(Ok(0))?
            };
            match (n, is_out) {
                (0, true) => out = None,
                (0, false) => err = None,
                (n, true) => stdout.extend_from_slice(&buf[..n]),
                (n, false) => stderr.extend_from_slice(&buf[..n]),
            }
        }
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok((stdout, stderr, wait_exit(child, deadline)?))
}

/// Waits for the child to exit before the deadline (pidfd + poll); true if it did.
fn wait_exit(child: &mut Child, deadline: Instant) -> std::io::Result<bool> {
    if child.try_wait()?.is_some() {
        return Ok(true);
    }
    // SAFETY: pidfd_open on our own child's pid; the returned descriptor is owned below.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if raw < 0 {
        // No pidfd support: fall back to short sleeps.
        while remaining_ms(deadline).is_some() {
            if child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        return Ok(false);
    }
    // SAFETY: raw is a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    loop {
        let Some(wait) = remaining_ms(deadline) else {
            return Ok(false);
        };
        let mut fd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut fd, 1, wait) };
        if rc > 0 {
            return Ok(true);
        }
        if rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
    }
}

fn remaining_ms(deadline: Instant) -> Option<i32> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    Some(left.as_millis().clamp(1, i32::MAX as u128) as i32)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn inv<'a>(path: &'a [PathBuf], timeout: Duration) -> Invocation<'a> {
        Invocation {
            command: Command::Add,
            container_id: "c1",
            netns: None,
            ifname: "eth0",
            args: "",
            path,
            timeout,
        }
    }

    #[test]
    fn runs_finds_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = vec![dir.path().to_path_buf()];
        let echo = script(
            dir.path(),
            "echo",
            "cat; echo \"$CNI_COMMAND $CNI_IFNAME\" >&2",
        );
        let out = exec(&echo, &inv(&path, Duration::from_secs(5)), b"{\"a\":1}").unwrap();
        assert_eq!(out, b"{\"a\":1}");
        assert_eq!(find_plugin("echo", &path).unwrap(), echo);
        assert!(matches!(
            find_plugin("../echo", &path),
            Err(ExecError::NotFound { .. })
        ));
        let slow = script(dir.path(), "slow", "sleep 5");
        let t = Instant::now();
        assert!(matches!(
            exec(&slow, &inv(&path, Duration::from_millis(200)), b""),
            Err(ExecError::Timeout(..))
        ));
        assert!(t.elapsed() < Duration::from_secs(3));
        let bad = script(
            dir.path(),
            "bad",
            "echo '{\"code\":7,\"msg\":\"nope\"}'; exit 1",
        );
        match exec(&bad, &inv(&path, Duration::from_secs(5)), b"") {
            Err(ExecError::Plugin(e)) => assert_eq!(e.code.as_u32(), 7),
            other => panic!("{other:?}"),
        }
        let crash = script(dir.path(), "crash", "echo boom >&2; exit 3");
        assert!(matches!(
            exec(&crash, &inv(&path, Duration::from_secs(5)), b""),
            Err(ExecError::Failed { .. })
        ));
    }
}
