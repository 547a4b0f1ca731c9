//! A node switched from the reference Multus (Go) to this one, with the Kubernetes API down: pods
//! the reference attached (its cache file `<cniDir>/<containerID>` and libcni's result cache beside
//! it, made by `testkit::reference_multus` with the Debian plugins: a bridge conf on eth0, a bridge
//! conf NAD on `blue0` and a bridge + tuning + recorder conflist NAD on net2) are torn down by DEL
//! exactly as the reference would (same configs, interfaces, CNI_ARGS, runtime config and
//! prevResult), checked by CHECK, collected by GC, and listed, shown and collected by multusctl,
//! leaving no interface, lease or cache file. Run as root (`cargo xtask test`).

use std::{path::PathBuf, process::Stdio};

use serde_json::{json, Value};
use testkit::{
    bins, cni, confs,
    kube_api::KubeApiServer,
    leaks,
    netns::unique_name,
    reference_multus::{Add, Delegate},
    CniCall, CniOutput, Netns, Node,
};

const MAC: &str = "02:00:00:00:00:aa";

struct Env {
    node: Node,
    multus: PathBuf,
    api: KubeApiServer,
    conf: Value,
    conf_path: PathBuf,
}

/// A pod the reference Multus attached.
struct Pod {
    ns: Netns,
    id: String,
    name: String,
    /// Each delegate's ADD result.
    results: Vec<Value>,
}

impl Env {
    /// A node whose multus configuration (the same cluster network the reference had) names an
    /// API that is down.
    fn new(version: &str) -> Env {
        let node = Node::new();
        let multus = bins::product("multus");
        node.install("multus", &multus);
        node.install(
            "cni-recorder",
            std::path::Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
        );
        let api = node.api_server();
        let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
        api.begin_outage().expect("outage");
        let mut conf = confs::multus(
            version,
            &node.cache_dir(),
            &node.bin_dir(),
            vec![cluster(&node)],
        );
        conf["binDir"] = json!(format!(
            "{}:{}",
            node.bin_dir().display(),
            bins::REFERENCE_PLUGINS
        ));
        conf["kubeconfig"] = json!(kubeconfig);
        conf["delApiDeadlineSeconds"] = json!(1);
        conf["capabilities"] = json!({"portMappings": true});
        conf["runtimeConfig"] = json!({"portMappings": port_mappings()});
        let conf_path = node.root().join("conf").join("00-multus.conf");
        std::fs::write(&conf_path, conf.to_string()).expect("conf");
        Env {
            node,
            multus,
            api,
            conf,
            conf_path,
        }
    }

    /// The reference's delegates: the cluster network, then two NADs.
    fn delegates(&self) -> Vec<Delegate> {
        let ipam = self.node.ipam_dir();
        let blue = json!({"cniVersion": "0.4.0", "name": "blue", "type": "bridge", "bridge": "br-b",
            "ipam": {"type": "host-local", "subnet": "10.101.0.0/24", "dataDir": ipam}});
        let green = json!({"cniVersion": "1.0.0", "name": "green", "plugins": [
            {"type": "bridge", "bridge": "br-g",
             "ipam": {"type": "host-local", "subnet": "10.102.0.0/24", "dataDir": ipam}},
            {"type": "tuning", "mtu": 1400},
            {"type": "cni-recorder", "recordDir": self.node.records_dir(),
             "capabilities": {"mac": true, "portMappings": true}}]});
        vec![
            Delegate::new("cluster-net", cluster(&self.node)),
            Delegate {
                ifname_request: Some("blue0".into()),
                ..Delegate::new("ns1/blue", blue)
            },
            Delegate {
                mac_request: Some(MAC.into()),
                ..Delegate::new("ns1/green", green)
            },
        ]
    }

    /// The kubelet's CNI_ARGS for pod `name` of container `id`.
    fn kubelet_args(id: &str, name: &str) -> String {
        cni::k8s_args("ns1", name, Some(id), Some(&format!("uid-{name}")))
    }

