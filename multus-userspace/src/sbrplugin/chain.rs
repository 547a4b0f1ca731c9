//! What multus and multusctl know of `ebpf-sbr`, in one place: recognising it in a network's chain
//! ([`chained_plugin`]), putting it there for the `ebpfSbr` options ([`with_ebpf_sbr`]), the
//! settings it runs with there ([`chained_settings`]), the interfaces of a pod it routes by source
//! ([`sbr_interfaces`]), covering the interfaces that networks after it add
//! ([`cover_after_delegates`]), and the addresses a CNI result gives an interface
//! ([`interface_addresses`]: the one rule the plugin's prevResult and multusctl's cached results
//! share).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::{
    cni::{result::CniResult, CniVersion},
    config::{netconf::EbpfSbrOptions, ConfigError, NetworkConfig},
    delegate::Attachment,
    error::Error,
    sbr::{self, IfAddr, InterfaceSpec, PodInfo, SbrConfig},
};

use super::config::SbrNetConf;

/// The type of the eBPF source-based routing plugin.
pub const EBPF_SBR: &str = "ebpf-sbr";

/// The `ebpf-sbr` plugin of a network's chain, if it has one.
pub fn chained_plugin(network: &NetworkConfig) -> Option<&Map<String, Value>> {
    network
        .plugins()
        .into_iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some(EBPF_SBR))
}

/// The `ebpfSbr` options applied to a delegate's network: `sbr` plugins run as `ebpf-sbr`
/// (`replaceSbr`), `ebpf-sbr` is chained after a secondary attachment that has none
/// (`allSecondary`, CNI 0.3.0 and later; `default_version` when the network names none), and every
/// `ebpf-sbr` plugin without a `bpffsDir` gets the options' one.
pub fn with_ebpf_sbr(
    mut network: NetworkConfig,
    opts: &EbpfSbrOptions,
    master: bool,
    default_version: CniVersion,
) -> NetworkConfig {
    if opts.replace_sbr {
        network.replace_plugin_type("sbr", EBPF_SBR);
    }
    let has = network.plugin_types().contains(&EBPF_SBR);
    if opts.all_secondary && !master && !has {
        let chainable = network
            .cni_version(default_version)
            .map(|v| v >= CniVersion::V0_3_0)
            .unwrap_or(false);
        if chainable {
            let mut plugin = opts.config.clone();
            plugin.insert("type".into(), json!(EBPF_SBR));
            network.append_plugin(plugin);
        } else {
            tracing::warn!(network = %network.name().unwrap_or("unnamed"), "ebpfSbr.allSecondary: CNI versions before 0.3.0 cannot chain plugins; not added");
        }
    }
    if let Some(dir) = &opts.bpffs_dir {
        if let Some(plugins) = network
            .raw_mut()
            .get_mut("plugins")
            .and_then(Value::as_array_mut)
        {
            for p in plugins.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("type").and_then(Value::as_str) == Some(EBPF_SBR)
                    && !p.contains_key("bpffsDir")
                {
                    p.insert("bpffsDir".into(), json!(dir));
                }
            }
        }
    }
    network
}

/// The SBR settings of a chained `ebpf-sbr` plugin as the plugin itself reads them, with
/// `default_dir` for the bpffs directory when the plugin names none.
pub fn chained_settings(
    plugin: &Map<String, Value>,
    default_dir: &Path,
) -> Result<SbrConfig, ConfigError> {
    let mut conf = plugin.clone();
    conf.entry("bpffsDir")
        .or_insert_with(|| Value::from(default_dir.display().to_string()));
    let bytes = serde_json::to_vec(&conf).unwrap_or_default();
    SbrNetConf::parse(&bytes).map(|parsed| parsed.sbr)
}

