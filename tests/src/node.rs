//! A "node" namespace that plays the host for the plugins (bridges, host-side veths and iptables
//! rules live there), with private directories for the CNI cache, IPAM data and plugins.

use std::path::{Path, PathBuf};

use crate::netns::Netns;

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

    /// The Kubernetes API stand-in on this node's loopback, where the plugins and the daemon run
    /// (default options: a random token required, a kubeconfig written on request).
    pub fn api_server(&self) -> crate::kube_api::KubeApiServer {
        crate::kube_api::KubeApiServer::start_with(crate::kube_api::ServerOptions {
            netns: Some(self.ns.path().to_path_buf()),
            ..Default::default()
        })
        .expect("the API stand-in in the node's namespace")
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
        // A retired SBR carrier (`sbrdel-*`) is deleted by the kernel in the background once DEL
        // dropped its anchor namespace (docs/sbr-design.md §3.4): wait for it (up to 5 s) first.
        crate::sbr::carriers_gone(pod);
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
