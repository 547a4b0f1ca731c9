//! Which networks a container gets, on which interfaces, with what per-attachment configuration:
//! the cluster network (the `delegates`, `clusterNetwork`, or the pod's
//! `v1.multus-cni.io/default-network`), the `defaultNetworks` (not for system namespaces), and the
//! networks of the pod's `k8s.v1.cni.cncf.io/networks` annotation.

use std::{collections::HashSet, time::Instant};

use serde_json::{json, Map, Value};

use crate::{
    cni::{CniError, ErrorCode},
    config::{network::validate_requested_ifname, ConfigError, NetworkConfig},
    delegate::{cache::PodRef, Attachment},
    devices::inject,
    error::Error,
    kube::{
        annotations::{self, NetworkSelection},
        client::KubeClient,
        is_static_pod,
        resolve::{check_isolation, ResolvedNetwork, Resolver},
        PodIdentity,
    },
    sbrplugin::chain,
};

use super::{aux_chain, Call};

/// The attachments of one container and what is known of its pod.
#[derive(Debug, Default)]
pub struct Plan {
    /// Attachments in ADD order (the master first unless `masterplugin` says otherwise).
    pub attachments: Vec<Attachment>,
    /// The pod, when the runtime named one.
    pub pod: Option<PodRef>,
    /// Whether the pod was found through the API (network-status is written only then).
    pub pod_found: bool,
}

struct Entry {
    network: ResolvedNetwork,
    master: bool,
    ifname: Option<String>,
    selection: Option<NetworkSelection>,
    /// The auxiliary CNI chain (no interface of its own: never gets `ebpf-sbr`).
    auxiliary: bool,
}

impl Entry {
    fn plain(network: ResolvedNetwork) -> Entry {
        Entry {
            network,
            master: false,
            ifname: None,
            selection: None,
            auxiliary: false,
        }
    }
}

/// Plans the attachments (pod and NADs read through `kube` when given).
pub fn build(call: &Call<'_>, kube: Option<&KubeClient>, deadline: Instant) -> Result<Plan, Error> {
    let conf = call.conf;
    let identity = PodIdentity::from_args(&call.req.args);
    let mut plan = Plan {
        pod: identity.as_ref().map(|id| PodRef {
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            uid: id.uid.clone(),
        }),
        ..Default::default()
    };
    let pod = match (kube, &identity) {
        (Some(k), Some(id)) => {
            let pod = k.get_pod_for(&id.namespace, &id.name, &id.uid, deadline)?;
            match &pod {
                None => {
                    tracing::warn!(pod = %format!("{}/{}", id.namespace, id.name), "pod not found (static pod, or deleted): attaching the cluster network only")
                }
                Some(p) => check_uid(id, p)?,
            }
            pod
        }
        _ => None,
    };
    plan.pod_found = pod.is_some();
    if let (Some(p), Some(r)) = (&pod, plan.pod.as_mut()) {
        r.uid = p.metadata.uid.clone().unwrap_or_default();
    }
    let annotations = pod.as_ref().and_then(|p| p.metadata.annotations.as_ref());
    let resolver = Resolver::new(conf, kube, deadline);
    let mut entries = cluster_networks(
        call,
        &resolver,
        annotations.and_then(|a| a.get(annotations::DEFAULT_NETWORK)),
    )?;
    let system = identity
        .as_ref()
        .is_some_and(|id| conf.system_namespaces.contains(&id.namespace));
    if !system {
        for reference in &conf.default_networks {
            entries.push(Entry::plain(
                resolver.reference(reference).map_err(Error::from)?,
            ));
        }
    }
    if let (Some(value), Some(id)) = (
        annotations.and_then(|a| a.get(annotations::NETWORKS)),
        &identity,
    ) {
        for selection in annotations::parse_networks(value)? {
            let namespace = selection
                .namespace
                .clone()
                .unwrap_or_else(|| id.namespace.clone());
            check_isolation(conf, &id.namespace, &namespace, &selection.name)?;
            let network = resolver.nad(&namespace, &selection.name)?;
            entries.push(Entry {
                selection: Some(selection),
                ..Entry::plain(network)
            });
        }
    }
    entries.extend(auxiliary_entry(call)?);
    plan.attachments = attachments(call, entries)?;
    inject::assign(call.conf, &mut plan.attachments, plan.pod.as_ref())?;
    Ok(plan)
}

/// The auxiliary CNI chain as an entry, when configured and not empty.
fn auxiliary_entry(call: &Call<'_>) -> Result<Option<Entry>, Error> {
    let conf = call.conf;
    let Some(chain) = aux_chain::load(
        conf,
        conf.cni_version.as_deref().unwrap_or(call.version.as_str()),
    )?
    else {
        return Ok(None);
    };
    let status_name = chain.name().unwrap_or_default().to_string();
    let network = ResolvedNetwork {
        status_name,
        network: chain,
        resource_name: None,
    };
    Ok(Some(Entry {
        auxiliary: true,
        ..Entry::plain(network)
    }))
}

