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
    /// Writes the configuration and imports a busybox image (`localhost/bb`).
    pub fn new(node: &Node) -> Podman {
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
        std::fs::write(
            p.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\nnetwork_config_dir = \"{}\"\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{}\"\n",
                node.bin_dir().display(),
                p.join("conf").display(),
                p.join("tmp").display()
            ),
        )
        .expect("containers.conf");
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
    /// `cargo xtask image`) started outside [`Podman::script`].
    pub fn conf_env(&self) -> Vec<(String, PathBuf)> {
        let p = self.dir.path();
        vec![
            ("CONTAINERS_CONF".into(), p.join("containers.conf")),
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
