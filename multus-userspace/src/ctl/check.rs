//! `multusctl check`: verifies every attachment and names each drift; exits 1 when there is any.
//!
//! For a cached container: its namespace exists, each cached interface is in it, and for every
//! interface that a chain's `ebpf-sbr` or the pins route by source, [`crate::sbr::check`] with the
//! cached result's addresses (pins present, programs attached, map entries equal to the addresses,
//! carrier, routes, defaults, rp_filter, neighbours). For pins without a cache entry: every program
//! link still attached.

use std::{collections::BTreeSet, io::Write};

use clap::Args;
use serde::Serialize;

use crate::{
    sbr::{self, Drift, SbrError},
    sbrplugin::chain,
};

use super::{
    model::{link_attached, links_all_detached, Envelope, PodView},
    node::{Live, NetnsState, Record},
    show::resolve,
    table::{or_dash, short_id, Table},
    write_document, write_names, CtlError, Format, Node, EXIT_OK, EXIT_PROBLEMS,
};

/// Options of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Only this container (id, unique id prefix, or namespace/pod).
    pub target: Option<String>,
}

/// The `CheckReport` document.
#[derive(Debug, Serialize)]
pub struct CheckBody {
    /// No container has a problem.
    pub ok: bool,
    /// Every container checked.
    pub items: Vec<CheckItem>,
}

/// The result for one container.
#[derive(Debug, Serialize)]
pub struct CheckItem {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its pod.
    pub pod: Option<PodView>,
    /// No problem found.
    pub ok: bool,
    /// The interfaces verified against the SBR pins.
    pub verified: Vec<String>,
    /// What drifted.
    pub problems: Vec<Problem>,
}

/// One drift.
#[derive(Debug, Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// What kind: `netnsGone`, `interfaceGone`, `cacheUnreadable`, `pinsMissing`, `pinMissing`,
    /// `pinExtra`, `pinsUnreadable`, `pinsOrphaned`, `programDetached`, `notManaged`,
    /// `ifindexChanged`, `mapEntryMissing`, `mapEntryDiffers`, `mapEntryExtra`,
    /// `defaultRouteDiffers`, `carrier`, `carrierRouteMissing`, `carrierRouteExtra`,
    /// `rpFilterStrict`, `neighbourMissing`, `neighbourExtra`, `sbrCheckFailed`.
    pub kind: &'static str,
    /// The interface concerned, when there is one.
    pub interface: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl Problem {
    fn new(kind: &'static str, interface: Option<&str>, message: impl Into<String>) -> Self {
        Problem {
            kind,
            interface: interface.map(String::from),
            message: message.into(),
        }
    }
}

/// The problem a drift is.
fn drift_problem(d: &Drift, checked: &str) -> Problem {
    let message = d.to_string();
    let (kind, iface): (&'static str, Option<&str>) = match d {
        Drift::PodMissing => ("pinsMissing", Some(checked)),
        Drift::PinMissing(_) => ("pinMissing", None),
        Drift::PinExtra(_) => ("pinExtra", None),
        Drift::NotManaged(i) => ("notManaged", Some(i)),
        Drift::IfindexChanged { ifname, .. } => ("ifindexChanged", Some(ifname)),
        Drift::NotAttached { ifname, .. } => ("programDetached", Some(ifname)),
        Drift::EntryMissing(_) => ("mapEntryMissing", Some(checked)),
        Drift::EntryDiffers { .. } => ("mapEntryDiffers", Some(checked)),
        Drift::EntryExtra(_) => ("mapEntryExtra", Some(checked)),
        Drift::DefaultDiffers { .. } => ("defaultRouteDiffers", None),
        Drift::Carrier(_) => ("carrier", Some(sbr::CARRIER_IFNAME)),
        Drift::RouteMissing(_) => ("carrierRouteMissing", Some(sbr::CARRIER_IFNAME)),
        Drift::RouteExtra(_) => ("carrierRouteExtra", Some(sbr::CARRIER_IFNAME)),
        Drift::RpFilterStrict(i) => ("rpFilterStrict", Some(i)),
        Drift::NeighbourMissing(_) => ("neighbourMissing", None),
        Drift::NeighbourExtra(_) => ("neighbourExtra", None),
    };
    Problem::new(kind, iface, message)
}

