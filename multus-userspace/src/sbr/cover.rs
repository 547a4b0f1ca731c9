//! Cover: brings a pod SBR already manages up to date with the interfaces it has now ([`cover`]).

use crate::cni::ContainerId;
use std::path::Path;

use super::bpf::PodMaps;
use super::error::SbrError;
use super::node::on_node;
use super::pins::{Lock, PodDir};
use super::reconcile::{self, Ctx, Snapshot};
use super::timing::Phases;
use super::types::SbrConfig;
use crate::netns::{mountns::IfUnknown, NetNs};

/// Brings a pod that SBR already manages up to date with its interfaces as they are now, as a
/// repeated ADD would, without changing which interfaces are managed: interfaces added to the pod
/// since (a later network of the pod, say) get the egress program, and the carrier, routes and
/// rp_filter follow. Multus calls it after its last delegate, so that a pod whose `ebpf-sbr`
/// network is not its last one is covered whole.
///
/// Returns the real interfaces that carry the egress program, or `None` when the container has
/// no SBR pod under this bpffs directory (nothing is done then).
pub fn cover(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: &Path,
) -> Result<Option<Vec<String>>, SbrError> {
    on_node(IfUnknown::Refuse, || cover_here(cfg, container_id, netns))
}

fn cover_here(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: &Path,
) -> Result<Option<Vec<String>>, SbrError> {
    let dir = PodDir::new(&cfg.bpffs_dir, container_id);
    if !cfg.bpffs_dir.is_dir() || !dir.exists() {
        return Ok(None);
    }
    let ns = NetNs::open(netns)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    if !dir.map("pod").exists() {
        return Ok(None);
    }
    let mut maps = PodMaps::open(&dir, &cfg.bpffs_dir)?;
    let phases = Phases::new();
    let (maps, dir, phases) = (&mut maps, &dir, &phases);
    ns.netlink(|h| async move {
        // Only the pod's own namespace is touched.
        if !crate::netns::current_netns_is(maps.cookie()) {
            tracing::warn!(
                "sbr: {} is not the namespace SBR state of {} was made in; not covering it",
                netns.display(),
                dir.path().display()
            );
            return Ok(None);
        }
        let mut ctx = Ctx::new(dir, phases);
        let snap = Snapshot::read(&h, maps).await?;
        let plan = reconcile::converge_from(&h, maps, &mut ctx, snap).await?;
        Ok(Some(
            plan.attach.into_iter().map(|(name, _)| name).collect(),
        ))
    })?
}
