//! Thick mode in tests: a real `multus-daemon` process in a test node's namespace, with its
//! configuration, socket directory and log in a private directory, and the shim configuration
//! that points `multus-shim` at it.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{bins, node::Node};

/// The primary network [`Daemon::configure`] puts in the daemon's `cniConfigDir`.
pub const DEFAULT_PRIMARY: &str = "99-testkit-primary.conflist";

/// A running daemon; killed (SIGKILL) on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    /// Environment of the daemon process (besides PATH), e.g. `MULTUS_NODE_NAME`.
    pub env: Vec<(String, String)>,
    /// Private directory: `daemon-config.json`, `run/` (the socket directory), `daemon.log`.
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Writes a daemon configuration for `node` (cache, plugins; `extra` keys added or replaced)
    /// without starting the daemon.
    pub fn configure(node: &Node, extra: Value) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("multus-thick-")
            .tempdir()
            .expect("tempdir");
        let mut conf = json!({
            "socketDir": dir.path().join("run"),
            "cniDir": node.cache_dir(),
            "binDir": node.bin_dir(),
            "cniConfigDir": dir.path().join("net.d"),
            "logLevel": "debug",
            "logToStderr": true,
        });
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        std::fs::create_dir_all(dir.path().join("net.d")).expect("mkdir net.d");
        // A primary network, so that auto-configuration (and with it readiness) completes; a
        // test of auto-configuration removes it or writes one that sorts first.
        std::fs::write(
            dir.path().join("net.d").join(DEFAULT_PRIMARY),
            json!({"cniVersion": "1.0.0", "name": "testkit-primary",
                "plugins": [{"type": "loopback"}]})
            .to_string(),
        )
        .expect("write the default primary");
        std::fs::write(
            dir.path().join("daemon-config.json"),
            serde_json::to_vec_pretty(&conf).expect("json"),
        )
        .expect("write daemon config");
        Daemon {
            child: None,
            env: Vec::new(),
            dir,
        }
    }

    /// Configures and starts a daemon in `node`'s namespace and waits until it is ready.
    pub fn start(node: &Node, extra: Value) -> Daemon {
        let mut d = Self::configure(node, extra);
        d.spawn(node);
        d.wait_ready(Duration::from_secs(10));
        d
    }

    /// Starts the configured daemon in `node`'s namespace (does not wait).
    pub fn spawn(&mut self, node: &Node) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("daemon log");
        let child = node
            .ns
            .command(bins::product("multus-daemon"))
            .arg("-config")
            .arg(self.config_path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start multus-daemon");
        self.child = Some(child);
    }

    /// Starts the daemon through `cmd` (a wrapper that ends by exec'ing [`Daemon::command_line`]).
    pub fn spawn_command(&mut self, mut cmd: Command) {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the daemon's wrapper");
        self.child = Some(child);
    }

    /// The command line a shell script can start the daemon with.
    pub fn command_line(&self) -> String {
        format!(
            "{} -config {} 2>>{}",
            bins::product("multus-daemon").display(),
            self.config_path().display(),
            self.log_path().display()
        )
    }

    /// Waits for `/readyz`; panics with the daemon's log when it does not come.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.get(multus::daemon::api::READY_PATH).0 == 200 {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("multus-daemon exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("multus-daemon not ready after {timeout:?}:\n{}", self.log());
    }

    /// GETs `path` on the socket: (status, body); status 0 when nothing answered.
    pub fn get(&self, path: &str) -> (u16, String) {
        match multus::shim::http::request(
            &self.socket(),
            "GET",
            path,
            b"",
            Some(Duration::from_secs(2)),
        ) {
            Ok(a) => (a.status, String::from_utf8_lossy(&a.body).to_string()),
            Err(_) => (0, String::new()),
        }
    }

    /// `GET /status`, decoded.
    pub fn status(&self) -> multus::daemon::api::DaemonStatus {
        let (code, body) = self.get(multus::daemon::api::STATUS_PATH);
        assert_eq!(code, 200, "GET /status: {body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// Waits until the watch cache of `resource` has synced and holds `objects` objects.
    pub fn wait_cache(&self, resource: &str, objects: usize, timeout: Duration) {
        let started = Instant::now();
        loop {
            let status = self.status();
            if status
                .caches
                .iter()
                .any(|c| c.resource == resource && c.synced && c.objects == objects)
            {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "cache of {resource} never held {objects} objects: {status:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("daemon-config.json")
    }
    /// The socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    /// The socket.
    pub fn socket(&self) -> PathBuf {
        self.socket_dir().join("multus.sock")
    }
    /// The runtime's configuration directory the daemon was given.
    pub fn cni_config_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }
    /// The daemon's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }
    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon started").id() as i32
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits for the daemon to exit, at most `timeout`; its exit code (`None`: still running or
    /// killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        let child = self.child.as_mut()?;
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the daemon process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The shim's configuration for this daemon: `delegates` inline, as `00-multus.conf` would
    /// carry them (the daemon configuration adds cache and plugin directories).
    pub fn shim_conf(&self, version: &str, delegates: Vec<Value>) -> Value {
        json!({
            "cniVersion": version,
            "name": "multus-cni-network",
            "type": "multus-shim",
            "daemonSocketDir": self.socket_dir(),
            "daemonConfigFile": self.config_path(),
            "daemonReadyTimeoutSeconds": 10,
            "logLevel": "debug",
            "logToStderr": true,
            "delegates": delegates,
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The shim binary.
pub fn shim() -> PathBuf {
    bins::product("multus-shim")
}

/// A command that runs `program` as uid/gid 65534 (nobody).
pub fn as_nobody(program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    // SAFETY: setgroups/setgid/setuid are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A numeric field of /proc/<pid>/status (KiB for memory fields): the daemon's `VmRSS:`,
/// `Threads:`.
pub fn proc_status(pid: i32, field: &str) -> anyhow::Result<u64> {
    use anyhow::Context;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} of process {pid}"))
}

/// Whether `path` exists.
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
