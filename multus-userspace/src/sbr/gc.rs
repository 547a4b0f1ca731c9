//! GC: removes the state of stale and orphaned containers and the program versions no pod uses
//! ([`gc`]).

use super::bpf::{self, PodMaps};
use super::error::SbrError;
use super::node::on_node;
use super::pins::{self, Lock, PodDir};
use super::programs;
use super::state::{self, PodRecord, MODE_NETLINK, MODE_TCX};
use super::types::SbrConfig;
use crate::netns::{mountns::IfUnknown, NetNs};

/// What [`gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Containers whose pins were removed because they are not in the valid list.
    pub stale: Vec<String>,
    /// Containers whose pins were removed because their network namespace (or, for TCX, every
    /// attached interface) is gone.
    pub orphaned: Vec<String>,
    /// Program versions removed because no pod uses them.
    pub versions: Vec<String>,
}

/// Whether the pod's namespace is gone: its recorded path no longer opens, or names another
/// namespace. None when no path was recorded.
fn netns_gone(record: &PodRecord) -> Option<bool> {
    let path = record.netns()?;
    Some(match NetNs::open(&path) {
        Ok(ns) => {
            !matches!(ns.run(crate::netns::current_netns_cookie), Ok(Ok(c)) if c == record.cookie)
        }
        Err(_) => true,
    })
}

/// Removes the state of containers not in `valid_container_ids`, and of containers whose network
/// namespace no longer exists: their pins, their entries in the node-wide maps and their carrier
/// (deleted by the kernel when its anchor goes). A stale container's namespace, if it still
/// exists, is only entered to remove SBR's netlink filters. Program versions no pod uses are
/// removed, and entries of the node-wide maps that belong to no pod are swept.
pub fn gc(cfg: &SbrConfig, valid_container_ids: &[&str]) -> Result<GcReport, SbrError> {
    on_node(IfUnknown::RunHere, || gc_here(cfg, valid_container_ids))
}

fn gc_here(cfg: &SbrConfig, valid_container_ids: &[&str]) -> Result<GcReport, SbrError> {
    let mut report = GcReport::default();
    if !cfg.bpffs_dir.is_dir() {
        return Ok(report);
    }
    let _lock = Lock::acquire(&cfg.bpffs_dir)?;
    let mut errors = Vec::new();
    let mut live_cookies = std::collections::BTreeSet::new();
    for id in pins::pod_ids(&cfg.bpffs_dir)? {
        let dir = PodDir::new(&cfg.bpffs_dir, &id);
        let valid = valid_container_ids.contains(&id.as_str());
        let maps = PodMaps::open(&dir, &cfg.bpffs_dir);
        let orphan = match &maps {
            Ok(m) if valid => {
                let mut links = dir
                    .if_links()?
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect::<Vec<_>>();
                if dir.carrier_link().exists() {
                    links.push(dir.carrier_link());
                }
                let links_gone = !links.is_empty()
                    && links
                        .iter()
                        .all(|p| bpf::link_target(p).map(|t| t.ifindex == 0).unwrap_or(true));
                netns_gone(&m.record).unwrap_or(links_gone)
                    || (m.record.mode == MODE_TCX && links_gone)
            }
            Ok(_) => false,
            // Unreadable (a half-made pod, or its programs removed by hand): a valid one is left
            // to its DEL (or repaired by its next ADD); a stale one goes below.
            Err(_) => false,
        };
        if valid && !orphan {
            if let Ok(record) = PodMaps::read_record(&dir) {
                live_cookies.insert(record.cookie);
            }
            continue;
        }
        let removed = match maps {
            Ok(mut m) => {
                if m.record.mode == MODE_NETLINK && netns_gone(&m.record) == Some(false) {
                    if let Err(e) = detach_filters_in_ns(&mut m) {
                        tracing::warn!("sbr: gc of {id}: {e}");
                    }
                }
                m.purge().and_then(|()| dir.remove())
            }
            Err(_) => dir.remove(),
        };
        match removed {
            Ok(()) if orphan => report.orphaned.push(id.to_string()),
            Ok(()) => report.stale.push(id.to_string()),
            Err(e) => errors.push(e),
        }
    }
    for progs in programs::versions(&cfg.bpffs_dir)? {
        if let Ok(mut node) = bpf::NodeMaps::open(&progs) {
            for cookie in node.cookies() {
                // A running daemon's hold is no pod's: it stays while its process runs.
                if cookie == super::hold::HOLDER_COOKIE
                    && progs
                        .users()
                        .ok()
                        .and_then(|u| u.get(&cookie, 0).ok())
                        .is_some_and(super::hold::holder_alive)
                {
                    continue;
                }
                if !live_cookies.contains(&cookie) {
                    if let Err(e) = node.sweep(cookie) {
                        errors.push(e);
                    }
                }
            }
        }
        if progs.unused() {
            match progs.remove() {
                Ok(()) => report.versions.push(progs.name().to_string()),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(SbrError::Multiple(errors))
    }
}

/// Removes SBR's netlink filters from the (still existing) namespace of a stale netlink-mode pod.
fn detach_filters_in_ns(maps: &mut PodMaps) -> Result<(), SbrError> {
    let Some(path) = maps.record.netns() else {
        return Ok(());
    };
    let ns = NetNs::open(&path)?;
    let records = maps.state.all();
    ns.netlink(|h| async move {
        for (ifname, st) in records {
            if st.flags & state::NL_FILTER != 0 {
                bpf::detach_filter(
                    &h,
                    &ifname,
                    st.ifindex,
                    st.flags & state::NL_QDISC_ADDED != 0,
                )
                .await?;
            }
        }
        Ok::<_, SbrError>(())
    })?
}
