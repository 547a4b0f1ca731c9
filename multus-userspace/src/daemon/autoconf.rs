//! The daemon's side of auto-configuration ([`crate::autoconf`]): `multusConfigFile` `"auto"`
//! runs a [`Generator`] on a thread of its own, once a second, for the daemon's lifetime, and
//! reports its state as a `/readyz` reason (no primary network, an unusable one, a write that
//! failed); a path is copied into `cniConfigDir` once. The generated file is a `multus-shim`
//! configuration whose `clusterNetwork` is the primary's file, with the daemon's log keys,
//! `cniDir` and `binDir` (so a DEL the shim does without the daemon uses the same cache),
//! `daemonReadyTimeoutSeconds` and `daemonSocketDir`, as the node sees them ([`node_path`]: the daemon may run in a container).
//! It is left in place when the daemon stops.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{json, Map};

use super::{
    config::{DaemonConfig, DEFAULT_SOCKET_DIR},
    server::Shared,
};
use crate::autoconf::{fsio, generator::POLL, Flavor, Generator};

/// The `/readyz` reason key of auto-configuration.
pub const READY_KEY: &str = "configuration";

/// What the generated `multus-shim` configuration carries for this daemon. The file is read on
/// the node (by the runtime and the shim), so its paths are the node's: see [`node_path`]. A path
/// with no node equivalent is left out (the shim then uses its default) with a warning.
pub fn thick_flavor(conf: &DaemonConfig) -> Flavor {
    let chroot = conf.chroot_dir.as_deref();
    let mut extra = Map::new();
    for key in ["logLevel", "logToStderr", "daemonReadyTimeoutSeconds"] {
        if let Some(v) = conf.raw.get(key) {
            extra.insert(key.into(), v.clone());
        }
    }
    for key in ["logFile", "cniDir", "binDir"] {
        let Some(path) = conf.raw.get(key).and_then(|v| v.as_str()) else {
            continue;
        };
        match node_path(chroot, Path::new(path)) {
            Some(on_node) => {
                extra.insert(key.into(), json!(on_node));
            }
            None => tracing::warn!(
                "{key} {path} is not a directory of the node under chrootDir: the generated \
                 configuration leaves it out (the shim's DEL without the daemon uses the default)"
            ),
        }
    }
    match node_path(chroot, &conf.socket_dir) {
        Some(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => {}
        Some(dir) => {
            extra.insert("daemonSocketDir".into(), json!(dir));
        }
        None => tracing::warn!(
            "socketDir {} is not a directory of the node under chrootDir: the shims look for \
             the socket in {DEFAULT_SOCKET_DIR}",
            conf.socket_dir.display()
        ),
    }
    Flavor::Thick {
        version: conf.cni_version.clone(),
        extra,
    }
}

/// `path`, as this daemon sees it, as the node sees it. Without `chroot` (the daemon runs on the
/// node) it is itself. In a container whose `chrootDir` is the node's `/`, it is the node path
/// under `chroot` that is the same file: itself (a host directory mounted at its own path), or
/// without a leading `/host` (the reference's convention: the node's `/run` at `/host/run`);
/// `None` when neither is. A path that does not exist yet is compared by its parent directory.
pub fn node_path(chroot: Option<&Path>, path: &Path) -> Option<PathBuf> {
    let Some(root) = chroot else {
        return Some(path.to_path_buf());
    };
    let mut candidates = vec![path.to_path_buf()];
    if let Ok(rest) = path.strip_prefix("/host") {
        candidates.insert(0, Path::new("/").join(rest));
    }
    let relative = |p: &Path| {
        p.strip_prefix("/")
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    candidates
        .into_iter()
        .find(|c| same_file(path, &root.join(relative(c))))
}

/// Whether `a` and `b` are the same file (device and inode), comparing the nearest existing
/// ancestors (the same number of components up) when one does not exist.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (mut a, mut b) = (a, b);
    loop {
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => return x.dev() == y.dev() && x.ino() == y.ino(),
            (Err(_), Err(_)) if a.file_name() == b.file_name() => match (a.parent(), b.parent()) {
                (Some(pa), Some(pb)) => (a, b) = (pa, pb),
                _ => return false,
            },
            _ => return false,
        }
    }
}

