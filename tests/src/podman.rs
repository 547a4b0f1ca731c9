//! podman (4.3, CNI backend) as a real CNI client, isolated from the host: it runs inside a test
//! node's network namespace (entered with `nsenter --net`, which keeps /sys and the cgroup mounts
//! that `ip netns exec` would hide from runc) and a private mount namespace whose /var/lib is a
//! tmpfs (libcni's result cache lands there, not in the host's /var/lib/cni). Storage, containers.conf
//! and the network configuration directory are private temporary files.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::node::Node;

/// A private podman installation bound to a test node.
pub struct Podman {
    dir: tempfile::TempDir,
    node_netns: PathBuf,
}

impl Podman {
    /// Writes the configuration and imports a busybox image (`localhost/bb`). Networks are the
    /// private directory's ([`Podman::network`]), plugins the node's and the Debian ones.
    pub fn new(node: &Node) -> Podman {
        Podman::with_cni_dirs(node, None, &[&node.bin_dir(), Path::new("/usr/lib/cni")])
    }

    /// As [`Podman::new`], with, for [`Podman::node_conf_env`] only, the network configuration
    /// directory `conf_dir` (None: the private one) and plugin directories `plugin_dirs`, as
    /// paths seen where podman runs: a node's `/etc/cni/net.d` and `/opt/cni/bin` for a podman
    /// that plays a node's runtime in a private node root.
    pub fn with_cni_dirs(node: &Node, conf_dir: Option<&Path>, plugin_dirs: &[&Path]) -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("multus-podman-")
            .tempdir()
            .expect("tempdir");
        let p = dir.path();
        for sub in ["conf", "graph", "run", "tmp", "rootfs/bin"] {
            std::fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "/bin/busybox is missing: run `cargo xtask setup` (installs busybox-static)"
        );
        std::fs::copy(busybox, p.join("rootfs/bin/busybox")).expect("copy busybox");
        for applet in ["sh", "ip", "ls", "cat", "sleep", "true", "ping"] {
            symlink("busybox", p.join("rootfs/bin").join(applet)).expect("applet");
        }
        let containers_conf = |conf_dir: &Path, plugin_dirs: &[&Path], pidns: &str| {
            format!(
                "[containers]\npidns = \"{pidns}\"\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = {}\nnetwork_config_dir = \"{}\"\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{}\"\n",
                serde_json::json!(plugin_dirs
                    .iter()
                    .map(|d| d.to_string_lossy())
                    .collect::<Vec<_>>()),
                conf_dir.display(),
                p.join("tmp").display()
            )
        };
        // podman (kube play) writes its default network into its configuration directory:
        // outside a node root, always the private one, and the node's and Debian's plugins.
        // (podman refuses plugin directories that do not exist where it runs.)
        std::fs::write(
            p.join("containers.conf"),
            containers_conf(
                &p.join("conf"),
                &[&node.bin_dir(), Path::new("/usr/lib/cni")],
                "private",
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            p.join("node-containers.conf"),
            // podman 4.3's kube play ignores a pod's hostPID (supported from 4.5): the node's
            // containers get the host's pid namespace by default instead.
            containers_conf(conf_dir.unwrap_or(&p.join("conf")), plugin_dirs, "host"),
        )
        .expect("node-containers.conf");
        std::fs::write(
            p.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p.join("graph").display(),
                p.join("run").display()
            ),
        )
        .expect("storage.conf");
        let podman = Podman {
            node_netns: node.ns.path().to_path_buf(),
            dir,
        };
        let tar = podman.dir.path().join("bb.tar");
        let rootfs = podman.dir.path().join("rootfs");
        crate::netns::run(
            "tar",
            &[
                "-C",
                &rootfs.to_string_lossy(),
                "-cf",
                &tar.to_string_lossy(),
                ".",
            ],
        );
        let out = podman.script(&format!(
            "podman import --change 'CMD [\"/bin/sh\"]' --change 'ENV PATH=/bin' {} localhost/bb:latest >/dev/null",
            tar.display()
        ));
        assert!(
            out.status.success(),
            "podman import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        podman
    }

    /// Installs a network (a conflist) under `name`.
    pub fn network(&self, name: &str, conflist: &Value) {
        std::fs::write(
            self.dir
                .path()
                .join("conf")
                .join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(conflist).expect("json"),
        )
        .expect("write conflist");
    }

    /// `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF` of this installation, for a podman (or
    /// `cargo xtask image`) started outside [`Podman::script`]. Its network configuration
    /// directory is the private one, whatever [`Podman::with_cni_dirs`] was given.
    pub fn conf_env(&self) -> Vec<(String, PathBuf)> {
        let p = self.dir.path();
        vec![
            ("CONTAINERS_CONF".into(), p.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF".into(), p.join("storage.conf")),
        ]
    }

    /// As [`Podman::conf_env`], with the directories given to [`Podman::with_cni_dirs`] and the
    /// host's pid namespace for containers (podman 4.3's kube play ignores hostPID): only for a
    /// podman run in a private node root.
    pub fn node_conf_env(&self) -> Vec<(String, PathBuf)> {
        let p = self.dir.path();
        vec![
            ("CONTAINERS_CONF".into(), p.join("node-containers.conf")),
            ("CONTAINERS_STORAGE_CONF".into(), p.join("storage.conf")),
        ]
    }

    /// Runs a shell script with podman configured, inside the node's network namespace and a
    /// private mount namespace. Returns its output (not asserted).
    pub fn script(&self, script: &str) -> Output {
        let p = self.dir.path();
        let wrapped = format!(
            "set -e\nmount -t tmpfs tmpfs /var/lib\nmkdir -p /var/lib/cni\nexport CONTAINERS_CONF={} CONTAINERS_STORAGE_CONF={}\n{script}\n",
            p.join("containers.conf").display(),
            p.join("storage.conf").display()
        );
        Command::new("nsenter")
            .arg(format!("--net={}", self.node_netns.display()))
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &wrapped,
            ])
            .output()
            .expect("run podman script")
    }
}
