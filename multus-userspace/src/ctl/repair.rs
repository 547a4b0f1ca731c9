//! `multusctl repair`: brings a container's eBPF source-based routing back to what its ADD set up,
//! touching nothing but SBR state: no delegate runs, no lease, interface, cache entry or
//! network-status changes. It is the safe answer to drift that `check` (or CHECK's code 104)
//! reports; a repeated ADD is not (multus refuses or answers one from its cache).
//!
//! Under the container's multus lock (so no ADD or DEL of it runs meanwhile), for every interface
//! that `check` verifies (a chain's `ebpf-sbr`, and what the pins manage) it runs what `ebpf-sbr`'s
//! ADD runs ([`crate::sbr::add`]: that interface's map entries rewritten from the cached result,
//! or from the entries the pins recorded, then the pod converged: programs, carrier, routes,
//! defaults, rp_filter), then [`crate::sbr::cover`] as multus does after its last delegate. Then
//! it checks again: exit 0 when nothing is left, 1 naming what could not be fixed.

use std::{io::Write, path::PathBuf, time::Duration};

use clap::Args;
use serde::Serialize;

use crate::{
    delegate::{lock::ContainerLock, Attachment},
    sbr::{self, IfAddr, InterfaceSpec, PodInfo},
    sbrplugin::chain,
};

use super::{
    check::{check_record, Problem},
    model::{Envelope, PodView},
    node::{NetnsState, Record},
    show::resolve,
    table::{or_dash, short_id, Table},
    write_document, write_names, CtlError, Format, Node, EXIT_OK, EXIT_PROBLEMS,
};

/// How long `repair` waits for an ADD, DEL or CHECK of the container that holds its lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `repair`.
#[derive(Debug, Clone, Args)]
pub struct RepairArgs {
    /// The container (id or unique id prefix) or every sandbox of a pod (namespace/name).
    pub target: String,
}

/// The `RepairReport` document.
#[derive(Debug, Serialize)]
pub struct RepairBody {
    /// Every container is free of drift after the repair.
    pub ok: bool,
    /// Every container repaired.
    pub items: Vec<RepairItem>,
}

/// The repair of one container.
#[derive(Debug, Serialize)]
pub struct RepairItem {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its pod.
    pub pod: Option<PodView>,
    /// Nothing is left to fix.
    pub ok: bool,
    /// The interfaces whose SBR state was rewritten.
    pub repaired: Vec<String>,
    /// What could not be fixed: the repair's own failures (`repairFailed`, `notRepairable`) and
    /// the drift `check` still finds afterwards (its kinds).
    pub problems: Vec<Problem>,
}

fn problem(kind: &'static str, interface: Option<&str>, message: impl Into<String>) -> Problem {
    Problem {
        kind,
        interface: interface.map(String::from),
        message: message.into(),
    }
}

/// Runs `repair`.
pub fn run(
    node: &Node,
    args: &RepairArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let records = resolve(node, &args.target, None)?;
    let items: Vec<RepairItem> = records.iter().map(|r| repair(node, &r.id)).collect();
    let ok = items.iter().all(|i| i.ok);
    let body = RepairBody { ok, items };
    if !write_document(out, format, &Envelope::new("RepairReport", &body), false)? {
        match format {
            Format::Name => write_names(out, body.items.iter().map(|i| i.container_id.as_str()))?,
            _ => write_table(out, &body)?,
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_PROBLEMS })
}

/// Repairs one container under its lock, then checks it.
fn repair(node: &Node, id: &crate::cni::ContainerId) -> RepairItem {
    let mut problems = Vec::new();
    let mut repaired = Vec::new();
    let lock = node
        .cache
        .dir()
        .is_dir()
        .then(|| ContainerLock::acquire(node.cache.dir(), id, LOCK_TIMEOUT));
    // Held until the check below is done.
    match &lock {
        Some(Err(e)) => problems.push(problem(
            "notRepairable",
            None,
            format!("cannot lock the container: {e}"),
        )),
        _ => repair_locked(node, &node.record(id), &mut repaired, &mut problems),
    }
    // The state as it is now, judged as `check` judges it.
    let after = check_record(node, &node.record(id));
    problems.extend(after.problems);
    problems.sort();
    problems.dedup();
    RepairItem {
        container_id: id.to_string(),
        pod: after.pod,
        ok: problems.is_empty(),
        repaired,
        problems,
    }
}

