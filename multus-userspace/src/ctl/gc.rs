//! `multusctl gc [--dry-run]`: removes what belongs to containers whose network namespace is gone.
//!
//! - A cache entry whose recorded namespace is gone is torn down the way multus DEL does
//!   ([`crate::metaplugin::release_cached`]): its delegates' DEL runs (so IPAM releases the
//!   addresses), then the entry, its lock and its device-info files go.
//! - Pins go when the container's cache entry has a namespace that is gone, or when every program
//!   link of the pins is detached (the kernel detaches a link when its interface goes, so the pod's
//!   interfaces and namespace are gone) ([`crate::sbr::gc`]).
//!
//! Nothing else is touched: a container whose namespace exists keeps its cache entry and its pins.

use std::{collections::BTreeSet, io::Write};

use clap::Args;
use serde::Serialize;

use crate::{
    delegate::cache::CacheEntry,
    metaplugin::{release_cached, Released},
    sbr,
};

use super::{
    model::{links_all_detached, Envelope, PodView},
    node::{NetnsState, Record},
    table::{or_dash, short_id, Table},
    write_document, write_names, CtlError, Format, Node, EXIT_OK, EXIT_PROBLEMS,
};

/// Options of `gc`.
#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The `GcReport` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcBody {
    /// Nothing was removed: this is what would be.
    pub dry_run: bool,
    /// One item per container with something (to be) removed.
    pub items: Vec<GcItem>,
    /// Everything was removed that should have been.
    pub ok: bool,
}

/// What was (or would be) removed for one container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcItem {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its pod.
    pub pod: Option<PodView>,
    /// The namespace recorded at ADD.
    pub netns: Option<String>,
    /// Why it is garbage.
    pub reason: String,
    /// The cache entry is (to be) torn down: the networks whose delegates' DEL runs.
    pub cache: Option<Vec<String>>,
    /// The pin directory that is (to be) removed.
    pub pins: Option<String>,
    /// What went wrong (`null` when nothing did).
    pub error: Option<String>,
}

impl GcItem {
    /// The container for messages: `namespace/name (id)`, or the id.
    fn label(&self) -> String {
        match &self.pod {
            Some(p) => format!("{} ({})", p.label(), self.container_id),
            None => self.container_id.clone(),
        }
    }
}

fn plan(node: &Node, records: &[Record]) -> Vec<GcItem> {
    let mut items = Vec::new();
    for rec in records {
        let entry = rec.entry.as_ref();
        let netns = entry
            .and_then(|e| e.netns.as_ref())
            .map(|p| p.display().to_string());
        let netns_gone = rec.netns == NetnsState::Gone;
        let pins_detached = match &rec.pins {
            Some(Ok(info)) => links_all_detached(info),
            _ => false,
        };
        let pin_dir = node.sbr.bpffs_dir.join(&rec.id).display().to_string();
        let (reason, cache, pins) = match (entry, netns_gone, pins_detached) {
            (Some(e), true, _) => (
                format!("network namespace {} is gone", or_dash(netns.clone())),
                Some(e.attachments.iter().map(|a| a.name.clone()).collect()),
                rec.pins.is_some().then_some(pin_dir),
            ),
            (_, _, true) => (
                "every SBR program link is detached: the pod's interfaces and namespace are gone"
                    .to_string(),
                None,
                Some(pin_dir),
            ),
            _ => continue,
        };
        items.push(GcItem {
            container_id: rec.id.to_string(),
            pod: entry.and_then(|e| e.pod.as_ref()).map(PodView::from_ref),
            netns,
            reason,
            cache,
            pins,
            error: None,
        });
    }
    items
}

/// Runs `gc`.
pub fn run(
    node: &Node,
    args: &GcArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let records = node.records()?;
    let mut items = plan(node, &records);
    if !args.dry_run {
        remove(node, &mut items)?;
    }
    let ok = items.iter().all(|i| i.error.is_none());
    let body = GcBody {
        dry_run: args.dry_run,
        items,
        ok,
    };
    if !write_document(out, format, &Envelope::new("GcReport", &body), false)? {
        match format {
            Format::Name => write_names(out, body.items.iter().map(|i| i.container_id.as_str()))?,
            _ => write_table(out, &body)?,
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_PROBLEMS })
}

