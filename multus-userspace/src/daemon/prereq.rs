//! The node prerequisites the daemon checks at start, each missing one logged once with what it
//! disables: bpffs at `/sys/fs/bpf` (mounted when absent, as the SBR code does for its own
//! directory), the runtime's netns directory, the kubelet PodResources socket and device-manager
//! checkpoint, and the device-info directory. None of them blocks readiness: each one only
//! disables a feature (SBR programs; `/run/netns` paths; device-plugin networks), while config-only
//! networks keep working, so each becomes a `degraded` reason in `/readyz` and `/status`.
//! What blocks readiness is auto-configuration ([`super::autoconf`]). Docs: docs/daemon-api.md.

use std::path::{Path, PathBuf};

use super::{config::DaemonConfig, server::Shared};
use crate::{
    devices::{devinfo::DEFAULT_DEVINFO_DIR, DEFAULT_CHECKPOINT, DEFAULT_SOCKET},
    sbr::SYS_FS_BPF,
};

/// Where the runtime's named network namespaces live.
pub const NETNS_DIR: &str = "/run/netns";

/// The paths checked (the daemon configuration's keys where they exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// bpffs mount point.
    pub bpffs: PathBuf,
    /// The runtime's netns directory.
    pub netns: PathBuf,
    /// kubelet PodResources socket (`podResourcesSocket`).
    pub pod_resources: PathBuf,
    /// kubelet device-manager checkpoint (`deviceCheckpointFile`).
    pub checkpoint: PathBuf,
    /// Device-info directory (`deviceInfoDir`).
    pub devinfo: PathBuf,
}

impl Paths {
    /// The paths `conf` uses.
    pub fn from_config(conf: &DaemonConfig) -> Paths {
        let key = |k: &str, default: &str| {
            conf.raw
                .get(k)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Paths {
            bpffs: SYS_FS_BPF.into(),
            netns: NETNS_DIR.into(),
            pod_resources: key("podResourcesSocket", DEFAULT_SOCKET),
            checkpoint: key("deviceCheckpointFile", DEFAULT_CHECKPOINT),
            devinfo: key("deviceInfoDir", DEFAULT_DEVINFO_DIR),
        }
    }
}

/// One missing prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Short name (the key of the reason).
    pub key: &'static str,
    /// What is wrong and what it disables.
    pub reason: String,
}

/// What a missing prerequisite disables (pure: the message of each check).
pub fn describe(key: &'static str, path: &Path, problem: &str) -> Missing {
    let disables = match key {
        "bpffs" => "eBPF source-based routing (ebpf-sbr) cannot pin its programs",
        "netns" => "network namespaces given as /run/netns paths are not visible to the daemon (mount /run/netns with HostToContainer propagation)",
        "podResources" => "device-plugin networks get their device from the checkpoint only",
        "checkpoint" => "device-plugin networks get their device from the PodResources API only",
        _ => "device-info files are neither read nor written",
    };
    Missing {
        key,
        reason: format!("{} {problem}: {disables}", path.display()),
    }
}

fn exists(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be read ({e})")),
    }
}

/// Checks the prerequisites (mounting bpffs when absent).
pub fn check(paths: &Paths) -> Vec<Missing> {
    let mut missing = Vec::new();
    if let Err(e) = crate::sbr::ensure_bpffs(&paths.bpffs) {
        missing.push(describe(
            "bpffs",
            &paths.bpffs,
            &format!("is not a bpffs and cannot be mounted ({e})"),
        ));
    }
    for (key, path) in [
        ("netns", &paths.netns),
        ("podResources", &paths.pod_resources),
        ("checkpoint", &paths.checkpoint),
        ("deviceInfo", &paths.devinfo),
    ] {
        if let Some(problem) = exists(path) {
            missing.push(describe(key, path, &problem));
        }
    }
    missing
}

/// Logs each missing prerequisite once and records it as a degradation.
pub fn report(missing: &[Missing], shared: &Shared) {
    for m in missing {
        tracing::warn!(prerequisite = m.key, "{}", m.reason);
        shared.set_degraded(m.key, Some(m.reason.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_paths_are_checked_and_each_missing_one_says_what_it_disables() {
        let conf = DaemonConfig::parse(
            br#"{"podResourcesSocket":"/nonexistent/kubelet.sock","deviceInfoDir":"/tmp"}"#,
        )
        .unwrap();
        let paths = Paths::from_config(&conf);
        assert_eq!(paths.pod_resources, Path::new("/nonexistent/kubelet.sock"));
        assert_eq!(paths.checkpoint, Path::new(DEFAULT_CHECKPOINT));
        let m = describe("podResources", &paths.pod_resources, "does not exist");
        assert!(m
            .reason
            .starts_with("/nonexistent/kubelet.sock does not exist: device-plugin"));
        let only_missing = Paths {
            bpffs: SYS_FS_BPF.into(),
            netns: "/tmp".into(),
            pod_resources: "/nonexistent/kubelet.sock".into(),
            checkpoint: "/tmp".into(),
            devinfo: "/tmp".into(),
        };
        let keys: Vec<&str> = check(&only_missing).iter().map(|m| m.key).collect();
        assert!(keys.contains(&"podResources"), "{keys:?}");
        assert!(!keys.contains(&"netns"), "{keys:?}");
    }
}