/// The interfaces of a pod routed by source: those of the attachments whose chain has
/// `ebpf-sbr` (in the cache's order), then those the pins manage that no such chain names (with
/// their attachment, if any).
pub fn sbr_interfaces<'a>(
    attachments: &'a [Attachment],
    pins: Option<&PodInfo>,
) -> Vec<(String, Option<&'a Attachment>)> {
    let mut out: Vec<(String, Option<&Attachment>)> = attachments
        .iter()
        .filter(|a| chained_plugin(&a.network).is_some())
        .map(|a| (a.ifname.clone(), Some(a)))
        .collect();
    for r in pins
        .iter()
        .flat_map(|p| p.interfaces.iter())
        .filter(|r| r.managed)
    {
        if !out.iter().any(|(n, _)| *n == r.ifname) {
            let a = attachments.iter().find(|a| a.ifname == r.ifname);
            out.push((r.ifname.clone(), a));
        }
    }
    out
}

/// Brings the SBR state that a pod's `ebpf-sbr` chains made up to date with the pod as all its
/// delegates left it ([`sbr::cover`]): an interface that a later network added gets the egress
/// program, and a default route that `default-route` changed is followed. Nothing is done for a
/// chain after which no network with an interface came, unless `default_routes_changed`; each
/// bpffs directory is covered once. A plugin that names no directory uses the plugin's default.
pub fn cover_after_delegates(
    attachments: &[Attachment],
    container_id: &crate::cni::ContainerId,
    netns: &Path,
    default_routes_changed: bool,
) -> Result<(), Error> {
    let default_dir = Path::new(sbr::DEFAULT_BPFFS_DIR);
    let mut covered: Vec<PathBuf> = Vec::new();
    for (i, a) in attachments.iter().enumerate() {
        let Some(plugin) = chained_plugin(&a.network) else {
            continue;
        };
        let later_interfaces = attachments[i + 1..].iter().any(|b| !b.auxiliary);
        if !later_interfaces && !default_routes_changed {
            continue;
        }
        let cfg = chained_settings(plugin, default_dir)?;
        if covered.contains(&cfg.bpffs_dir) {
            continue;
        }
        let attached = sbr::cover(&cfg, container_id, netns)?;
        tracing::debug!(network = %a.name, ?attached, "sbr: the pod's interfaces covered after the last delegate");
        covered.push(cfg.bpffs_dir);
    }
    Ok(())
}

/// Why a result gives an interface no address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoAddresses {
    /// The result lists interfaces, and not this one (their names).
    NotListed(Vec<String>),
    /// No IP of the result belongs to the interface (its index in `interfaces`, when listed).
    NoIp(Option<usize>),
}

/// The addresses (prefix length and gateway included) a CNI result gives `ifname`, in the
/// result's order. When the result lists interfaces, the IPs whose `interface` index names
/// `ifname` (its entry with a sandbox first, as [`CniResult::interface_index`] picks it); an IP
/// without an index belongs to none. When it lists none (a CNI 0.1/0.2 result, or a plugin that
/// reports no interface), every IP is `ifname`'s: such a result describes the one interface the
/// call was for (and `sbr::add` still refuses an address that is not on the interface).
pub fn interface_addresses(result: &CniResult, ifname: &str) -> Result<Vec<IfAddr>, NoAddresses> {
    let index = if result.interfaces.is_empty() {
        None
    } else {
        Some(result.interface_index(ifname).ok_or_else(|| {
            NoAddresses::NotListed(result.interfaces.iter().map(|i| i.name.clone()).collect())
        })?)
    };
    let addresses: Vec<IfAddr> = result
        .ips
        .iter()
        .filter(|ip| index.is_none() || ip.interface == index)
        .map(|ip| IfAddr {
            address: ip.address.addr,
            prefix_len: ip.address.prefix_len,
            gateway: ip.gateway,
        })
        .collect();
    if addresses.is_empty() {
        return Err(NoAddresses::NoIp(index));
    }
    Ok(addresses)
}

/// The interface spec `ebpf-sbr` would use for `ifname` from a cached result: its addresses, or
/// none (the interface's own then) when there is no result, it does not parse, or it gives the
/// interface no address.
pub fn cached_interface_spec(result: Option<&Value>, ifname: &str) -> InterfaceSpec {
    InterfaceSpec {
        ifname: ifname.to_string(),
        addresses: cached_addresses(result, ifname),
    }
}