    /// A pod attached by the reference Multus (thin): its delegates, libcni records and cache file.
    fn reference_pod(&self, name: &str) -> Pod {
        let ns = Netns::new("mg");
        let id = unique_name("mig");
        let results = Add {
            node: &self.node,
            container_id: &id,
            pod: &ns,
            ifname: "eth0",
            args: reference_args(&Self::kubelet_args(&id, name)),
            runtime_config: json!({"portMappings": port_mappings()})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
        .run(&self.delegates());
        let mut links = ns.link_names();
        links.sort();
        assert_eq!(
            links,
            ["blue0", "eth0", "net2"],
            "the reference's interfaces"
        );
        Pod {
            ns,
            id,
            name: name.into(),
            results,
        }
    }

    fn call(&self, command: &str, pod: &Pod) -> CniOutput {
        CniCall::new(&self.node, command, &pod.id, Some(&pod.ns), "eth0")
            .args(&Self::kubelet_args(&pod.id, &pod.name))
            .run(&self.node, &self.multus, &self.conf)
    }

    fn recorded(&self, command: &str, id: &str, ifname: &str) -> Value {
        let p = self
            .node
            .records_dir()
            .join(format!("{command}-{id}-{ifname}.json"));
        let s = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("no record {}: {e}", p.display()));
        serde_json::from_str(&s).expect("record")
    }

    /// The files of one container in the cache directory (its cache file, its libcni records).
    fn files_of(&self, id: &str) -> Vec<String> {
        leaks::cache_files(&self.node.cache_dir())
            .into_iter()
            .filter(|f| f.contains(id))
            .collect()
    }