/// Checks one container.
pub fn check_record(node: &Node, rec: &Record) -> CheckItem {
    let mut problems: BTreeSet<Problem> = BTreeSet::new();
    let mut verified = Vec::new();
    if let Some(e) = &rec.cache_error {
        problems.insert(Problem::new("cacheUnreadable", None, e.clone()));
    }
    let info = rec.pins.as_ref().and_then(|p| p.as_ref().ok());
    if let Some(Err(e)) = &rec.pins {
        problems.insert(Problem::new(
            "pinsUnreadable",
            None,
            format!("SBR pins cannot be read: {e}"),
        ));
    }
    match &rec.entry {
        Some(entry) => {
            let netns = entry.netns.as_deref();
            match (&rec.netns, netns) {
                (NetnsState::Gone, Some(p)) => {
                    problems.insert(Problem::new(
                        "netnsGone",
                        None,
                        format!("network namespace {} is gone: the cached attachment is stale (`multusctl gc` removes it)", p.display()),
                    ));
                }
                (NetnsState::Error(e), _) => {
                    problems.insert(Problem::new(
                        "netnsGone",
                        None,
                        format!("network namespace cannot be opened: {e}"),
                    ));
                }
                (NetnsState::Present, Some(path)) => {
                    match Live::read(path) {
                        Ok(live) => {
                            // The auxiliary chain makes no interface.
                            for a in entry.attachments.iter().filter(|a| !a.auxiliary) {
                                if live.link(&a.ifname).is_none() {
                                    problems.insert(Problem::new(
                                        "interfaceGone",
                                        Some(&a.ifname),
                                        format!(
                                            "interface {} of network {:?} is not in {}",
                                            a.ifname,
                                            a.name,
                                            path.display()
                                        ),
                                    ));
                                }
                            }
                        }
                        Err(e) => {
                            problems.insert(Problem::new(
                                "netnsGone",
                                None,
                                format!("cannot read {}: {e}", path.display()),
                            ));
                        }
                    }
                    // Interfaces routed by source: chained ebpf-sbr plugins, and what the pins manage.
                    let sbr_ifaces = chain::sbr_interfaces(&entry.attachments, info);
                    for (ifname, attachment) in sbr_ifaces {
                        let cfg = node.sbr_config_for(attachment);
                        let spec = chain::cached_interface_spec(
                            attachment.and_then(|a| a.result.as_ref()),
                            &ifname,
                        );
                        verified.push(ifname.clone());
                        match sbr::check(&cfg, &rec.id, path, &spec) {
                            Ok(()) => {}
                            Err(SbrError::Drift(drifts)) => {
                                problems.extend(drifts.iter().map(|d| drift_problem(d, &ifname)))
                            }
                            Err(SbrError::InterfaceNotFound(i)) => {
                                problems.insert(Problem::new(
                                    "interfaceGone",
                                    Some(&i),
                                    format!(
                                        "interface {i} is routed by source but is not in {}",
                                        path.display()
                                    ),
                                ));
                            }
                            Err(e) => {
                                problems.insert(Problem::new(
                                    "sbrCheckFailed",
                                    Some(&ifname),
                                    e.to_string(),
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        None => {
            if let Some(info) = info {
                if links_all_detached(info) {
                    problems.insert(Problem::new(
                        "pinsOrphaned",
                        None,
                        "SBR pins without a cache entry and with every program detached: the pod's interfaces or namespace are gone (`multusctl gc` removes them)",
                    ));
                } else {
                    for i in info
                        .attachments
                        .iter()
                        .filter(|a| !link_attached(a))
                        .map(|a| a.ifname.as_str())
                    {
                        problems.insert(Problem::new(
                            "programDetached",
                            Some(i),
                            format!("program not attached to {i}: link detached"),
                        ));
                    }
                }
            }
        }
    }
    let problems: Vec<Problem> = problems.into_iter().collect();
    CheckItem {
        container_id: rec.id.to_string(),
        pod: rec
            .entry
            .as_ref()
            .and_then(|e| e.pod.as_ref())
            .map(PodView::from_ref),
        ok: problems.is_empty(),
        verified,
        problems,
    }
}

/// Runs `check`.
pub fn run(
    node: &Node,
    args: &CheckArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let records = match &args.target {
        Some(t) => resolve(node, t, None)?,
        None => node.records()?,
    };
    let items: Vec<CheckItem> = records.iter().map(|r| check_record(node, r)).collect();
    let ok = items.iter().all(|i| i.ok);
    let body = CheckBody { ok, items };
    if !write_document(out, format, &Envelope::new("CheckReport", &body), false)? {
        match format {
            Format::Name => write_names(out, body.items.iter().map(|i| i.container_id.as_str()))?,
            _ => write_table(out, &body)?,
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_PROBLEMS })
}

fn write_table(out: &mut dyn Write, body: &CheckBody) -> Result<(), CtlError> {
    let mut t = Table::new(&["CONTAINER", "POD", "STATUS", "INTERFACE", "DRIFT", "DETAIL"]);
    for i in &body.items {
        let pod = or_dash(i.pod.as_ref().map(|p| p.label()));
        if i.problems.is_empty() {
            let what = if i.verified.is_empty() {
                "ok".to_string()
            } else {
                format!("ok (SBR verified: {})", i.verified.join(","))
            };
            t.row(vec![short_id(&i.container_id), pod, what]);
            continue;
        }
        for (n, p) in i.problems.iter().enumerate() {
            let (id, pod, status) = if n == 0 {
                (short_id(&i.container_id), pod.clone(), "DRIFT".to_string())
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
    if t.is_empty() {
        writeln!(out, "no attachments on this node")?;
    } else {
        t.write(out, "")?;
    }
    let drifted = body.items.iter().filter(|i| !i.ok).count();
    writeln!(
        out,
        "{} container(s) checked, {drifted} with drift",
        body.items.len()
    )?;
    Ok(())
}