/// The addresses a cached result gives `ifname` ([`interface_addresses`]); empty when there is no
/// result, it does not parse, or it gives the interface none.
pub fn cached_addresses(result: Option<&Value>, ifname: &str) -> Vec<IfAddr> {
    result
        .and_then(|r| CniResult::parse(r).ok())
        .and_then(|parsed| interface_addresses(&parsed, ifname).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model(v: Value) -> CniResult {
        CniResult::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    fn addrs(r: &CniResult, ifname: &str) -> Result<Vec<String>, NoAddresses> {
        interface_addresses(r, ifname).map(|a| {
            a.iter()
                .map(|a| match a.gateway {
                    Some(gw) => format!("{}/{} via {gw}", a.address, a.prefix_len),
                    None => format!("{}/{}", a.address, a.prefix_len),
                })
                .collect()
        })
    }

    #[test]
    fn listed_interface_gets_the_ips_whose_index_names_it() {
        let r = model(json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "br1"}, {"name": "veth1"}, {"name": "net1", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 2},
                    {"address": "fd01::2/64", "interface": 2},
                    {"address": "10.9.0.2/24", "interface": 0},
                    {"address": "10.8.0.2/24"}]}));
        assert_eq!(
            addrs(&r, "net1"),
            Ok(vec!["10.1.0.2/24 via 10.1.0.1".into(), "fd01::2/64".into()])
        );
        assert_eq!(addrs(&r, "br1"), Ok(vec!["10.9.0.2/24".into()]));
    }

    #[test]
    fn the_sandbox_entry_of_a_name_wins() {
        let r = model(json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "net1"}, {"name": "net1", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "10.9.0.2/24", "interface": 0},
                    {"address": "10.1.0.2/24", "interface": 1}]}));
        assert_eq!(addrs(&r, "net1"), Ok(vec!["10.1.0.2/24".into()]));
    }

    #[test]
    fn an_unlisted_interface_or_one_without_ips_has_none() {
        let r = model(json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/x"}, {"name": "net2", "sandbox": "/x"}],
            "ips": [{"address": "10.1.0.2/24", "interface": 0}]}));
        assert_eq!(
            addrs(&r, "net3"),
            Err(NoAddresses::NotListed(vec!["net1".into(), "net2".into()]))
        );
        assert_eq!(addrs(&r, "net2"), Err(NoAddresses::NoIp(Some(1))));
    }

    /// multusctl's rule before, now the plugin's too: a result that lists no interface describes
    /// the one interface of the call.
    #[test]
    fn a_result_without_interfaces_gives_every_ip_to_the_interface() {
        let r = model(json!({"cniVersion": "0.3.1",
            "ips": [{"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                    {"version": "6", "address": "fd01::2/64"}]}));
        assert_eq!(
            addrs(&r, "net1"),
            Ok(vec!["10.1.0.2/24 via 10.1.0.1".into(), "fd01::2/64".into()])
        );
        let old = model(json!({"cniVersion": "0.2.0",
            "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1"}}));
        assert_eq!(
            addrs(&old, "eth0"),
            Ok(vec!["10.1.0.2/24 via 10.1.0.1".into()])
        );
        let empty = model(json!({"cniVersion": "1.0.0"}));
        assert_eq!(addrs(&empty, "net1"), Err(NoAddresses::NoIp(None)));
    }

    #[test]
    fn cached_results_give_the_same_addresses_or_none() {
        let v = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/x"}],
            "ips": [{"address": "10.1.0.2/24", "interface": 0}]});
        assert_eq!(cached_addresses(Some(&v), "net1").len(), 1);
        assert!(cached_addresses(Some(&v), "net2").is_empty());
        assert!(cached_addresses(Some(&json!({"ips": "x"})), "net1").is_empty());
        assert!(cached_addresses(None, "net1").is_empty());
        assert_eq!(cached_interface_spec(None, "net1").ifname, "net1");
    }
}
