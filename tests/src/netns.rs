//! Named network namespaces for tests: unique names, commands run inside them, and cleanup on drop
//! (also when the test panics).

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
};

use serde_json::Value;

/// A name no other test (of this or a parallel process) uses: `<prefix><pid%100000>x<counter>`
/// (short enough for interface names when `prefix` has at most 3 characters).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Runs a command and panics with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd} {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs a command and returns its output whatever the exit status.
pub fn try_run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
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

/// A named network namespace (`ip netns add`), deleted on drop unless [`Netns::delete`] already
/// removed it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
    deleted: AtomicBool,
}

impl Netns {
    /// Creates a namespace with a unique name derived from `role` and brings its loopback up.
    pub fn new(role: &str) -> Self {
        let name = unique_name(role);
        run("ip", &["netns", "add", &name]);
        let ns = Self {
            path: PathBuf::from("/run/netns").join(&name),
            name,
            deleted: false.into(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path under /run/netns (what CNI_NETNS carries).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command that runs inside this namespace (setns in the child before exec; no mount
    /// namespace games, so it costs nothing measurable).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        command_in(&self.path, program)
    }

    /// Runs `ip -n <ns> <args>`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `ip -n <ns> <args>` and returns the output whatever happens.
    pub fn try_ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        try_run("ip", &all)
    }

    /// Runs a program inside the namespace (`ip netns exec`), whatever its exit status.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", self.name.as_str(), cmd];
        all.extend_from_slice(args);
        try_run("ip", &all)
    }

    /// Writes a sysctl inside the namespace (`key` like `net.ipv4.ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = self.exec("sh", &["-c", &format!("echo {value} > {path}")]);
        assert!(
            out.status.success(),
            "sysctl {key}={value} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Reads a sysctl inside the namespace.
    pub fn read_sysctl(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = self.exec("cat", &[&path]);
        assert!(out.status.success(), "read {key} in {}", self.name);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `work` on a thread inside the namespace (sockets made there stay in it).
    pub fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        multus::netns::NetNs::open(self.path())
            .and_then(|ns| ns.run(work))
            .unwrap_or_else(|e| panic!("enter {}: {e}", self.name))
    }

    /// Sends `count` pings (`-c count -W 1 -i 0.2`, plus `extra`) and returns how many replies came.
    pub fn ping(&self, dst: &str, count: u32, extra: &[&str]) -> u32 {
        let count_s = count.to_string();
        let mut args = vec!["-n", "-q", "-c", count_s.as_str(), "-W", "1", "-i", "0.2"];
        args.extend_from_slice(extra);
        args.push(dst);
        let out = self.exec("ping", &args);
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                let (_, rest) = l.split_once("transmitted, ")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// Packet counters of an interface: (rx packets, tx packets).
    pub fn link_packets(&self, ifname: &str) -> (u64, u64) {
        let out = self.ip(&["-j", "-s", "link", "show", "dev", ifname]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        let stats = &v[0]["stats64"];
        let get = |dir: &str| {
            stats[dir]["packets"]
                .as_u64()
                .unwrap_or_else(|| panic!("{dir} packets of {ifname}"))
        };
        (get("rx"), get("tx"))
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

    /// `ip route show table all` plus `ip -6 route show table all`, one route a line, sorted.
    pub fn all_routes(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for fam in ["-4", "-6"] {
            let out = self.ip(&[fam, "route", "show", "table", "all"]);
            lines.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string),
            );
        }
        lines.sort();
        lines
    }

    /// The policy rules (`ip rule` and `ip -6 rule`), one a line.
    pub fn rules(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for fam in ["-4", "-6"] {
            let out = self.ip(&[fam, "rule", "show"]);
            lines.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string),
            );
        }
        lines
    }

    /// Deletes the namespace now (to test what happens when it disappears).
    pub fn delete(&self) {
        run("ip", &["netns", "del", &self.name]);
        self.deleted.store(true, Ordering::Relaxed);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.deleted.load(Ordering::Relaxed) {
            return;
        }
        let out = try_run("ip", &["netns", "del", &self.name]);
        if !out.status.success() && !std::thread::panicking() {
            eprintln!(
                "warning: cannot delete netns {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
