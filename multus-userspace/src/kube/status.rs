//! The `k8s.v1.cni.cncf.io/network-status` annotation: one entry per sandbox interface, shaped
//! like the NPWG client library's `CreateNetworkStatuses` (name, interface, ips, mac, mtu,
//! default, dns, gateway, device-info).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::cni::result::{CniResult, Dns};

/// One entry of network-status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkStatus {
    /// `namespace/name` of the NAD, or the network name.
    pub name: String,
    /// Interface inside the pod.
    pub interface: String,
    /// Addresses (without prefix length).
    pub ips: Vec<String>,
    /// Hardware address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Whether this interface carries the pod's default route.
    pub default: bool,
    /// DNS from the result.
    #[serde(skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// Gateways of the result's default routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
    /// Device information (SR-IOV, vhost-user, ...).
    #[serde(rename = "device-info", skip_serializing_if = "Option::is_none")]
    pub device_info: Option<Value>,
}

/// What the pod's netlink says about an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkFacts {
    /// MAC address.
    pub mac: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
}

/// The entries of one attachment. `ifname` is the interface multus asked for (used when the result
/// names no sandbox interface); `links` fills MAC and MTU the result does not give.
pub fn entries(
    name: &str,
    ifname: &str,
    result: &CniResult,
    default: bool,
    links: &HashMap<String, LinkFacts>,
    device_info: Option<&Value>,
) -> Vec<NetworkStatus> {
    // A default route without `gw` goes through the IPAM gateway of its family (that is how the
    // plugins install it), so that gateway is reported.
    let mut gateway: Vec<String> = Vec::new();
    for route in result.routes.iter().filter(|r| r.dst.prefix_len == 0) {
        let gw = route.gw.or_else(|| {
            result
                .ips
                .iter()
                .find(|ip| ip.address.is_ipv4() == route.dst.is_ipv4())
                .and_then(|ip| ip.gateway)
        });
        if let Some(g) = gw.map(|g| g.to_string()) {
            if !gateway.contains(&g) {
                gateway.push(g);
            }
        }
    }
    let make = |iface: &str, mac: Option<String>, mtu: Option<u32>| {
        let facts = links.get(iface).cloned().unwrap_or_default();
        NetworkStatus {
            name: name.to_string(),
            interface: iface.to_string(),
            ips: Vec::new(),
            mac: mac.filter(|m| !m.is_empty()).or(facts.mac),
            mtu: mtu.or(facts.mtu),
            default: false,
            dns: result.dns.clone(),
            gateway: gateway.clone(),
            device_info: device_info.cloned(),
        }
    };
    let mut out = Vec::new();
    let mut index_map = HashMap::new();
    for (i, iface) in result.interfaces.iter().enumerate() {
        if iface.sandbox.as_deref().is_some_and(|s| !s.is_empty()) {
            index_map.insert(i, out.len());
            out.push(make(&iface.name, iface.mac.clone(), iface.mtu));
        }
    }
    if out.is_empty() {
        // A result without sandbox interfaces (0.2.0, or a plugin that lists none): one entry for
        // the interface multus asked for, with every address.
        let mut entry = make(ifname, None, None);
        entry.ips = result
            .ips
            .iter()
            .map(|ip| ip.address.addr.to_string())
            .collect();
        out.push(entry);
    } else {
        for ip in &result.ips {
            let target = ip
                .interface
                .and_then(|i| index_map.get(&i))
                .copied()
                .or_else(|| (out.len() == 1).then_some(0));
            if let Some(t) = target {
                out[t].ips.push(ip.address.addr.to_string());
            }
        }
    }
    if default {
        if let Some(first) = out.first_mut() {
            first.default = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_entry_per_sandbox_interface() {
        let r = CniResult::parse(&json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "br0", "mac": "aa:aa:aa:aa:aa:aa"}, {"name": "net1", "mac": "02:00:00:00:00:01", "sandbox": "/x"}],
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}], "dns": {"nameservers": ["1.1.1.1"]}}))
        .unwrap();
        let mut links = HashMap::new();
        links.insert(
            "net1".to_string(),
            LinkFacts {
                mac: None,
                mtu: Some(1400),
            },
        );
        let e = entries("ns/macvlan", "net1", &r, true, &links, None);
        assert_eq!(e.len(), 1);
        let j = serde_json::to_value(&e[0]).unwrap();
        assert_eq!(
            j,
            json!({"name": "ns/macvlan", "interface": "net1", "ips": ["10.1.0.2"], "mac": "02:00:00:00:00:01",
            "mtu": 1400, "default": true, "dns": {"nameservers": ["1.1.1.1"]}, "gateway": ["10.1.0.1"]})
        );
    }

    #[test]
    fn default_route_without_gw_reports_the_ipam_gateway() {
        let r = CniResult::parse(&json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/x"}],
            "ips": [{"address": "192.168.1.200/24", "gateway": "192.168.1.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}]}))
        .unwrap();
        assert_eq!(
            entries("n", "net1", &r, false, &HashMap::new(), None)[0].gateway,
            vec!["192.168.1.1"]
        );
    }

    #[test]
    fn legacy_results_get_the_requested_interface() {
        let r = CniResult::parse(&json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.2.0.5/16"}}))
            .unwrap();
        let e = entries(
            "a",
            "net2",
            &r,
            false,
            &HashMap::new(),
            Some(&json!({"type": "pci"})),
        );
        assert_eq!(e[0].interface, "net2");
        assert_eq!(e[0].ips, vec!["10.2.0.5"]);
        assert_eq!(e[0].device_info, Some(json!({"type": "pci"})));
    }
}
