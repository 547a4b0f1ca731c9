//! The reference Multus's state for one container, read so that a node switched from it loses
//! nothing (docs/install.md, "Migrating a node from the reference Multus, and back"):
//!
//! - its delegate cache `<cniDir>/<containerID>`: Go's JSON of `[]*types.DelegateNetConf`
//!   (`saveDelegates`), each delegate's network configuration in `Bytes` (base64), plus its
//!   `ifnameRequest`, `macRequest`, `ipRequest`, `infinibandGUIDRequest`, `deviceID`,
//!   `resourceName` and `default-route`;
//! - libcni's result cache `<cniDir>/results/<network>-<containerID>-<ifname>` (kind
//!   `cniCacheV1`), written by the reference's libcni after each delegate's ADD: the result (the
//!   DEL's prevResult), the namespace, the CNI_ARGS and the capability args of that ADD.
//!
//! [`to_entry`] turns them into a [`CacheEntry`] whose attachments repeat the reference's DEL: the
//! same configurations, interface names (`getIfname`: `ifnameRequest`, else `CNI_IFNAME` for the
//! first delegate, else `net<index>`), CNI_ARGS (`CreateCNIRuntimeConf`), runtime config
//! (`mergeCNIRuntimeConfig`: the multus configuration's, plus the requests of every delegate but
//! the first) and prevResult. With the runtime's request at hand (DEL, CHECK) the request decides
//! what the reference took from it; without one (GC of a stale container, multusctl) the libcni
//! records do. Pure: `cache` reads the files.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    cache::{CacheEntry, Origin, PodRef, CACHE_FORMAT},
    Attachment,
};
use crate::{
    cni::CniVersion,
    cni::ContainerId,
    config::{network::validate_requested_ifname, NetworkConfig},
};

/// The kind libcni writes in each result-cache file.
pub const LIBCNI_CACHE_KIND: &str = "cniCacheV1";

/// The directory of libcni's result cache under `cniDir`.
pub const LIBCNI_RESULTS_DIR: &str = "results";

/// The runtime config keys the reference's typed `RuntimeConfig` keeps.
const REFERENCE_RUNTIME_KEYS: [&str; 7] = [
    "portMappings",
    "bandwidth",
    "ips",
    "mac",
    "infinibandGUID",
    "deviceID",
    "CNIDeviceInfoFile",
];

/// One delegate as the reference serialises it (the fields its DEL uses; `Conf`, `ConfList`,
/// `IsFilterV4Gateway`, Multus 4.2's `CNINetworkConfigList`, ... are ignored: `Bytes` is what its
/// DEL runs).
#[derive(Clone, Debug, Deserialize)]
pub struct ReferenceDelegate {
    /// `Name`: the conf's name, or `namespace/name` of the NAD.
    #[serde(rename = "Name", default)]
    pub name: Option<String>,
    /// The interface the pod's annotation asked for.
    #[serde(rename = "ifnameRequest", default)]
    pub ifname_request: Option<String>,
    /// The MAC the annotation asked for.
    #[serde(rename = "macRequest", default)]
    pub mac_request: Option<String>,
    /// The InfiniBand GUID the annotation asked for.
    #[serde(rename = "infinibandGUIDRequest", default)]
    pub infiniband_guid_request: Option<String>,
    /// The addresses the annotation asked for.
    #[serde(rename = "ipRequest", default)]
    pub ip_request: Option<Vec<String>>,
    /// The annotation's `default-route` gateways.
    #[serde(rename = "default-route", default)]
    pub default_route: Option<Vec<String>>,
    /// The device given to the delegate.
    #[serde(rename = "deviceID", default)]
    pub device_id: Option<String>,
    /// The NAD's device-plugin resource.
    #[serde(rename = "resourceName", default)]
    pub resource_name: Option<String>,
    /// The network configuration its DEL runs, base64 (Go's `[]byte`).
    #[serde(rename = "Bytes")]
    pub bytes: String,
}

