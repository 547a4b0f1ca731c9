//! CHECK: reports every way a pod's SBR state differs from what ADD set up ([`check`]).

use crate::cni::ContainerId;
use std::path::{Path, PathBuf};

use super::add::interface_entries;
use super::bpf::PodMaps;
use super::error::{Drift, SbrError};
use super::node::{netns_cookie, on_node};
use super::pins::{validate_ifname, Lock, PodDir};
use super::plan;
use super::programs::Programs;
use super::reconcile::{diff, plan_for, Ctx, Facts, Snapshot};
use super::state::MANAGED;
use super::timing::Phases;
use super::types::{InterfaceSpec, SbrConfig};
use crate::netns::{mountns::IfUnknown, NetNs};

/// Verifies what ADD set up for `iface`: pins, programs attached, map entries equal to the
/// interface's addresses, carrier and routes, defaults, rp_filter. Returns [`SbrError::Drift`]
/// naming every difference.
pub fn check(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<(), SbrError> {
    on_node(IfUnknown::RunHere, || {
        check_here(cfg, container_id, netns, iface)
    })
}

fn check_here(
    cfg: &SbrConfig,
    container_id: &ContainerId,
    netns: &Path,
    iface: &InterfaceSpec,
) -> Result<(), SbrError> {
    validate_ifname(&iface.ifname)?;
    let dir = PodDir::new(&cfg.bpffs_dir, container_id);
    if !dir.exists() {
        return Err(SbrError::Drift(vec![Drift::PodMissing]));
    }
    require_pins(["pod", "state", "src"].map(|m| dir.map(m)))?;
    let ns = NetNs::open(netns)?;
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    let opened = PodMaps::open_record(&dir)?;
    let progs = Programs::at(&cfg.bpffs_dir, &opened.1.version())?;
    require_pins(progs.pins())?;
    let maps = PodMaps::open_with(&dir, progs, opened)?;
    let drifts = ns.netlink(|h| async move {
        // The pins belong to another namespace than the one named now.
        if netns_cookie()? != maps.cookie() {
            return Ok(vec![Drift::PodMissing]);
        }
        let mut drifts = Vec::new();
        let snap = Snapshot::read(&h, &maps).await?;
        let (index, expected) = interface_entries(&h, cfg, maps.cookie(), iface, &snap).await?;
        match maps.state.get(&iface.ifname) {
            Some(st) if st.flags & MANAGED != 0 => {
                if st.ifindex != index {
                    drifts.push(Drift::IfindexChanged {
                        ifname: iface.ifname.clone(),
                        recorded: st.ifindex,
                        actual: index,
                    });
                }
            }
            _ => drifts.push(Drift::NotManaged(iface.ifname.clone())),
        }
        // The node-wide map is what the programs read: compare it, for every address the pod has
        // on the interface.
        let actual: Vec<_> = maps
            .entries()
            .into_iter()
            .filter(|(_, r)| r.ifindex == index)
            .filter_map(|(k, _)| maps.node_entry(&k).map(|r| (k, r)))
            .collect();
        for (k, r) in &expected {
            let addr = plan::words_addr(k.family, k.addr);
            match actual.iter().find(|(ak, _)| ak == k) {
                None => drifts.push(Drift::EntryMissing(addr)),
                Some((_, ar)) if ar != r => drifts.push(Drift::EntryDiffers {
                    addr,
                    expected: plan::describe_entry(k, r),
                    actual: plan::describe_entry(k, ar),
                }),
                Some(_) => {}
            }
        }
        for (k, _) in &actual {
            if !expected.iter().any(|(ek, _)| ek == k) {
                drifts.push(Drift::EntryExtra(plan::words_addr(k.family, k.addr)));
            }
        }
        let plan = plan_for(&snap, &maps);
        let phases = Phases::new();
        let mut ctx = Ctx::new(&dir, &phases);
        drifts.extend(
            diff(&plan, &snap, &Facts::read(&plan, &snap, &maps, &mut ctx)?)
                .iter()
                .map(|f| f.drift(&dir)),
        );
        Ok::<_, SbrError>(drifts)
    })??;
    if drifts.is_empty() {
        Ok(())
    } else {
        Err(SbrError::Drift(drifts))
    }
}

/// Fails with [`Drift::PinMissing`] for every one of `pins` that does not exist.
fn require_pins(pins: impl IntoIterator<Item = PathBuf>) -> Result<(), SbrError> {
    let missing: Vec<Drift> = pins
        .into_iter()
        .filter(|p| !p.exists())
        .map(Drift::PinMissing)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SbrError::Drift(missing))
    }
}