fn repair_locked(
    node: &Node,
    rec: &Record,
    repaired: &mut Vec<String>,
    problems: &mut Vec<Problem>,
) {
    let pins = rec.pins.as_ref().and_then(|p| p.as_ref().ok());
    let netns: Option<PathBuf> = rec
        .entry
        .as_ref()
        .and_then(|e| e.netns.clone())
        .or_else(|| pins.and_then(|p| p.netns.clone()));
    let Some(netns) = netns.filter(|_| !matches!(rec.netns, NetnsState::Gone)) else {
        problems.push(problem(
            "notRepairable",
            None,
            "the container's network namespace is gone or unknown: nothing to repair (`multusctl gc` removes what is left)",
        ));
        return;
    };
    let attachments: &[Attachment] = rec
        .entry
        .as_ref()
        .map(|e| e.attachments.as_slice())
        .unwrap_or_default();
    let mut configs: Vec<sbr::SbrConfig> = Vec::new();
    for (ifname, attachment) in chain::sbr_interfaces(attachments, pins) {
        let cfg = node.sbr_config_for(attachment);
        let spec = spec_for(attachment, &ifname, pins);
        match sbr::add(&cfg, &rec.id, &netns, &spec) {
            Ok(_) => repaired.push(ifname),
            Err(e) => problems.push(problem(
                "repairFailed",
                Some(&ifname),
                format!("cannot repair the SBR state of {ifname}: {e}"),
            )),
        }
        if !configs.iter().any(|c| c.bpffs_dir == cfg.bpffs_dir) {
            configs.push(cfg);
        }
    }
    if !problems.is_empty() {
        // Covering would stumble on the same interface; what is left is reported below.
        return;
    }
    // As multus's ADD after its last delegate: interfaces of later networks are covered.
    for cfg in &configs {
        if let Err(e) = sbr::cover(cfg, &rec.id, &netns) {
            problems.push(problem(
                "repairFailed",
                None,
                format!("cannot bring the pod's SBR state up to date: {e}"),
            ));
        }
    }
    if repaired.is_empty() && problems.is_empty() {
        tracing::info!(container = %rec.id, "no interface is routed by source: nothing to repair");
    }
}

/// The interfaces routed by source, as `check` finds them: the chains with `ebpf-sbr`, then what
/// the pins manage, each with its cached attachment when there is one.
/// The addresses to route by source for `ifname`: the cached result's, else the entries the pins
/// recorded for it (gateways included), else the interface's own.
fn spec_for(
    attachment: Option<&Attachment>,
    ifname: &str,
    pins: Option<&PodInfo>,
) -> InterfaceSpec {
    let spec = chain::cached_interface_spec(attachment.and_then(|a| a.result.as_ref()), ifname);
    if !spec.addresses.is_empty() {
        return spec;
    }
    let recorded = pins
        .and_then(|p| {
            let index = p.interfaces.iter().find(|r| r.ifname == ifname)?.ifindex;
            Some(
                p.entries
                    .iter()
                    .filter(|e| e.ifindex == index)
                    .map(|e| IfAddr {
                        address: e.address,
                        prefix_len: e.prefix_len,
                        gateway: e.gateway,
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    InterfaceSpec {
        addresses: recorded,
        ..spec
    }
}

fn write_table(out: &mut dyn Write, body: &RepairBody) -> Result<(), CtlError> {
    let mut t = Table::new(&[
        "CONTAINER",
        "POD",
        "STATUS",
        "INTERFACE",
        "PROBLEM",
        "DETAIL",
    ]);
    for i in &body.items {
        let pod = or_dash(i.pod.as_ref().map(|p| p.label()));
        if i.problems.is_empty() {
            let what = if i.repaired.is_empty() {
                "ok (nothing routed by source)".to_string()
            } else {
                format!("repaired ({})", i.repaired.join(","))
            };
            t.row(vec![short_id(&i.container_id), pod, what]);
            continue;
        }
        for (n, p) in i.problems.iter().enumerate() {
            let (id, pod, status) = if n == 0 {
                (
                    short_id(&i.container_id),
                    pod.clone(),
                    "NOT FIXED".to_string(),
                )
            } else {
                (String::new(), String::new(), String::new())
            };
            t.row(vec![
                id,
                pod,
                status,
                or_dash(p.interface.clone()),
                p.kind.to_string(),
                p.message.clone(),
            ]);
        }
    }
    t.write(out, "")?;
    let failed = body.items.iter().filter(|i| !i.ok).count();
    writeln!(
        out,
        "{} container(s) repaired, {failed} with problems left",
        body.items.len() - failed
    )?;
    Ok(())
}
