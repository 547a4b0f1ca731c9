//! `multusctl show <container id | namespace/pod>`: the delegate chain, the cached results, the SBR
//! map entries and the programs attached per interface.

use std::io::Write;

use crate::cni::ContainerId;

use clap::Args;

use super::{
    kube::Api,
    model::{container_view, live_of, ContainerView, Envelope, Items, PodView},
    node::Record,
    table::{or_dash, utc, Table},
    write_document, write_names, CtlError, Format, Node, EXIT_OK,
};

/// Options of `show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// A container id (or a unique prefix of one), or a pod as namespace/name (every sandbox of the
    /// pod on this node; with the API, the current one first).
    pub target: String,
}

/// The records `target` names (only those are read in full: reading a record enters its pod's
/// namespace). A target without `/` is, with `-n`, first taken as a pod name in that namespace.
pub fn resolve(node: &Node, target: &str, api: Option<&mut Api>) -> Result<Vec<Record>, CtlError> {
    let ids = node.ids()?;
    if let Some((namespace, name)) = target.split_once('/') {
        return of_pod(node, &ids, namespace, name, api)?
            .ok_or_else(|| not_in_cache(node, &format!("{namespace}/{name}"), None));
    }
    if let Some(ns) = &node.namespace {
        if let Some(found) = of_pod(node, &ids, ns, target, api)? {
            return Ok(found);
        }
        let rec = by_id(node, &ids, target)
            .map_err(|_| not_in_cache(node, &format!("{ns}/{target}"), None))?;
        if !node.selects(&rec) {
            return Err(CtlError::NotFound(format!(
                "container {} is not of a pod in namespace {ns} (no pod {ns}/{target} either)",
                rec.label()
            )));
        }
        return Ok(vec![rec]);
    }
    Ok(vec![by_id(node, &ids, target)?])
}

fn pod_view(namespace: &str, name: &str) -> PodView {
    PodView {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: None,
    }
}

fn not_in_cache(node: &Node, pod: &str, known_uid: Option<&str>) -> CtlError {
    let known = match known_uid {
        Some(uid) => {
            format!(" (the API knows the pod, UID {uid}, but this node has no sandbox of it)")
        }
        None => String::new(),
    };
    CtlError::NotFound(format!(
        "no container of pod {pod} in the delegate cache {}{known}",
        node.cache.dir().display()
    ))
}

/// Every sandbox of pod `namespace/name`, the current one (per the API) first, then the newest;
/// `None` when the cache has none.
fn of_pod(
    node: &Node,
    ids: &std::collections::BTreeSet<ContainerId>,
    namespace: &str,
    name: &str,
    api: Option<&mut Api>,
) -> Result<Option<Vec<Record>>, CtlError> {
    let of_pod = |id: &ContainerId| {
        let entry = node.cache.read(id).ok().flatten();
        entry
            .and_then(|e| e.pod)
            .is_some_and(|p| p.namespace == namespace && p.name == name)
    };
    let mut found: Vec<Record> = ids
        .iter()
        .filter(|id| of_pod(id))
        .map(|id| node.record(id))
        .collect();
    let current_uid = api
        .map(|a| a.pod(&pod_view(namespace, name)))
        .filter(|a| a.status == "found")
        .and_then(|a| a.uid);
    if found.is_empty() {
        return match current_uid {
            Some(uid) => Err(not_in_cache(
                node,
                &format!("{namespace}/{name}"),
                Some(&uid),
            )),
            None => Ok(None),
        };
    }
    // The pod's current sandbox first, then the newest.
    found.sort_by_key(|r| {
        let e = r.entry.as_ref();
        let current = e
            .and_then(|e| e.pod.as_ref())
            .is_some_and(|p| Some(&p.uid) == current_uid.as_ref());
        (
            !current,
            std::cmp::Reverse(e.map(|e| e.created_at).unwrap_or(0)),
        )
    });
    Ok(Some(found))
}

