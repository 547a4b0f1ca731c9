//! `multusctl list`: every container with attachments on the node.

use std::io::Write;

use clap::Args;

use super::{
    kube::Api,
    model::{container_view, ContainerView, Envelope, Items},
    table::{is_wide, or_dash, short_id, Table},
    write_document, write_names, CtlError, Format, Node, EXIT_OK,
};

/// Options of `list` (`-n NAMESPACE` is a global option).
#[derive(Debug, Clone, Args)]
pub struct ListArgs {}

/// Runs `list`.
pub fn run(
    node: &Node,
    _args: &ListArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let mut api = Api::connect(node);
    let mut items = Vec::new();
    for rec in node.records()? {
        let mut view = container_view(node, &rec, false, None, None);
        if let (Some(api), Some(pod)) = (api.as_mut(), view.pod.as_ref()) {
            view.api = Some(api.pod(pod));
        }
        items.push(view);
    }
    let doc = Envelope::new("ContainerList", Items { items });
    if !write_document(out, format, &doc, false)? {
        let items = doc.body.items;
        match format {
            Format::Name => write_names(out, items.iter().map(|c| c.container_id.as_str()))?,
            _ => write_table(out, &items, api.is_some(), node.namespace.as_deref())?,
        }
    }
    Ok(EXIT_OK)
}

fn write_table(
    out: &mut dyn Write,
    items: &[ContainerView],
    with_api: bool,
    namespace: Option<&str>,
) -> Result<(), CtlError> {
    let mut headers = vec![
        "CONTAINER",
        "POD",
        "NETNS",
        "SBR",
        "IFACE",
        "NETWORK",
        "ADDRESSES",
        "ROUTING",
    ];
    if with_api {
        headers.insert(2, "API");
    }
    let wide = is_wide();
    if wide {
        headers.extend(["GATEWAYS", "PLUGINS"]);
    }
    let mut t = Table::new(&headers);
    for c in items {
        let pod = or_dash(c.pod.as_ref().map(|p| p.label()));
        let netns = match (&c.netns, c.netns_state) {
            (Some(p), "present") => p.clone(),
            (Some(p), state) => format!("{p} ({state})"),
            (None, _) => "-".into(),
        };
        let api = c.api.as_ref().map(|a| match (a.status, a.current) {
            ("found", Some(false)) => {
                format!("{} (stale sandbox)", a.phase.as_deref().unwrap_or("found"))
            }
            ("found", _) => a.phase.clone().unwrap_or_else(|| "found".into()),
            (s, _) => s.to_string(),
        });
        let sbr = c.sbr.as_ref().map(|s| match s.links_total {
            0 => s.state.to_string(),
            n => format!("{} {}/{n} links", s.state, s.links_attached),
        });
        let mut first = vec![short_id(&c.container_id), pod];
        if with_api {
            first.push(or_dash(api));
        }
        first.extend([netns, or_dash(sbr)]);
        let blank = first.len();
        if c.interfaces.is_empty() {
            first.extend(["-".into(), "-".into(), "-".into(), "-".into()]);
            t.row(first);
            continue;
        }
        for (i, iface) in c.interfaces.iter().enumerate() {
            let mut row = if i == 0 {
                first.clone()
            } else {
                vec![String::new(); blank]
            };
            let routing = match iface.sbr {
                Some(_) => "by source".to_string(),
                None => "main table".to_string(),
            };
            row.extend([
                iface.ifname.clone(),
                or_dash(iface.network.clone()),
                or_dash(Some(iface.addresses.join(","))),
                routing,
            ]);
            if wide {
                row.extend([
                    or_dash(Some(iface.gateways.join(","))),
                    or_dash(Some(iface.plugins.join(","))),
                ]);
            }
            t.row(row);
        }
    }
    if t.is_empty() {
        match namespace {
            Some(ns) => writeln!(out, "no attachments of pods in namespace {ns} on this node")?,
            None => writeln!(out, "no attachments on this node")?,
        }
        return Ok(());
    }
    t.write(out, "")?;
    Ok(())
}