/// One file of libcni's result cache (`cachedInfo`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct LibcniRecord {
    /// `cniCacheV1`.
    #[serde(default)]
    pub kind: String,
    /// The container.
    #[serde(rename = "containerId", default)]
    pub container_id: String,
    /// The interface of the ADD.
    #[serde(rename = "ifName", default)]
    pub ifname: String,
    /// The network's name (the conf's or the conflist's `name`).
    #[serde(rename = "networkName", default)]
    pub network_name: String,
    /// The namespace of the ADD.
    #[serde(default)]
    pub netns: Option<String>,
    /// The CNI_ARGS of the ADD, as pairs.
    #[serde(rename = "cniArgs", default)]
    pub cni_args: Option<Vec<(String, String)>>,
    /// The capability args (runtime config) of the ADD.
    #[serde(rename = "capabilityArgs", default)]
    pub capability_args: Option<Map<String, Value>>,
    /// The result of the ADD.
    #[serde(default)]
    pub result: Option<Value>,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl LibcniRecord {
    /// Parses one result-cache file; `None` unless it is a `cniCacheV1` record of `container_id`.
    pub fn parse(bytes: &[u8], path: &Path, container_id: &str) -> Option<LibcniRecord> {
        let mut rec: LibcniRecord = serde_json::from_slice(bytes).ok()?;
        if rec.kind != LIBCNI_CACHE_KIND || rec.container_id != container_id {
            return None;
        }
        rec.path = path.to_path_buf();
        Some(rec)
    }

    fn joined_args(&self) -> Option<String> {
        self.cni_args.as_ref().map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        })
    }
}

/// What the runtime's request gives the conversion (DEL and CHECK have one; GC and multusctl
/// do not).
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// `CNI_IFNAME`: the first delegate's interface.
    pub ifname: &'a str,
    /// `CNI_ARGS`.
    pub cni_args: &'a str,
    /// `CNI_NETNS`.
    pub netns: Option<&'a Path>,
    /// The multus configuration's `runtimeConfig`.
    pub runtime_config: &'a Map<String, Value>,
    /// The multus configuration's `cniVersion`.
    pub cni_version: &'a str,
}

/// Whether `bytes` look like the reference's file (a JSON array of objects with `Bytes`), and its
/// delegates when they do. An empty array is not one (the reference's DEL cannot use it either).
pub fn parse(bytes: &[u8]) -> Result<Vec<ReferenceDelegate>, String> {
    let delegates: Vec<ReferenceDelegate> =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if delegates.is_empty() {
        return Err("an empty delegate list".into());
    }
    Ok(delegates)
}

