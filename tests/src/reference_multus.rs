//! A pod as the reference Multus (Go) leaves it on a node, for migration tests: its delegates'
//! ADD run with the real plugins the way its libcni runs them (every plugin of a conflist gets the
//! list's `name` and `cniVersion`, the previous plugin's result, and the runtime config of the
//! capabilities it declares), libcni's result cache `<cniDir>/results/<network>-<id>-<ifname>`
//! (kind `cniCacheV1`) written after each, and the reference's own cache file `<cniDir>/<id>`:
//! Go's JSON of its `[]*types.DelegateNetConf` (pkg/types/types.go: `Conf`, `ConfList`, `Name`,
//! the requests, `Bytes` as base64). Nothing of the product is used to build them.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::{bins, CniCall, Netns, Node};

/// One delegate of the reference's list.
#[derive(Clone, Debug)]
pub struct Delegate {
    /// `Name`: the conf's name, or `namespace/name` for a NAD.
    pub name: String,
    /// The network configuration (`Bytes`).
    pub config: Value,
    /// `ifnameRequest`.
    pub ifname_request: Option<String>,
    /// `macRequest`.
    pub mac_request: Option<String>,
}

impl Delegate {
    /// A delegate named `name` with `config`.
    pub fn new(name: &str, config: Value) -> Delegate {
        Delegate {
            name: name.to_string(),
            config,
            ifname_request: None,
            mac_request: None,
        }
    }

    /// The interface the reference gives the delegate at `index` (its `getIfname`).
    pub fn ifname(&self, index: usize, runtime_ifname: &str) -> String {
        match (&self.ifname_request, index) {
            (Some(r), _) => r.clone(),
            (None, 0) => runtime_ifname.to_string(),
            (None, i) => format!("net{i}"),
        }
    }

    /// Go's JSON of the `DelegateNetConf` (`Conf`/`ConfList` as `types.NetConf`/`NetConfList`
    /// marshal the parsed config; `Bytes` the config itself).
    pub fn go_json(&self) -> Value {
        let plugin_conf = |p: &Value| {
            let mut c = json!({"ipam": {}, "dns": {}});
            for key in ["cniVersion", "name", "type", "capabilities"] {
                if let Some(v) = p.get(key) {
                    c[key] = v.clone();
                }
            }
            if let Some(t) = p.pointer("/ipam/type") {
                c["ipam"]["type"] = t.clone();
            }
            c
        };
        let (conf, conf_list) = match self.config.get("plugins").and_then(Value::as_array) {
            Some(plugins) => (
                json!({"ipam": {}, "dns": {}}),
                json!({"cniVersion": self.config["cniVersion"], "name": self.config["name"],
                       "plugins": plugins.iter().map(plugin_conf).collect::<Vec<_>>()}),
            ),
            None => (plugin_conf(&self.config), json!({})),
        };
        let mut v = json!({
            "Conf": conf,
            "ConfList": conf_list,
            "Name": self.name,
            "IsFilterV4Gateway": false,
            "IsFilterV6Gateway": false,
            "Bytes": base64::engine::general_purpose::STANDARD.encode(self.config.to_string()),
        });
        if let Some(r) = &self.ifname_request {
            v["ifnameRequest"] = json!(r);
        }
        if let Some(m) = &self.mac_request {
            v["macRequest"] = json!(m);
        }
        v
    }
}

/// What the reference's ADD of one pod was given.
pub struct Add<'a> {
    /// The node (its cache directory is the reference's `cniDir`).
    pub node: &'a Node,
    /// The container.
    pub container_id: &'a str,
    /// The pod's namespace.
    pub pod: &'a Netns,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// The CNI_ARGS its libcni passes every delegate (`RuntimeConf.Args`), as pairs.
    pub args: Vec<(String, String)>,
    /// The multus configuration's `runtimeConfig` (given to every delegate).
    pub runtime_config: Map<String, Value>,
}

impl Add<'_> {
    /// Runs every delegate's ADD (panicking on a failure), writes libcni's record after each and
    /// the reference's cache file; returns each delegate's result.
    pub fn run(&self, delegates: &[Delegate]) -> Vec<Value> {
        let cache = self.node.cache_dir();
        std::fs::create_dir_all(cache.join("results")).expect("results dir");
        let list = Value::Array(delegates.iter().map(Delegate::go_json).collect());
        std::fs::write(cache.join(self.container_id), list.to_string()).expect("reference cache");
        delegates
            .iter()
            .enumerate()
            .map(|(i, d)| self.delegate(i, d))
            .collect()
    }

    fn delegate(&self, index: usize, d: &Delegate) -> Value {
        let ifname = d.ifname(index, self.ifname);
        let mut caps = self.runtime_config.clone();
        if let (Some(mac), true) = (&d.mac_request, index > 0) {
            caps.insert("mac".into(), json!(mac));
        }
        let name = d.config["name"].as_str().expect("network name").to_string();
        let version = d.config["cniVersion"].clone();
        let plugins: Vec<Value> = match d.config.get("plugins").and_then(Value::as_array) {
            Some(p) => p.clone(),
            None => vec![d.config.clone()],
        };
        // DelegateAdd also passes a requested MAC as CNI_ARGS `MAC` (deprecated since 3.5).
        let mut args = self.args.clone();
        if let Some(mac) = &d.mac_request {
            args.push(("MAC".into(), mac.clone()));
        }
        let cni_args = args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let mut prev: Option<Value> = None;
        for plugin in &plugins {
            let mut conf = plugin.clone();
            conf["name"] = json!(name);
            conf["cniVersion"] = version.clone();
            if let Some(p) = &prev {
                conf["prevResult"] = p.clone();
            }
            let rc: Map<String, Value> = caps
                .iter()
                .filter(|(k, _)| {
                    plugin.pointer(&format!("/capabilities/{k}")) == Some(&json!(true))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !rc.is_empty() {
                conf["runtimeConfig"] = Value::Object(rc);
            }
            let ty = plugin["type"].as_str().expect("type");
            let out = CniCall::new(self.node, "ADD", self.container_id, Some(self.pod), &ifname)
                .args(&cni_args)
                .run(self.node, &plugin_binary(self.node, ty), &conf);
            prev = Some(out.ok().clone());
        }
        let result = prev.expect("a result");
        let record = json!({
            "kind": "cniCacheV1",
            "containerId": self.container_id,
            "config": base64::engine::general_purpose::STANDARD.encode(d.config.to_string()),
            "ifName": ifname,
            "networkName": name,
            "netns": self.pod.path(),
            "cniArgs": args.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "capabilityArgs": caps,
            "result": result,
        });
        std::fs::write(
            results_path(&self.node.cache_dir(), &name, self.container_id, &ifname),
            record.to_string(),
        )
        .expect("libcni record");
        result
    }
}

/// libcni's result-cache file of one attachment.
pub fn results_path(cni_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cni_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}"))
}

/// A plugin from the node's own directory (the test recorder), else the reference plugins.
fn plugin_binary(node: &Node, ty: &str) -> PathBuf {
    let own = node.bin_dir().join(ty);
    if own.exists() {
        own
    } else {
        bins::reference(ty)
    }
}