/// The container whose id is `target` or starts with it.
fn by_id(
    node: &Node,
    ids: &std::collections::BTreeSet<ContainerId>,
    target: &str,
) -> Result<Record, CtlError> {
    if let Some(id) = ids.iter().find(|id| id.as_str() == target) {
        return Ok(node.record(id));
    }
    let matches: Vec<&ContainerId> = ids.iter().filter(|id| id.starts_with(target)).collect();
    match matches.as_slice() {
        [] => Err(CtlError::NotFound(format!(
            "no container {target:?}: neither the delegate cache {} nor the pins under {} know it",
            node.cache.dir().display(),
            node.sbr.bpffs_dir.display()
        ))),
        [id] => Ok(node.record(id)),
        _ => Err(CtlError::NotFound(format!(
            "{target:?} is the prefix of several containers ({}); give more of the id",
            matches
                .iter()
                .map(|id| node.record(id).label())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Runs `show`.
pub fn run(
    node: &Node,
    args: &ShowArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let mut api = Api::connect(node);
    let records = resolve(node, &args.target, api.as_mut())?;
    let mut items = Vec::new();
    for rec in &records {
        let live = live_of(rec);
        let mut view = container_view(node, rec, true, live.as_ref(), None);
        if let (Some(api), Some(pod)) = (api.as_mut(), view.pod.as_ref()) {
            view.api = Some(api.pod(pod));
        }
        items.push(view);
    }
    let doc = Envelope::new("ContainerDetailList", Items { items });
    if !write_document(out, format, &doc, false)? {
        let items = doc.body.items;
        if format == Format::Name {
            write_names(out, items.iter().map(|c| c.container_id.as_str()))?;
            return Ok(EXIT_OK);
        }
        for (i, c) in items.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_one(out, c)?;
        }
    }
    Ok(EXIT_OK)
}

fn write_one(out: &mut dyn Write, c: &ContainerView) -> Result<(), CtlError> {
    writeln!(out, "Container:  {}", c.container_id)?;
    let pod = match &c.pod {
        Some(p) => format!(
            "{}{}",
            p.label(),
            p.uid
                .as_ref()
                .map(|u| format!(" (uid {u})"))
                .unwrap_or_default()
        ),
        None => "-".into(),
    };
    writeln!(out, "Pod:        {pod}")?;
    if let Some(a) = &c.api {
        let current = match a.current {
            Some(true) => ", this sandbox is current",
            Some(false) => ", this sandbox is stale (the pod was recreated)",
            None => "",
        };
        let detail = match a.status {
            "found" => format!(
                "{} on {}{current}",
                or_dash(a.phase.clone()),
                or_dash(a.node_name.clone())
            ),
            "notFound" => "not found".into(),
            _ => format!("error: {}", or_dash(a.error.clone())),
        };
        writeln!(out, "API:        {detail}")?;
    }
    writeln!(
        out,
        "Netns:      {} ({})",
        or_dash(c.netns.clone()),
        c.netns_state
    )?;
    if let Some(t) = c.created_at {
        writeln!(out, "Created:    {}", utc(t))?;
    }
    let cache = match (&c.cache_error, c.cached) {
        (Some(e), _) => format!("unreadable: {e}"),
        (None, true) => "yes".into(),
        (None, false) => "no (pins only)".into(),
    };
    writeln!(out, "Cached:     {cache}")?;

    writeln!(out, "\nDelegate chain:")?;
    let mut t = Table::new(&[
        "IFACE",
        "NETWORK",
        "MASTER",
        "CNI",
        "PLUGINS",
        "ADDRESSES",
        "GATEWAYS",
        "LIVE",
    ]);
    for i in &c.interfaces {
        let live = match &i.live {
            _ if i.auxiliary => "no interface (auxiliary chain)".into(),
            Some(Some(l)) => format!(
                "ifindex {} mtu {} {}",
                l.ifindex,
                l.mtu,
                if l.up { "up" } else { "down" }
            ),
            _ => "absent".into(),
        };
        t.row(vec![
            i.ifname.clone(),
            or_dash(i.network.clone()),
            if i.master { "yes".into() } else { "no".into() },
            or_dash(i.cni_version.clone()),
            or_dash(Some(i.plugins.join(" → "))),
            or_dash(Some(i.addresses.join(","))),
            or_dash(Some(i.gateways.join(","))),
            live,
        ]);
    }
    t.write(out, "  ")?;

    let results: Vec<_> = c
        .interfaces
        .iter()
        .filter_map(|i| i.result.as_ref().filter(|r| !r.is_null()).map(|r| (i, r)))
        .collect();
    if !results.is_empty() {
        writeln!(out, "\nCached results:")?;
        for (i, r) in results {
            writeln!(
                out,
                "  {}: {}",
                i.ifname,
                serde_json::to_string(r).unwrap_or_default()
            )?;
        }
    }

    let Some(s) = &c.sbr else {
        writeln!(out, "\nSource-based routing: none")?;
        return Ok(());
    };
    writeln!(
        out,
        "\nSource-based routing: {} (pins {})",
        s.state, s.pin_dir
    )?;
    if let Some(e) = &s.error {
        writeln!(out, "  error: {e}")?;
    }
    if let Some(entries) = &s.entries {
        writeln!(out, "  Source entries:")?;
        let mut t = Table::new(&["SOURCE", "IFACE", "IFINDEX", "GATEWAY", "ON-LINK", "MTU"]);
        for e in entries {
            t.row(vec![
                e.source.clone(),
                or_dash(e.ifname.clone()),
                e.ifindex.to_string(),
                or_dash(e.gateway.clone()),
                e.network.clone(),
                or_dash(e.mtu.map(|m| m.to_string())),
            ]);
        }
        t.write(out, "    ")?;
    }
    if let Some(d) = &s.defaults {
        writeln!(out, "  Main default routes (fallback of the carrier):")?;
        for (family, v) in [("IPv4", &d.ipv4), ("IPv6", &d.ipv6)] {
            let text = match v {
                Some(v) => format!(
                    "{} (ifindex {}){}",
                    or_dash(v.ifname.clone()),
                    v.ifindex,
                    v.gateway
                        .as_ref()
                        .map(|g| format!(" via {g}"))
                        .unwrap_or_else(|| " on-link".into())
                ),
                None => "none".into(),
            };
            writeln!(out, "    {family}  {text}")?;
        }
    }
    if let Some(programs) = &s.programs {
        writeln!(out, "  Programs:")?;
        let mut t = Table::new(&[
            "IFACE", "IFINDEX", "PROGRAM", "PROG ID", "LINK ID", "MODE", "STATE",
        ]);
        for p in programs {
            let state = match (&p.error, p.attached) {
                (Some(e), _) => format!("error: {e}"),
                (None, true) => "attached".into(),
                (None, false) => "detached".into(),
            };
            t.row(vec![
                p.ifname.clone(),
                p.ifindex.to_string(),
                p.program.to_string(),
                or_dash(p.program_id.map(|i| i.to_string())),
                or_dash(p.link_id.map(|i| i.to_string())),
                or_dash(p.attach_mode.clone()),
                state,
            ]);
        }
        t.write(out, "    ")?;
    }
    if let Some(records) = &s.records {
        writeln!(out, "  Interface records:")?;
        let mut t = Table::new(&["IFACE", "IFINDEX", "ROUTING", "RP_FILTER"]);
        for r in records {
            t.row(vec![
                r.ifname.clone(),
                r.ifindex.to_string(),
                if r.managed {
                    "by source".into()
                } else {
                    "not managed".into()
                },
                r.rp_filter_orig
                    .map(|o| format!("{o} → 2"))
                    .unwrap_or_else(|| "unchanged".into()),
            ]);
        }
        t.write(out, "    ")?;
    }
    if let Some(counters) = &s.counters {
        writeln!(out, "  Counters:")?;
        super::stats::counters_table(
            counters
                .iter()
                .map(|c| (c.ifname.clone(), c.ifindex, c.counters)),
            out,
            "    ",
        )?;
    }
    Ok(())
}
