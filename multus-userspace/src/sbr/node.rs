//! What every SBR operation shares: running in the node's mount namespace ([`on_node`]), the
//! calling namespace's cookie, and removing a pod (and its program version when unused).

use std::path::Path;

use super::bpf::PodMaps;
use super::error::SbrError;
use super::pins::PodDir;
use super::programs::Programs;
use crate::netns::mountns::{self, IfUnknown};

/// Runs an SBR operation where the pins, the bpffs mounts and the anchor namespaces it makes or
/// reads live beyond the call: in the node's mount namespace (in place when the caller is in it,
/// else on a thread that enters it; see [`crate::netns::mountns`]). `if_unknown` says what to do
/// when that namespace cannot be determined: an operation that makes such objects refuses.
pub(super) fn on_node<T: Send>(
    if_unknown: IfUnknown,
    op: impl FnOnce() -> Result<T, SbrError> + Send,
) -> Result<T, SbrError> {
    mountns::in_node_mount_ns(if_unknown, op)?
}

/// The cookie of the calling thread's network namespace.
pub(super) fn netns_cookie() -> Result<u64, SbrError> {
    crate::netns::current_netns_cookie().map_err(|e| {
        SbrError::Unsupported(format!(
            "cannot read the namespace cookie (SO_NETNS_COOKIE, Linux 5.14+): {e}"
        ))
    })
}

/// Removes everything of a pod from the node (its entries, its pins, its anchor) and the program
/// version it used when no other pod uses it.
pub(super) fn drop_pod(bpffs_dir: &Path, maps: &mut PodMaps, dir: &PodDir) -> Result<(), SbrError> {
    maps.purge()?;
    dir.remove()?;
    drop_unused_version(bpffs_dir, &maps.progs)
}

/// Removes every program version no pod uses: those of an ADD that died after loading them and
/// before its pod was pinned (its DEL finds no pod). The caller holds the node's SBR lock, so no
/// ADD is between loading and pinning.
pub(super) fn drop_unused_versions(bpffs_dir: &Path) -> Result<(), SbrError> {
    for progs in super::programs::versions(bpffs_dir)? {
        drop_unused_version(bpffs_dir, &progs)?;
    }
    Ok(())
}

pub(super) fn drop_unused_version(bpffs_dir: &Path, progs: &Programs) -> Result<(), SbrError> {
    if progs.unused() && progs.dir().starts_with(bpffs_dir) {
        progs.remove()?;
    }
    Ok(())
}