/// The attachments of the configuration alone (no API): what GC and STATUS fall back to.
pub fn from_config(call: &Call<'_>) -> Result<Vec<Attachment>, Error> {
    config_attachments(call, false)
}

/// [`from_config`] and the auxiliary chain: what a DEL with neither cache nor API undoes.
pub fn from_config_for_del(call: &Call<'_>) -> Result<Vec<Attachment>, Error> {
    config_attachments(call, true)
}

fn config_attachments(call: &Call<'_>, with_auxiliary: bool) -> Result<Vec<Attachment>, Error> {
    let resolver = Resolver::new(call.conf, None, Instant::now());
    let mut entries = cluster_networks(call, &resolver, None)?;
    if with_auxiliary {
        entries.extend(auxiliary_entry(call)?);
    }
    attachments(call, entries)
}

/// The attachments of `entries`, in order: interface names given and checked, defaults marked.
fn attachments(call: &Call<'_>, entries: Vec<Entry>) -> Result<Vec<Attachment>, Error> {
    let mut out: Vec<Attachment> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| attachment(call, i, e))
        .collect::<Result<_, _>>()?;
    unique_auxiliary_ifname(&mut out);
    mark_defaults(&mut out)?;
    if call.req.command.is_per_container() {
        check_ifnames(&out)?;
    }
    Ok(out)
}

fn check_uid(id: &PodIdentity, pod: &k8s_openapi::api::core::v1::Pod) -> Result<(), Error> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if id.uid.is_empty() || uid == id.uid || is_static_pod(pod) {
        return Ok(());
    }
    Err(Error::Cni(CniError::new(
        ErrorCode::KUBERNETES,
        format!(
            "pod {}/{} has UID {uid}, but the runtime asked for UID {}: the pod was deleted and recreated; this sandbox is stale",
            id.namespace, id.name, id.uid
        ),
    )))
}

/// The cluster network (and, with inline delegates, the other delegates).
fn cluster_networks(
    call: &Call<'_>,
    resolver: &Resolver<'_>,
    override_annotation: Option<&String>,
) -> Result<Vec<Entry>, Error> {
    let conf = call.conf;
    let cluster = conf.cluster_network.as_deref().filter(|c| !c.is_empty());
    let mut inline = Vec::new();
    if cluster.is_none() {
        let nets = conf.delegate_networks()?;
        let masters: Vec<usize> = nets
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_master())
            .map(|(i, _)| i)
            .collect();
        if masters.len() > 1 {
            return Err(ConfigError::Invalid(format!(
                "delegates {masters:?} all set \"masterplugin\"; only one may"
            ))
            .into());
        }
        let master = masters.first().copied().unwrap_or(0);
        for (i, net) in nets.into_iter().enumerate() {
            let status_name = net.name().map(String::from).unwrap_or_else(|| {
                net.plugin_types()
                    .first()
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            });
            let network = ResolvedNetwork {
                status_name,
                network: net,
                resource_name: None,
            };
            inline.push(Entry {
                master: i == master,
                ifname: (i != master).then(|| format!("net{i}")),
                ..Entry::plain(network)
            });
        }
    }
    if let Some(value) = override_annotation {
        let selection = annotations::parse_default_network(value)?;
        let namespace = selection
            .namespace
            .clone()
            .unwrap_or_else(|| conf.multus_namespace.clone());
        let network = resolver.nad(&namespace, &selection.name)?;
        let master = Entry {
            master: true,
            ..Entry::plain(network)
        };
        let mut out = vec![master];
        out.extend(inline.into_iter().filter(|e| !e.master));
        return Ok(out);
    }
    if let Some(reference) = cluster {
        let network = resolver.reference(reference)?;
        return Ok(vec![Entry {
            master: true,
            ..Entry::plain(network)
        }]);
    }
    Ok(inline)
}

/// The cluster network's interface name in a GC or STATUS, which name none (the plugins get none
/// either; it only tells the attachments apart).
const DEFAULT_IFNAME: &str = "eth0";