    /// multusctl with this node's configuration, in the node's namespace.
    fn ctl(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .node
            .ns
            .command(bins::product("multusctl"))
            .arg("--conf")
            .arg(&self.conf_path)
            .args(args)
            .env("CNI_PATH", bins::REFERENCE_PLUGINS)
            .env_remove("MULTUSCTL_CONF")
            .stdin(Stdio::null())
            .output()
            .expect("multusctl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "$ multusctl {}   # exit {:?}\n{stdout}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), stdout)
    }
}

fn cluster(node: &Node) -> Value {
    confs::bridge(
        "cluster-net",
        "br-c",
        "10.100.0.0/24",
        "1.0.0",
        &node.ipam_dir(),
    )
}

fn port_mappings() -> Value {
    json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
}

/// The CNI_ARGS the thin reference's libcni passes (`CreateCNIRuntimeConf`): `IgnoreUnknown=true`
/// and the four K8S_* keys, then every pair of the kubelet's (all non-empty, so all appended).
fn reference_args(kubelet: &str) -> Vec<(String, String)> {
    let get = |key: &str| {
        kubelet
            .split(';')
            .find_map(|p| p.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_string()
    };
    let mut args: Vec<(String, String)> = vec![("IgnoreUnknown".into(), "true".into())];
    for key in [
        "K8S_POD_NAMESPACE",
        "K8S_POD_NAME",
        "K8S_POD_INFRA_CONTAINER_ID",
        "K8S_POD_UID",
    ] {
        args.push((key.into(), get(key)));
    }
    for pair in kubelet.split(';') {
        let (k, v) = pair.split_once('=').expect("pair");
        args.push((k.into(), v.into()));
    }
    args
}

fn joined(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn del_of_a_reference_pod_with_the_api_down_leaves_nothing() {
    let env = Env::new("1.0.0");
    let pod = env.reference_pod("web");
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 3);
    assert_eq!(
        env.files_of(&pod.id).len(),
        4,
        "its cache file and 3 libcni records"
    );
    env.api.reset_requests();
    env.call("DEL", &pod).assert_ok();
    env.node.assert_pod_clean(&pod.ns);
    // The conflist's last plugin got the DEL the reference would have given it.
    let del = env.recorded("DEL", &pod.id, "net2");
    assert_eq!(
        del["env"]["CNI_ARGS"],
        joined(&reference_args(&Env::kubelet_args(&pod.id, "web")))
    );
    assert_eq!(del["env"]["CNI_IFNAME"], "net2");
    assert_eq!(del["env"]["CNI_NETNS"], pod.ns.path().display().to_string());
    assert_eq!(del["stdin"]["name"], "green");
    assert_eq!(del["stdin"]["cniVersion"], "1.0.0");
    assert_eq!(
        del["stdin"]["runtimeConfig"],
        json!({"mac": MAC, "portMappings": port_mappings()})
    );
    assert_eq!(
        del["stdin"]["prevResult"]["ips"], pod.results[2]["ips"],
        "prevResult is libcni's cached result"
    );
    assert!(
        env.api.requests().is_empty(),
        "DEL from the reference's cache makes no API call: {:?}",
        env.api.requests()
    );
    // Repeated: nothing left to do.
    env.call("DEL", &pod).assert_ok();
    env.node.assert_pod_clean(&pod.ns);
}

#[test]
fn check_gc_and_multusctl_handle_reference_pods() {
    let env = Env::new("1.1.0");
    let kept = env.reference_pod("kept");
    // CHECK: every delegate checked with libcni's cached result (before other pods join the
    // bridges: the bridge plugin's CHECK compares the bridge's MAC, which follows its ports).
    env.call("CHECK", &kept).assert_ok();
    let check = env.recorded("CHECK", &kept.id, "net2");
    assert_eq!(check["stdin"]["prevResult"]["ips"], kept.results[2]["ips"]);
    let gone = env.reference_pod("gone");
    let stale = env.reference_pod("stale");
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 9);

    // multusctl list and show read the reference's files.
    let (code, out) = env.ctl(&["-o", "json", "list"]);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&out).expect("json");
    let item = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["containerID"] == kept.id.as_str())
        .unwrap_or_else(|| panic!("{} not listed: {doc}", kept.id))
        .clone();
    assert_eq!(item["cacheError"], Value::Null, "{item}");
    assert_eq!(item["cached"], true);
    assert_eq!(item["cacheFormat"], "reference");
    assert_eq!(item["pod"]["name"], "kept");
    assert_eq!(item["netns"], kept.ns.path().display().to_string());
    assert_eq!(item["netnsState"], "present");
    let ifnames: Vec<&str> = item["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter_map(|i| i["ifname"].as_str())
        .collect();
    assert_eq!(ifnames, ["eth0", "blue0", "net2"]);
    let (code, out) = env.ctl(&["-o", "json", "show", &kept.id]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("10.102.0."),
        "net2's address from libcni's record: {out}"
    );

    // multusctl gc: the sandbox went without a DEL; its delegates' DEL releases the leases.
    gone.ns.delete();
    let (code, out) = env.ctl(&["gc"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.files_of(&gone.id), Vec::<String>::new());
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 6);

    // CNI GC: the stale container is torn down, the valid one kept.
    let mut gc_conf = env.conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": kept.id, "ifname": "eth0"}]);
    let mut gc = CniCall::new(&env.node, "GC", "", None, "");
    gc.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    gc.run(&env.node, &env.multus, &gc_conf).assert_ok();
    assert_eq!(stale.ns.link_names(), Vec::<String>::new());
    assert_eq!(env.files_of(&stale.id), Vec::<String>::new());
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 3);
    assert_eq!(
        env.files_of(&kept.id).len(),
        4,
        "the valid container is kept"
    );

    env.call("DEL", &kept).assert_ok();
    env.node.assert_pod_clean(&kept.ns);
    assert!(env.api.requests().is_empty(), "no API call");
}

#[test]
fn a_file_in_neither_format_is_unreadable_and_del_falls_back() {
    let env = Env::new("1.0.0");
    let pod = Netns::new("mg");
    let id = unique_name("mig");
    // No pod identity: multus works from the configuration alone.
    let call = |command: &str| {
        CniCall::new(&env.node, command, &id, Some(&pod), "eth0").run(
            &env.node,
            &env.multus,
            &env.conf,
        )
    };
    call("ADD").assert_ok();
    std::fs::write(env.node.cache_dir().join(&id), b"[{\"Name\": \"x\"}]").expect("write");
    let (_, out) = env.ctl(&["-o", "json", "list"]);
    let doc: Value = serde_json::from_str(&out).expect("json");
    let err = doc["items"][0]["cacheError"].as_str().unwrap_or_default();
    assert!(
        err.contains("nor the reference Multus's"),
        "unreadable, naming both formats: {doc}"
    );
    // DEL falls back to the configuration and frees the cluster network.
    call("DEL").assert_ok();
    env.node.assert_pod_clean(&pod);
}