/// Converts the reference's delegates of `container_id` (with the libcni `records` of that
/// container) into a cache entry; an error says why the file cannot be used.
pub fn to_entry(
    container_id: &ContainerId,
    delegates: &[ReferenceDelegate],
    records: &[LibcniRecord],
    request: Option<&RequestView<'_>>,
    created_at: u64,
) -> Result<CacheEntry, String> {
    let networks = delegates
        .iter()
        .enumerate()
        .map(|(i, d)| decode_network(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    let fixed: Vec<Option<String>> = delegates
        .iter()
        .enumerate()
        .map(|(i, d)| fixed_ifname(i, d))
        .collect();
    let master_ifname = fixed[0].clone().unwrap_or_else(|| {
        request.map(|r| r.ifname.to_string()).unwrap_or_else(|| {
            let name = networks[0].name().unwrap_or_default();
            records
                .iter()
                .filter(|r| r.network_name == name)
                .map(|r| r.ifname.clone())
                .find(|ifname| !fixed.iter().flatten().any(|f| f == ifname))
                .unwrap_or_else(|| "eth0".to_string())
        })
    });
    let mut attachments = Vec::with_capacity(delegates.len());
    for (i, (d, network)) in delegates.iter().zip(networks).enumerate() {
        let master = i == 0;
        let ifname = if master {
            master_ifname.clone()
        } else {
            fixed[i].clone().unwrap_or_else(|| format!("net{i}"))
        };
        validate_requested_ifname(&ifname, &format!("delegate {i}")).map_err(|e| e.to_string())?;
        let record = records
            .iter()
            .find(|r| Some(r.network_name.as_str()) == network.name() && r.ifname == ifname);
        let name = d
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| network.name().map(String::from))
            .unwrap_or_else(|| {
                network
                    .plugin_types()
                    .first()
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            });
        let cni_args = match (request, record) {
            (Some(r), _) => reference_cni_args(r.cni_args),
            (None, Some(rec)) => rec.joined_args().unwrap_or_default(),
            (None, None) => String::new(),
        };
        let auxiliary = network.is_list() && network.plugin_types().first() == Some(&"passthru");
        let mut a = Attachment::new(name, ifname, network, cni_args);
        a.master = master;
        a.auxiliary = auxiliary;
        a.runtime_config = match (request, record) {
            (Some(r), _) => runtime_config(r.runtime_config, d, master),
            (None, Some(rec)) => rec.capability_args.clone().unwrap_or_default(),
            (None, None) => runtime_config(&Map::new(), d, master),
        };
        a.result = record.and_then(|r| r.result.clone());
        a.default_route = d
            .default_route
            .iter()
            .flatten()
            .filter_map(|g| g.parse::<IpAddr>().ok())
            .collect();
        a.resource_name = d.resource_name.clone().filter(|r| !r.is_empty());
        if !master {
            a.device_id = d.device_id.clone().filter(|r| !r.is_empty());
        }
        attachments.push(a);
    }
    let any_default = attachments.iter().any(|a| !a.default_route.is_empty());
    for a in attachments.iter_mut() {
        a.is_default = if any_default {
            !a.default_route.is_empty()
        } else {
            a.master
        };
    }
    let master_record = records
        .iter()
        .find(|r| Some(r.network_name.as_str()) == attachments[0].network.name());
    let cni_args = match request {
        Some(r) => r.cni_args.to_string(),
        None => master_record
            .and_then(LibcniRecord::joined_args)
            .unwrap_or_default(),
    };
    let netns = match request {
        Some(r) => r.netns.map(Path::to_path_buf),
        None => records
            .iter()
            .filter_map(|r| r.netns.as_deref())
            .find(|n| !n.is_empty())
            .map(PathBuf::from),
    };
    let cni_version = match request {
        Some(r) => r.cni_version.to_string(),
        None => attachments[0]
            .network
            .cni_version(CniVersion::V0_1_0)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default(),
    };
    Ok(CacheEntry {
        format: CACHE_FORMAT,
        container_id: container_id.clone(),
        netns,
        ifname: master_ifname,
        cni_version,
        pod: pod_of(&cni_args),
        cni_args,
        attachments,
        created_at,
        // The reference records no ADD state: the rule for files without one decides (complete
        // when every attachment has a result).
        add_state: None,
        extra: Map::new(),
        origin: Origin::Reference {
            libcni_results: records.iter().map(|r| r.path.clone()).collect(),
        },
    })
}

fn decode_network(index: usize, d: &ReferenceDelegate) -> Result<NetworkConfig, String> {
    let what = format!("delegate {index}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(d.bytes.as_bytes())
        .map_err(|e| format!("{what}: \"Bytes\" is not base64: {e}"))?;
    NetworkConfig::from_bytes(&bytes, &what).map_err(|e| e.to_string())
}

/// The interface `getIfname` gives a delegate whatever the request: its `ifnameRequest`, or
/// `net<index>` after the first.
fn fixed_ifname(index: usize, d: &ReferenceDelegate) -> Option<String> {
    match d.ifname_request.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(r.to_string()),
        None if index == 0 => None,
        None => Some(format!("net{index}")),
    }
}

/// The runtime config the reference gives a delegate (`mergeCNIRuntimeConfig`, then the
/// capability args of `CreateCNIRuntimeConf`): the keys of its typed `RuntimeConfig` from the
/// multus configuration, plus, for every delegate but the first, the addresses, MAC, GUID and
/// device it requested (port mappings and bandwidth requests are not in its cache file).
fn runtime_config(
    base: &Map<String, Value>,
    d: &ReferenceDelegate,
    master: bool,
) -> Map<String, Value> {
    let mut rc: Map<String, Value> = base
        .iter()
        .filter(|(k, _)| REFERENCE_RUNTIME_KEYS.contains(&k.as_str()))
        .filter(|(_, v)| !is_empty(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !master {
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        if let Some(ips) = d.ip_request.as_ref().filter(|ips| !ips.is_empty()) {
            rc.insert("ips".into(), json!(ips));
        }
        if let Some(mac) = text(&d.mac_request) {
            rc.insert("mac".into(), json!(mac));
        }
        if let Some(guid) = text(&d.infiniband_guid_request) {
            rc.insert("infinibandGUID".into(), json!(guid));
        }
        if let Some(dev) = text(&d.device_id) {
            rc.insert("deviceID".into(), json!(dev));
        }
    }
    rc
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The CNI_ARGS the reference passes its delegates (`CreateCNIRuntimeConf`): `IgnoreUnknown=true`
/// and the four `K8S_*` keys (empty when the runtime gave none), then each pair of the runtime's
/// CNI_ARGS fills an empty key of the same name, or is appended (so a key the runtime gave
/// appears twice, as the reference passes it).
pub fn reference_cni_args(runtime: &str) -> String {
    let pairs: Vec<(&str, &str)> = runtime
        .split(';')
        .filter_map(|p| p.split_once('='))
        .collect();
    let value = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_default()
    };
    let mut args: Vec<(String, String)> = [
        ("IgnoreUnknown", "true"),
        ("K8S_POD_NAMESPACE", value("K8S_POD_NAMESPACE")),
        ("K8S_POD_NAME", value("K8S_POD_NAME")),
        (
            "K8S_POD_INFRA_CONTAINER_ID",
            value("K8S_POD_INFRA_CONTAINER_ID"),
        ),
        ("K8S_POD_UID", value("K8S_POD_UID")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        match args
            .iter_mut()
            .find(|(ak, av)| ak == k && av.is_empty() && !v.is_empty())
        {
            Some(slot) => slot.1 = v.to_string(),
            None => args.push((k.to_string(), v.to_string())),
        }
    }
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The pod named by CNI_ARGS (its last `K8S_POD_*` values), when it names one.
fn pod_of(cni_args: &str) -> Option<PodRef> {
    let value = |key: &str| {
        cni_args
            .split(';')
            .rev()
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .find(|v| !v.is_empty())
    };
    Some(PodRef {
        namespace: value("K8S_POD_NAMESPACE")?,
        name: value("K8S_POD_NAME")?,
        uid: value("K8S_POD_UID").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cid() -> ContainerId {
        ContainerId::parse(ID).unwrap()
    }

    const ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(v.to_string())
    }

    fn cluster() -> Value {
        json!({"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "bridge": "cni0",
               "ipam": {"type": "host-local", "subnet": "10.244.1.0/24"}})
    }

    fn blue() -> Value {
        json!({"cniVersion": "0.4.0", "name": "blue", "type": "macvlan", "master": "eth1",
               "ipam": {"type": "static"}, "args": {"cni": {"x": 1}}})
    }

    fn green_list() -> Value {
        json!({"cniVersion": "1.0.0", "name": "green", "plugins": [
            {"type": "bridge", "bridge": "br-g", "vendorKey": {"kept": true},
             "ipam": {"type": "host-local", "subnet": "10.30.0.0/24"}},
            {"type": "tuning", "mtu": 1400},
            {"type": "portmap", "capabilities": {"portMappings": true}}]})
    }

    /// A file as Multus 4.2 writes it: Go's encoding/json of `[]*types.DelegateNetConf`, with
    /// `Conf`/`ConfList` (unused by its DEL) and `CNINetworkConfigList` beside `Bytes`.
    fn reference_file() -> Value {
        json!([
            {"Conf": {"cniVersion": "1.0.0", "name": "cluster", "type": "bridge", "ipam": {"type": "host-local"}, "dns": {}},
             "ConfList": {"plugins": null}, "Name": "cluster",
             "IsFilterV4Gateway": false, "IsFilterV6Gateway": false, "Bytes": b64(&cluster())},
            {"Conf": {"cniVersion": "0.4.0", "name": "blue", "type": "macvlan", "ipam": {"type": "static"}, "dns": {}},
             "ConfList": {"plugins": null}, "Name": "ns1/blue",
             "ipRequest": ["10.1.1.5/24"], "macRequest": "02:00:00:00:00:05",
             "default-route": ["10.1.1.1"],
             "IsFilterV4Gateway": false, "IsFilterV6Gateway": false, "Bytes": b64(&blue())},
            {"Conf": {"ipam": {}, "dns": {}},
             "ConfList": {"cniVersion": "1.0.0", "name": "green", "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}, "dns": {}}]},
             "CNINetworkConfigList": {"Name": "green", "CNIVersion": "1.0.0", "DisableCheck": false, "Plugins": null, "Bytes": null},
             "Name": "ns1/green", "ifnameRequest": "green0", "deviceID": "0000:03:00.1", "resourceName": "intel.com/sriov",
             "IsFilterV4Gateway": false, "IsFilterV6Gateway": false, "Bytes": b64(&green_list())}
        ])
    }

    fn record(network: &str, ifname: &str, result_ip: &str) -> LibcniRecord {
        let bytes = json!({
            "kind": "cniCacheV1", "containerId": ID, "config": "e30=", "ifName": ifname,
            "networkName": network, "netns": "/var/run/netns/cni-1234",
            "cniArgs": [["IgnoreUnknown", "true"], ["K8S_POD_NAMESPACE", "ns1"], ["K8S_POD_NAME", "web"],
                        ["K8S_POD_INFRA_CONTAINER_ID", ID], ["K8S_POD_UID", "u-1"]],
            "capabilityArgs": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
            "result": {"cniVersion": "1.0.0", "ips": [{"address": result_ip}]}
        });
        let path = PathBuf::from(format!("/c/results/{network}-{ID}-{ifname}"));
        LibcniRecord::parse(bytes.to_string().as_bytes(), &path, ID).expect("record")
    }

    fn delegates() -> Vec<ReferenceDelegate> {
        parse(reference_file().to_string().as_bytes()).expect("reference file")
    }

    #[test]
    fn del_repeats_the_references_configs_ifnames_args_and_runtime_config() {
        let rc = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80}], "bandwidth": null, "other": 1});
        let request = RequestView {
            ifname: "eth0",
            cni_args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc",
            netns: Some(Path::new("/var/run/netns/cni-1234")),
            runtime_config: rc.as_object().unwrap(),
            cni_version: "1.0.0",
        };
        let records = [
            record("cluster", "eth0", "10.244.1.7/24"),
            record("green", "green0", "10.30.0.2/24"),
        ];
        let e = to_entry(&cid(), &delegates(), &records, Some(&request), 7).expect("entry");
        let names: Vec<(&str, &str, bool)> = e
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.ifname.as_str(), a.master))
            .collect();
        assert_eq!(
            names,
            [
                ("cluster", "eth0", true),
                ("ns1/blue", "net1", false),
                ("ns1/green", "green0", false)
            ]
        );
        // The configurations are the delegates' Bytes, untouched (unknown keys, cni-args included).
        assert_eq!(
            serde_json::to_value(&e.attachments[0].network).unwrap(),
            cluster()
        );
        assert_eq!(
            serde_json::to_value(&e.attachments[1].network).unwrap(),
            blue()
        );
        assert_eq!(
            serde_json::to_value(&e.attachments[2].network).unwrap(),
            green_list()
        );
        let args = "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=;IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc";
        assert!(e.attachments.iter().all(|a| a.cni_args == args));
        // The multus configuration's runtimeConfig (its typed keys) for all; the requests after the first.
        let pm = json!([{"hostPort": 8080, "containerPort": 80}]);
        assert_eq!(
            Value::Object(e.attachments[0].runtime_config.clone()),
            json!({"portMappings": pm})
        );
        assert_eq!(
            Value::Object(e.attachments[1].runtime_config.clone()),
            json!({"portMappings": pm, "ips": ["10.1.1.5/24"], "mac": "02:00:00:00:00:05"})
        );
        assert_eq!(
            Value::Object(e.attachments[2].runtime_config.clone()),
            json!({"portMappings": pm, "deviceID": "0000:03:00.1"})
        );
        // prevResult from libcni's result cache, matched by network and interface.
        assert_eq!(
            e.attachments[0].result.as_ref().unwrap()["ips"][0]["address"],
            "10.244.1.7/24"
        );
        assert!(e.attachments[1].result.is_none());
        assert_eq!(
            e.attachments[2].result.as_ref().unwrap()["ips"][0]["address"],
            "10.30.0.2/24"
        );
        assert_eq!(e.attachments[2].device_id.as_deref(), Some("0000:03:00.1"));
        assert_eq!(
            e.attachments[2].resource_name.as_deref(),
            Some("intel.com/sriov")
        );
        assert_eq!(
            e.attachments[1].default_route,
            ["10.1.1.1".parse::<IpAddr>().unwrap()]
        );
        assert!(e.attachments[1].is_default && !e.attachments[0].is_default);
        assert_eq!(
            e.netns.as_deref(),
            Some(Path::new("/var/run/netns/cni-1234"))
        );
        assert_eq!(
            (e.ifname.as_str(), e.cni_version.as_str(), e.created_at),
            ("eth0", "1.0.0", 7)
        );
        assert_eq!(
            e.pod,
            Some(PodRef {
                namespace: "ns1".into(),
                name: "web".into(),
                uid: String::new()
            })
        );
        assert_eq!(
            e.origin,
            Origin::Reference {
                libcni_results: records.iter().map(|r| r.path.clone()).collect()
            }
        );
    }

    #[test]
    fn without_a_request_libcni_records_give_ifname_netns_args_and_runtime_config() {
        let records = [
            record("cluster", "eth7", "10.244.1.7/24"),
            record("blue", "net1", "10.1.1.5/24"),
        ];
        let e = to_entry(&cid(), &delegates(), &records, None, 0).expect("entry");
        assert_eq!(e.ifname, "eth7");
        assert_eq!(e.attachments[0].ifname, "eth7");
        assert_eq!(
            e.netns.as_deref(),
            Some(Path::new("/var/run/netns/cni-1234"))
        );
        let args = format!("IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={ID};K8S_POD_UID=u-1");
        assert_eq!(e.cni_args, args);
        assert_eq!(e.attachments[1].cni_args, args);
        assert_eq!(
            e.attachments[2].cni_args, "",
            "no record: no CNI_ARGS known"
        );
        assert_eq!(
            e.attachments[0].runtime_config["portMappings"][0]["hostPort"],
            8080
        );
        assert_eq!(
            Value::Object(e.attachments[2].runtime_config.clone()),
            json!({"deviceID": "0000:03:00.1"})
        );
        assert_eq!(e.pod.as_ref().map(|p| p.uid.as_str()), Some("u-1"));
        assert_eq!(e.cni_version, "1.0.0", "the first delegate's version");
        // Nothing recorded at all: the kubelet's eth0, no namespace.
        let bare = to_entry(&cid(), &delegates(), &[], None, 0).expect("entry");
        assert_eq!(bare.ifname, "eth0");
        assert!(bare.netns.is_none() && bare.pod.is_none());
    }

    #[test]
    fn the_auxiliary_chain_is_recognised() {
        let chain = json!({"cniVersion": "1.0.0", "name": "aux", "plugins": [{"type": "passthru"}, {"type": "tuning"}]});
        let file = json!([{"Name": "cluster", "Bytes": b64(&cluster())}, {"Name": "aux", "Bytes": b64(&chain)}]);
        let e = to_entry(
            &cid(),
            &parse(file.to_string().as_bytes()).unwrap(),
            &[],
            None,
            0,
        )
        .unwrap();
        assert!(e.attachments[1].auxiliary && !e.attachments[0].auxiliary);
    }

    #[test]
    fn other_files_are_not_the_references() {
        assert!(parse(b"[]").is_err());
        assert!(parse(b"{\"format\": 1}").is_err());
        assert!(parse(b"[{\"Name\": \"x\"}]").is_err(), "no Bytes");
        assert!(
            parse(&reference_file().to_string().as_bytes()[..40]).is_err(),
            "torn"
        );
        let not_b64 = json!([{"Bytes": "%%%"}]);
        let d = parse(not_b64.to_string().as_bytes()).unwrap();
        assert!(to_entry(&cid(), &d, &[], None, 0)
            .unwrap_err()
            .contains("base64"));
        let no_type = json!([{"Bytes": b64(&json!({"name": "x"}))}]);
        let d = parse(no_type.to_string().as_bytes()).unwrap();
        assert!(to_entry(&cid(), &d, &[], None, 0).is_err());
        let bad_ifname = json!([{"Bytes": b64(&cluster()), "ifnameRequest": "../../etc"}]);
        let d = parse(bad_ifname.to_string().as_bytes()).unwrap();
        assert!(to_entry(&cid(), &d, &[], None, 0).is_err());
    }

    #[test]
    fn libcni_records_of_other_containers_or_kinds_are_ignored() {
        let p = Path::new("/x");
        let other = json!({"kind": "cniCacheV1", "containerId": "other", "ifName": "eth0", "networkName": "n"});
        assert!(LibcniRecord::parse(other.to_string().as_bytes(), p, ID).is_none());
        let legacy = json!({"cniVersion": "0.3.1", "ips": []});
        assert!(LibcniRecord::parse(legacy.to_string().as_bytes(), p, ID).is_none());
    }

    #[test]
    fn cni_args_follow_create_cni_runtime_conf() {
        assert_eq!(
            reference_cni_args(""),
            "IgnoreUnknown=true;K8S_POD_NAMESPACE=;K8S_POD_NAME=;K8S_POD_INFRA_CONTAINER_ID=;K8S_POD_UID="
        );
        assert_eq!(
            reference_cni_args("FOO=a=b;bad"),
            "IgnoreUnknown=true;K8S_POD_NAMESPACE=;K8S_POD_NAME=;K8S_POD_INFRA_CONTAINER_ID=;K8S_POD_UID=;FOO=a=b"
        );
    }
}
