//! An emulated node for mount-namespace tests, so that they never mount anything in the machine's
//! own mount namespace (nor over its real `/sys/fs/bpf`).
//!
//! The node is a pid namespace whose pid 1 runs in a mount namespace the test made: a copy of the
//! machine's, as a *slave* (the machine's mounts, such as new `/run/netns` entries, propagate in;
//! nothing made inside propagates out), with a fresh sysfs on `/sys`, so that `/sys/fs/bpf` is
//! not a bpffs there, as on a node without systemd's mount. The product takes pid 1's mount
//! namespace for the node's; inside this one that is the emulated node's. Commands run as the
//! node's own processes ([`Caller::Node`], as `nsenter --net=...` runs them) or in a private mount
//! namespace of their own ([`Caller::Private`], as `ip netns exec` runs them: `/` rslave, a fresh
//! sysfs on `/sys`). Dropping the node kills its pid 1, and with it the namespace and every mount
//! in it.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// How a command is started on an [`EmulatedNode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// In the node's mount namespace (`nsenter --target <pid 1> --mount --pid`).
    Node,
    /// In a private mount namespace of its own made by `ip netns exec <netns>` (which also enters
    /// that network namespace).
    Private {
        /// The `ip netns` name the command runs in.
        netns: String,
    },
    /// Like `Private`, without CAP_SYS_CHROOT (which entering another mount namespace needs).
    PrivateWithoutChroot {
        /// The `ip netns` name the command runs in.
        netns: String,
    },
}

/// A node of its own: a pid namespace and a mount namespace (see the module documentation).
pub struct EmulatedNode {
    holder: Child,
    pid1: u32,
}

impl EmulatedNode {
    /// Starts the node and waits until its `/sys` is fresh.
    pub fn new() -> EmulatedNode {
        let mut holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "slave",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "--",
                "sh",
                "-c",
                "umount -l /sys && mount -t sysfs sysfs /sys && echo ready && exec sleep 1000000",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "the emulated node did not start");
        let children = format!("/proc/{0}/task/{0}/children", holder.id());
        let pid1: u32 = std::fs::read_to_string(&children)
            .unwrap_or_else(|e| panic!("{children}: {e}"))
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the node's pid 1");
        let node = EmulatedNode { holder, pid1 };
        assert_ne!(
            node.mount_ns(),
            std::fs::read_link("/proc/self/ns/mnt").expect("own mount namespace"),
            "the node has a mount namespace of its own"
        );
        node
    }

    /// The node's pid 1, as the test process sees it.
    pub fn pid1(&self) -> u32 {
        self.pid1
    }

    /// The node's mount namespace (`mnt:[inode]`).
    pub fn mount_ns(&self) -> PathBuf {
        std::fs::read_link(format!("/proc/{}/ns/mnt", self.pid1)).expect("the node's namespace")
    }

    /// `path` as the node sees it, reachable from the test process (`/proc/<pid 1>/root/...`).
    pub fn path(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid1))
            .join(path.strip_prefix("/").unwrap_or(path))
    }

    /// The program and arguments that start a command as `caller` (the command follows).
    pub fn launcher(&self, caller: &Caller) -> Vec<String> {
        let mut argv: Vec<String> = [
            "nsenter",
            "--target",
            &self.pid1.to_string(),
            "--mount",
            "--pid",
            "--",
        ]
        .map(String::from)
        .to_vec();
        let netns = match caller {
            Caller::Node => return argv,
            Caller::Private { netns } => netns,
            Caller::PrivateWithoutChroot { netns } => {
                argv.extend(["setpriv", "--bounding-set", "-sys_chroot", "--"].map(String::from));
                netns
            }
        };
        argv.extend(["ip", "netns", "exec", netns].map(String::from));
        argv
    }
}

impl Default for EmulatedNode {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for EmulatedNode {
    fn drop(&mut self) {
        // unshare --kill-child: the node's pid 1, and so every process and mount of the node, go
        // with it.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Whether `path` is on a bpffs (false when it cannot be read).
pub fn is_bpffs(path: &Path) -> bool {
    multus::sbr::is_bpffs(path).unwrap_or(false)
}