/// Starts the runtime configuration's upkeep as `multusConfigFile` says; readiness waits for it.
pub fn start(conf: &DaemonConfig, shared: Arc<Shared>) {
    shared.set_not_ready(
        READY_KEY,
        Some("the CNI configuration is not written yet".into()),
    );
    if conf.multus_config_file != "auto" {
        let reason = copy(conf);
        shared.set_not_ready(READY_KEY, reason);
        return;
    }
    let scan = conf
        .multus_autoconfig_dir
        .clone()
        .unwrap_or_else(|| conf.cni_config_dir.clone());
    let mut generator = Generator::new(
        scan,
        conf.cni_config_dir.clone(),
        conf.multus_master_cni.clone(),
        thick_flavor(conf),
    );
    let spawned = std::thread::Builder::new()
        .name("autoconf".into())
        .spawn(move || loop {
            let status = generator.step();
            shared.set_not_ready(READY_KEY, status.not_ready().map(String::from));
            std::thread::sleep(POLL);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start auto-configuration: {e}");
    }
}

/// Copies the `multusConfigFile` path into `cniConfigDir`; the reason it failed, if it did.
fn copy(conf: &DaemonConfig) -> Option<String> {
    let src = PathBuf::from(&conf.multus_config_file);
    let Some(name) = src.file_name() else {
        let reason = format!("multusConfigFile {} names no file", src.display());
        tracing::error!("{reason}");
        return Some(reason);
    };
    let dst = conf.cni_config_dir.join(name);
    match fsio::read_bounded(&src).and_then(|b| {
        if b.iter().all(u8::is_ascii_whitespace) {
            return Err(std::io::Error::other("it is empty"));
        }
        fsio::write_atomic(&dst, &b, 0o600)
    }) {
        Ok(()) => {
            tracing::info!(from = %src.display(), to = %dst.display(), "configuration copied");
            None
        }
        Err(e) => {
            let reason = format!(
                "cannot copy multusConfigFile {} to {}: {e}",
                src.display(),
                dst.display()
            );
            tracing::error!("{reason}");
            Some(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_nodes() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path();
        // The node's /run/multus and /var/lib/cni/multus, seen by the daemon at /host/run/multus
        // (the reference's convention) and at their own path (here: symlinks stand for the
        // container's bind mounts, which metadata follows).
        std::fs::create_dir_all(host.join("run/multus")).unwrap();
        std::fs::create_dir_all(host.join("var/lib/cni/multus")).unwrap();
        let seen = tempfile::tempdir().unwrap();
        let via = seen.path().join("host-run-multus");
        std::os::unix::fs::symlink(host.join("run/multus"), &via).unwrap();
        // Without chrootDir the daemon is on the node: paths are its own.
        assert_eq!(node_path(None, &via), Some(via.clone()));
        // A directory the daemon sees at its own node path.
        assert_eq!(
            node_path(Some(host), &host.join("var/lib/cni/multus")),
            None,
            "a path that is not the same file under chrootDir has no node equivalent"
        );
        // A path not under chrootDir at all: none.
        assert_eq!(node_path(Some(host), &via), None);
        assert!(same_file(&via, &host.join("run/multus")));
        assert!(same_file(
            &via.join("multus.sock"),
            &host.join("run/multus/multus.sock")
        ));
        assert!(!same_file(&via, &host.join("var/lib/cni/multus")));
    }

    #[test]
    fn the_shims_wait_is_carried_into_the_generated_configuration() {
        let conf =
            DaemonConfig::parse(br#"{"daemonReadyTimeoutSeconds":60,"logLevel":"debug"}"#).unwrap();
        let Flavor::Thick { extra, .. } = thick_flavor(&conf) else {
            panic!("thick")
        };
        assert_eq!(extra["daemonReadyTimeoutSeconds"], json!(60));
        let Flavor::Thick { extra, .. } = thick_flavor(&DaemonConfig::parse(b"{}").unwrap()) else {
            panic!("thick")
        };
        assert!(!extra.contains_key("daemonReadyTimeoutSeconds"));
    }
}