fn remove(node: &Node, items: &mut [GcItem]) -> Result<(), CtlError> {
    // Caches first: a chained ebpf-sbr's DEL removes its own pins.
    for item in items.iter_mut().filter(|i| i.cache.is_some()) {
        // The plan read the entry without the container's lock: under it, the entry must still
        // name the same namespace, and that namespace must still be gone.
        let planned_netns = item.netns.clone();
        tracing::info!("{}: {}: tearing it down", item.label(), item.reason);
        let still_garbage = |entry: &CacheEntry| {
            entry.netns.as_ref().map(|p| p.display().to_string()) == planned_netns
                && NetnsState::of(entry.netns.as_deref()) == NetnsState::Gone
        };
        let released = crate::cni::ContainerId::parse(&item.container_id)
            .map_err(|e| crate::error::Error::UnknownContainer(e.to_string()))
            .and_then(|id| release_cached(&node.conf, &id, &node.plugin_path, &still_garbage));
        match released {
            Ok(Released::TornDown) => {}
            Ok(Released::NoEntry) => {
                tracing::info!("{}: the cache entry went meanwhile", item.label())
            }
            Ok(Released::Kept) => {
                item.error = Some(
                    "the cache entry changed meanwhile (it now names a live namespace): kept"
                        .into(),
                )
            }
            Err(e) => {
                tracing::warn!(
                    "{}: DEL of the cached attachments failed: {e}",
                    item.label()
                );
                item.error = Some(format!("DEL of the cached attachments: {e}"));
            }
        }
    }
    let doomed: BTreeSet<&str> = items
        .iter()
        .filter(|i| i.pins.is_some())
        .map(|i| i.container_id.as_str())
        .collect();
    if doomed.is_empty() || !node.bpffs_present {
        return Ok(());
    }
    for item in items.iter().filter(|i| i.pins.is_some()) {
        tracing::info!("{}: removing its SBR pins", item.label());
    }
    let all = sbr::pods(&node.sbr)?;
    let keep: Vec<&str> = all
        .iter()
        .map(|id| id.as_str())
        .filter(|id| !doomed.contains(id))
        .collect();
    match sbr::gc(&node.sbr, &keep) {
        Ok(report) => {
            let removed: BTreeSet<&String> =
                report.stale.iter().chain(report.orphaned.iter()).collect();
            for id in removed {
                if !doomed.contains(id.as_str()) {
                    tracing::warn!(
                        "{id}: the SBR library also removed these pins (every link detached)"
                    );
                }
            }
        }
        Err(e) => {
            for item in items.iter_mut().filter(|i| i.pins.is_some()) {
                if node.sbr.bpffs_dir.join(&item.container_id).exists() {
                    let prev = item
                        .error
                        .take()
                        .map(|p| format!("{p}; "))
                        .unwrap_or_default();
                    item.error = Some(format!("{prev}removing the pins: {e}"));
                }
            }
        }
    }
    Ok(())
}

fn write_table(out: &mut dyn Write, body: &GcBody) -> Result<(), CtlError> {
    if body.items.is_empty() {
        writeln!(out, "nothing to remove")?;
        return Ok(());
    }
    let verb = if body.dry_run {
        "WOULD REMOVE"
    } else {
        "REMOVED"
    };
    let mut t = Table::new(&["CONTAINER", "POD", "REASON", verb, "ERROR"]);
    for i in &body.items {
        let mut what = Vec::new();
        if let Some(nets) = &i.cache {
            what.push(format!("cache (DEL of {})", nets.join(", ")));
        }
        if i.pins.is_some() {
            what.push("pins".to_string());
        }
        t.row(vec![
            short_id(&i.container_id),
            or_dash(i.pod.as_ref().map(|p| p.label())),
            i.reason.clone(),
            what.join(" + "),
            or_dash(i.error.clone()),
        ]);
    }
    t.write(out, "")?;
    let caches = body
        .items
        .iter()
        .filter(|i| i.cache.is_some() && i.error.is_none())
        .count();
    let pins = body
        .items
        .iter()
        .filter(|i| i.pins.is_some() && i.error.is_none())
        .count();
    let lead = if body.dry_run {
        "dry run: would remove"
    } else {
        "removed"
    };
    writeln!(
        out,
        "{lead} {caches} cache entr{} and {pins} pin director{}",
        if caches == 1 { "y" } else { "ies" },
        if pins == 1 { "y" } else { "ies" }
    )?;
    Ok(())
}
