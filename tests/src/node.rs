//! Network namespaces for tests: unique names, removed on drop, and a "node" namespace that plays
//! the host for the plugins (bridges, host-side veths and iptables rules live there).

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix><pid%100000>x<n>` (short enough for
/// interface names when `prefix` has at most 3 characters).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Runs a command and panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `ip` with arguments and panics when it fails.
pub fn ip(args: &[&str]) -> Output {
    run(Command::new("ip").args(args))
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates a namespace with a unique name starting with `prefix`; loopback is brought up.
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        ip(&["netns", "add", &name]);
        let ns = Netns {
            path: PathBuf::from("/var/run/netns").join(&name),
            name,
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path (what CNI_NETNS carries).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `ip -n <ns> args`.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs inside this namespace (setns in the child before exec; no mount
    /// namespace games, so it costs nothing measurable).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        command_in(&self.path, program)
    }

    /// The interfaces of the namespace (`ip -j link`).
    pub fn links(&self) -> Vec<Value> {
        let out = self.ip(&["-j", "link", "show"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Interface names, loopback excluded.
    pub fn link_names(&self) -> Vec<String> {
        self.links()
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(String::from))
            .filter(|n| n != "lo")
            .collect()
    }

    /// Addresses of one interface, as `addr/prefix`.
    pub fn addresses(&self, ifname: &str) -> Vec<String> {
        let out = self.ip(&["-j", "addr", "show", "dev", ifname]);
        let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["scope"] != "link")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect()
    }

    /// Routes of the main table for a family (`-4` or `-6`), as JSON.
    pub fn routes(&self, family: &str) -> Vec<Value> {
        let out = self.ip(&[family, "-j", "route", "show"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Pings `dst` from this namespace; true when `count` replies came back.
    pub fn ping(&self, dst: &str, count: u32) -> bool {
        self.command("ping")
            .args(["-c", &count.to_string(), "-i", "0.2", "-W", "1", "-q", dst])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A test "node": a namespace in which the plugins run, plus private directories for the CNI
/// cache, IPAM data, configuration and plugins. Dropping it removes everything.
pub struct Node {
    /// The node's namespace.
    pub ns: Netns,
    /// Private directory (cache, ipam, conf, bin, bpffs).
    pub dir: tempfile::TempDir,
}

impl Node {
    /// A fresh node with `bin/` holding the product binaries and the test recorder plugin.
    pub fn new() -> Node {
        let ns = Netns::new("nd");
        let dir = tempfile::Builder::new()
            .prefix("multus-node-")
            .tempdir()
            .expect("tempdir");
        for sub in ["cache", "ipam", "conf", "bin", "records"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        Node { ns, dir }
    }

    /// Links `binary` into the node's plugin directory under `name`.
    pub fn install(&self, name: &str, binary: &Path) {
        let dst = self.bin_dir().join(name);
        let _ = std::fs::remove_file(&dst);
        std::os::unix::fs::symlink(binary, &dst).expect("symlink plugin");
    }

    /// The private root directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    /// The multus cache directory (`cniDir`).
    pub fn cache_dir(&self) -> PathBuf {
        self.root().join("cache")
    }
    /// The host-local data directory.
    pub fn ipam_dir(&self) -> PathBuf {
        self.root().join("ipam")
    }
    /// The node's own plugin directory (`binDir`).
    pub fn bin_dir(&self) -> PathBuf {
        self.root().join("bin")
    }
    /// Where the recorder plugin writes.
    pub fn records_dir(&self) -> PathBuf {
        self.root().join("records")
    }
    /// Asserts that nothing of a deleted container is left: no interface in `pod`, no host-local
    /// lease and no multus cache file on the node.
    pub fn assert_pod_clean(&self, pod: &Netns) {
        assert_eq!(
            pod.link_names(),
            Vec::<String>::new(),
            "interfaces left in the pod"
        );
        assert_eq!(
            crate::leaks::host_local_leases(&self.ipam_dir()),
            Vec::<String>::new(),
            "IP leases left"
        );
        assert_eq!(
            crate::leaks::cache_files(&self.cache_dir()),
            Vec::<String>::new(),
            "cache files left"
        );
    }

    /// CNI_PATH: the node's bin dir, then the reference plugins.
    pub fn cni_path(&self) -> String {
        format!(
            "{}:{}",
            self.bin_dir().display(),
            crate::bins::REFERENCE_PLUGINS
        )
    }
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

/// A command that runs inside the network namespace at `ns` (setns in the child before exec).
pub fn command_in(ns: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let file = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
    let mut cmd = Command::new(program);
    // SAFETY: setns is async-signal-safe; the descriptor stays open in the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}