fn attachment(call: &Call<'_>, index: usize, e: Entry) -> Result<Attachment, Error> {
    e.network.network.cni_version(call.version)?;
    let ifname = if e.master {
        match call.req.ifname() {
            Ok(ifname) => ifname.to_string(),
            // GC and STATUS name no container and no interface, and pass none to the plugins:
            // the configured networks are still theirs to forward to.
            Err(_) if !call.req.command.is_per_container() => DEFAULT_IFNAME.to_string(),
            Err(e) => return Err(e.into()),
        }
    } else {
        e.selection
            .as_ref()
            .and_then(|s| s.interface.clone())
            .or(e.ifname)
            .unwrap_or_else(|| format!("net{index}"))
    };
    let mut args = call.req.args.clone();
    let network = if e.auxiliary {
        e.network.network
    } else {
        with_ebpf_sbr(call, e.network.network, e.master)
    };
    let mut a = Attachment::new(e.network.status_name, ifname, network, String::new());
    a.master = e.master;
    a.auxiliary = e.auxiliary;
    a.resource_name = e.network.resource_name;
    if e.master {
        // NPWG 7.5: the runtime's own runtimeConfig belongs to the cluster network only.
        a.runtime_config = call.conf.runtime_config.clone();
    }
    if let Some(sel) = e.selection {
        let rc = &mut a.runtime_config;
        if !sel.ips.is_empty() {
            let ips: Vec<String> = sel.ips.iter().map(ToString::to_string).collect();
            // As the reference does: the requested addresses in CIDR form (static IPAM reads them).
            args.set("IP", &ips.join(","));
            rc.insert("ips".into(), json!(ips));
        }
        if let Some(mac) = &sel.mac {
            args.set("MAC", mac);
            rc.insert("mac".into(), json!(mac));
        }
        if let Some(guid) = &sel.infiniband_guid {
            rc.insert("infinibandGUID".into(), json!(guid));
        }
        if let Some(pm) = sel.port_mappings {
            rc.insert("portMappings".into(), pm);
        }
        if let Some(bw) = sel.bandwidth {
            rc.insert("bandwidth".into(), bw);
        }
        if let Some(dev) = &sel.device_id {
            rc.insert("deviceID".into(), json!(dev));
            a.device_id = Some(dev.clone());
        }
        if let Some(claim) = &sel.ipam_claim_reference {
            rc.insert("ipam-claim-reference".into(), json!(claim));
        }
        if let Some(cni) = sel.cni_args {
            let mut m = Map::new();
            m.insert("cni".into(), Value::Object(cni));
            a.args = Some(Value::Object(m));
        }
        if args.get("IP").is_some() || args.get("MAC").is_some() {
            args.set("IgnoreUnknown", "1");
        }
        a.default_route = sel.default_route;
    }
    a.cni_args = args.to_string();
    Ok(a)
}

/// The `ebpfSbr` options applied to a delegate's network ([`chain::with_ebpf_sbr`]).
fn with_ebpf_sbr(call: &Call<'_>, network: NetworkConfig, master: bool) -> NetworkConfig {
    match &call.conf.ebpf_sbr {
        Some(opts) => chain::with_ebpf_sbr(network, opts, master, call.version),
        None => network,
    }
}

/// `default-route` requests: at most one attachment per address family; the attachments that
/// carry a default route are marked default (the master when nobody asks).
fn mark_defaults(attachments: &mut [Attachment]) -> Result<(), Error> {
    for v4 in [true, false] {
        let askers: Vec<&str> = attachments
            .iter()
            .filter(|a| a.default_route.iter().any(|g| g.is_ipv4() == v4))
            .map(|a| a.name.as_str())
            .collect();
        if askers.len() > 1 {
            return Err(ConfigError::Invalid(format!(
                "default-route for {} is requested by more than one network ({}); a pod has one default route per address family",
                if v4 { "IPv4" } else { "IPv6" },
                askers.join(", ")
            ))
            .into());
        }
    }
    let any = attachments.iter().any(|a| !a.default_route.is_empty());
    for a in attachments.iter_mut() {
        a.is_default = if any {
            !a.default_route.is_empty()
        } else {
            a.master
        };
    }
    Ok(())
}

/// The auxiliary chain gets `net<its index>` as the reference gives it, or the next free
/// `net<k>` when a network of the pod asked for that name.
fn unique_auxiliary_ifname(attachments: &mut [Attachment]) {
    let taken: HashSet<String> = attachments
        .iter()
        .filter(|a| !a.auxiliary)
        .map(|a| a.ifname.clone())
        .collect();
    for (i, a) in attachments
        .iter_mut()
        .enumerate()
        .filter(|(_, a)| a.auxiliary)
    {
        if taken.contains(&a.ifname) {
            if let Some(free) = (i..)
                .map(|k| format!("net{k}"))
                .find(|n| !taken.contains(n))
            {
                a.ifname = free;
            }
        }
    }
}

/// Interface names must be valid and unique within the container.
pub fn check_ifnames(attachments: &[Attachment]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for a in attachments {
        validate_requested_ifname(
            &a.ifname,
            &format!("network {}", crate::explain::quote(&a.name)),
        )?;
        if !seen.insert(a.ifname.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "interface {} is requested by more than one network",
                crate::explain::quote(&a.ifname)
            ))
            .into());
        }
    }
    Ok(())
}

/// A network configuration's name for logs.
pub fn network_label(n: &NetworkConfig) -> String {
    n.name().unwrap_or("unnamed").to_string()
}
