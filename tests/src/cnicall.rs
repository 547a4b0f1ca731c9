//! Invoking a CNI plugin binary the way a runtime does: environment, config on stdin, JSON out.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{netns::Netns, node::Node};

/// One CNI call.
#[derive(Clone, Debug)]
pub struct CniCall {
    /// CNI_COMMAND.
    pub command: String,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS.
    pub args: String,
    /// CNI_PATH.
    pub path: String,
    /// Variables to leave out entirely (to test missing ones).
    pub unset: Vec<String>,
}

/// What the plugin did.
#[derive(Debug)]
pub struct CniOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
    /// stdout as JSON, when it is JSON.
    pub json: Option<Value>,
    /// Wall time of the call.
    pub elapsed: Duration,
}

impl CniOutput {
    /// Runs the prepared plugin command `cmd` (of `binary`) with `stdin`, timing the call.
    pub fn capture(cmd: &mut Command, binary: &Path, stdin: &[u8]) -> CniOutput {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin);
        }
        let out = child.wait_with_output().expect("wait");
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        CniOutput {
            status: out.status,
            json: serde_json::from_str(stdout.trim()).ok(),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
            elapsed,
        }
    }

    /// [`CniOutput::capture`] bounded by `limit`: past it, the process group led by the plugin
    /// (spawned with `process_group(0)`) is killed with SIGKILL and `None` returned.
    pub fn capture_bounded(
        mut cmd: Command,
        binary: &Path,
        stdin: &[u8],
        limit: Duration,
    ) -> Option<CniOutput> {
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let (binary, stdin, child_pid) = (binary.to_path_buf(), stdin.to_vec(), pid.clone());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
            child_pid.store(child.id() as i32, std::sync::atomic::Ordering::SeqCst);
            let _ = tx.send(None);
            if let Some(mut input) = child.stdin.take() {
                let _ = input.write_all(&stdin);
            }
            let out = child.wait_with_output().expect("wait");
            let elapsed = started.elapsed();
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            let _ = tx.send(Some(CniOutput {
                status: out.status,
                json: serde_json::from_str(stdout.trim()).ok(),
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).to_string(),
                elapsed,
            }));
        });
        // The first message says the child runs (its pid is known); the bound starts then.
        rx.recv().expect("the call's thread");
        match rx.recv_timeout(limit) {
            Ok(out) => out,
            Err(_) => {
                let pgid = pid.load(std::sync::atomic::Ordering::SeqCst);
                // SAFETY: kill(2) of the process group our own child leads.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                // Reaped by the thread (stdout closes once the group is gone).
                let _ = rx.recv_timeout(Duration::from_secs(10));
                None
            }
        }
    }

    /// The result; panics with the plugin's error when it failed.
    pub fn ok(&self) -> &Value {
        assert!(
            self.status.success(),
            "plugin failed: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self.json.as_ref().unwrap_or(&Value::Null)
    }

    /// Asserts success (any output).
    pub fn assert_ok(&self) {
        assert!(
            self.status.success(),
            "plugin failed: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
    }

    /// The CNI error code; panics when the call succeeded or printed no error JSON.
    pub fn err_code(&self) -> u64 {
        assert!(
            !self.status.success(),
            "expected a failure, got success: {}",
            self.stdout
        );
        let j = self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON error on stdout: {:?} / {}",
                self.stdout, self.stderr
            )
        });
        j["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code in {j}"))
    }

    /// The error message.
    pub fn err_msg(&self) -> String {
        self.json
            .as_ref()
            .and_then(|j| j["msg"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

impl CniCall {
    /// A call for `command` on container `id` in `pod` with interface `ifname`, with the node's path.
    pub fn new(node: &Node, command: &str, id: &str, pod: Option<&Netns>, ifname: &str) -> CniCall {
        CniCall {
            command: command.to_string(),
            container_id: id.to_string(),
            netns: pod.map(|p| p.path().to_path_buf()),
            ifname: ifname.to_string(),
            args: String::new(),
            path: node.cni_path(),
            unset: Vec::new(),
        }
    }

    /// Sets CNI_ARGS.
    pub fn args(mut self, args: &str) -> Self {
        self.args = args.to_string();
        self
    }

    /// Runs `binary` inside the node's namespace with `stdin`.
    pub fn run_bytes(&self, node: &Node, binary: &Path, stdin: &[u8]) -> CniOutput {
        self.run_bytes_with_env(node, binary, stdin, &[])
    }

    /// [`CniCall::run_bytes`] with more variables in the plugin's environment (`MULTUS_FAULT`).
    pub fn run_bytes_with_env(
        &self,
        node: &Node,
        binary: &Path,
        stdin: &[u8],
        extra: &[(&str, &str)],
    ) -> CniOutput {
        let mut cmd = self.command(node, binary, extra);
        CniOutput::capture(&mut cmd, binary, stdin)
    }

    /// [`CniCall::run_bytes_with_env`] with a hard bound: a call still running after `limit` is
    /// a hang; its process group (the plugin and whatever it started) is killed and `None` is
    /// returned. The plugin leads a process group of its own.
    pub fn run_bounded(
        &self,
        node: &Node,
        binary: &Path,
        stdin: &[u8],
        extra: &[(&str, &str)],
        limit: Duration,
    ) -> Option<CniOutput> {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.command(node, binary, extra);
        cmd.process_group(0);
        CniOutput::capture_bounded(cmd, binary, stdin, limit)
    }

    /// The plugin's command: `binary` in the node's namespace with the CNI environment and `extra`.
    fn command(&self, node: &Node, binary: &Path, extra: &[(&str, &str)]) -> Command {
        let mut cmd = node.ns.command(binary);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        cmd.envs(extra.iter().copied());
        let vars = [
            ("CNI_COMMAND", self.command.clone()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            (
                "CNI_NETNS",
                self.netns
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            ("CNI_PATH", self.path.clone()),
        ];
        for (k, v) in vars {
            if !self.unset.iter().any(|u| u == k) {
                cmd.env(k, v);
            }
        }
        cmd
    }

    /// Runs `binary` with a JSON config.
    pub fn run(&self, node: &Node, binary: &Path, conf: &Value) -> CniOutput {
        self.run_bytes(node, binary, &serde_json::to_vec(conf).expect("json"))
    }
}
