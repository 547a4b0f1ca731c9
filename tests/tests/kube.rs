//! multus with the Kubernetes API (the in-tree stand-in, real HTTPS and JSON, the real `kube`
//! client inside the binary): annotations in every form, NAD resolution order, namespace
//! isolation, default-network override, defaultNetworks, network-status in every CNI version,
//! default-route, API faults, DEL without the API, 20 pods in parallel, and kubectl reading back.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde_json::{json, Value};
use testkit::{
    bins, cni, confs,
    kube_api::{Fault, KubeApiServer, KubeconfigAuth, KubeconfigOptions, NadSeed, PodSeed},
    leaks, CniCall, CniOutput, Netns, Node,
};

const STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// The pod's IPv4 default routes (`ip -j route` objects).
fn ipv4_defaults(pod: &Netns) -> Vec<Value> {
    pod.routes("-4")
        .into_iter()
        .filter(|r| r["dst"] == "default")
        .collect()
}
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

struct K {
    node: Node,
    multus: PathBuf,
    api: KubeApiServer,
    kubeconfig: PathBuf,
}

impl K {
    fn new() -> K {
        let node = Node::new();
        let multus = bins::product("multus");
        node.install("multus", &multus);
        node.install(
            "cni-recorder",
            std::path::Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
        );
        // The API listens on the node's loopback, where the plugin runs.
        let api = node.api_server();
        let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
        K {
            node,
            multus,
            api,
            kubeconfig,
        }
    }

    fn cluster(&self) -> Value {
        confs::bridge(
            "cluster-net",
            "br-c",
            "10.100.0.0/24",
            "1.0.0",
            &self.node.ipam_dir(),
        )
    }

    fn conf_dir(&self) -> PathBuf {
        self.node.root().join("conf")
    }

    /// A multus configuration with API access and the cluster network inline.
    fn conf(&self, version: &str) -> Value {
        let mut c = confs::multus(
            version,
            &self.node.cache_dir(),
            &self.node.bin_dir(),
            vec![self.cluster()],
        );
        c["kubeconfig"] = json!(self.kubeconfig);
        c["confDir"] = json!(self.conf_dir());
        c["apiDeadlineSeconds"] = json!(3);
        c
    }

    /// A bridge NAD config in `subnet` (a /24 whose .1 is the gateway).
    fn bridge_nad(&self, namespace: &str, name: &str, bridge: &str, subnet: &str) {
        let gw = subnet.replace(".0/24", ".1");
        let config = json!({"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge, "isGateway": true,
            "ipam": {"type": "host-local", "subnet": subnet, "gateway": gw, "dataDir": self.node.ipam_dir()}});
        self.api
            .create_nad(NadSeed::new(namespace, name, config.to_string()))
            .expect("nad");
    }

    fn pod(&self, namespace: &str, name: &str, annotations: &[(&str, &str)]) -> (Netns, String) {
        let mut seed = PodSeed::new(namespace, name);
        for (k, v) in annotations {
            seed = seed.annotation(k, v);
        }
        let obj = self.api.create_pod(seed).expect("pod");
        (
            Netns::new("kp"),
            obj["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    fn call(
        &self,
        command: &str,
        id: &str,
        netns: &Netns,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> CniCall {
        CniCall::new(&self.node, command, id, Some(netns), "eth0").args(&cni::k8s_args(
            namespace,
            name,
            Some(id),
            Some(uid),
        ))
    }

    fn add(
        &self,
        id: &str,
        netns: &Netns,
        namespace: &str,
        name: &str,
        uid: &str,
        conf: &Value,
    ) -> CniOutput {
        self.call("ADD", id, netns, namespace, name, uid)
            .run(&self.node, &self.multus, conf)
    }

    fn del(
        &self,
        id: &str,
        netns: &Netns,
        namespace: &str,
        name: &str,
        uid: &str,
        conf: &Value,
    ) -> CniOutput {
        self.call("DEL", id, netns, namespace, name, uid)
            .run(&self.node, &self.multus, conf)
    }

    fn status(&self, namespace: &str, name: &str) -> Vec<Value> {
        let raw = self
            .api
            .pod_annotation(namespace, name, STATUS)
            .unwrap_or_else(|| panic!("no network-status on {namespace}/{name}"));
        serde_json::from_str(&raw).unwrap()
    }

    fn assert_clean(&self, pod: &Netns) {
        self.node.assert_pod_clean(pod);
    }
}

#[test]
fn the_reference_documentation_example_works_and_kubectl_reads_network_status() {
    let k = K::new();
    // The macvlan master of the documentation ("eth0") lives in the test node, not on the host.
    k.node.ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0-peer",
    ]);
    k.node.ns.ip(&["link", "set", "eth0", "up"]);
    let doc_config = json!({"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
        "ipam": {"type": "host-local", "subnet": "192.168.1.0/24", "rangeStart": "192.168.1.200", "rangeEnd": "192.168.1.216",
                 "routes": [{"dst": "0.0.0.0/0"}], "gateway": "192.168.1.1", "dataDir": k.node.ipam_dir()}});
    k.api
        .create_nad(NadSeed::new(
            "default",
            "macvlan-conf",
            doc_config.to_string(),
        ))
        .unwrap();
    let (pod, uid) = k.pod("default", "samplepod", &[(NETWORKS, "macvlan-conf")]);
    let conf = k.conf("0.3.1");
    let out = k.add("doc1", &pod, "default", "samplepod", &uid, &conf);
    assert!(
        out.ok()["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.100.0."),
        "the cluster network is the result"
    );
    assert!(
        pod.addresses("net1")[0].starts_with("192.168.1.200"),
        "macvlan-conf on net1"
    );
    let status = k.status("default", "samplepod");
    assert_eq!(status.len(), 2, "{status:?}");
    assert_eq!(status[0]["name"], "cluster-net");
    assert_eq!(status[0]["interface"], "eth0");
    assert_eq!(status[0]["default"], true);
    assert!(status[0]["ips"][0]
        .as_str()
        .unwrap()
        .starts_with("10.100.0."));
    assert_eq!(status[1]["name"], "default/macvlan-conf");
    assert_eq!(status[1]["interface"], "net1");
    assert_eq!(status[1]["ips"], json!(["192.168.1.200"]));
    assert_eq!(status[1]["default"], false);
    assert_eq!(status[1]["mtu"], 1500);
    assert_eq!(status[1]["mac"].as_str().unwrap().len(), 17);
    assert_eq!(status[1]["gateway"], json!(["192.168.1.1"]));
    let out = k
        .node
        .ns
        .command("kubectl")
        .arg(format!("--kubeconfig={}", k.kubeconfig.display()))
        .args([
            "get",
            "pod",
            "samplepod",
            "-n",
            "default",
            "-o",
            r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}",
        ])
        .output()
        .expect("kubectl (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let via_kubectl: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_kubectl, status, "kubectl reads the same network-status");
    k.del("doc1", &pod, "default", "samplepod", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn the_auxiliary_chain_follows_the_pod_networks_and_stays_out_of_network_status() {
    let k = K::new();
    k.bridge_nad("default", "data", "br-d", "10.101.0.0/24");
    // Inline delegates: the chain's directory is in confDir.
    let chain = k.conf_dir().join("vendor-chain");
    std::fs::create_dir_all(&chain).unwrap();
    let recorder = json!({"type": "cni-recorder", "recordDir": k.node.records_dir()});
    std::fs::write(chain.join("10-record.conf"), recorder.to_string()).unwrap();
    let mut conf = k.conf("1.0.0");
    conf["auxiliaryCNIChainName"] = json!("vendor-chain");
    let (pod, uid) = k.pod("default", "aux", &[(NETWORKS, "data")]);
    k.add("aux1", &pod, "default", "aux", &uid, &conf).ok();
    let mut links = pod.link_names();
    links.sort();
    assert_eq!(links, ["eth0", "net1"]);
    let add = std::fs::read_to_string(k.node.records_dir().join("ADD-aux1-net2.json"))
        .expect("the chain ran as net2, after net1");
    let add: Value = serde_json::from_str(&add).unwrap();
    assert_eq!(add["stdin"]["name"], "vendor-chain");
    assert!(
        add["env"]["CNI_ARGS"]
            .as_str()
            .unwrap()
            .contains("K8S_POD_NAME=aux"),
        "the pod's CNI_ARGS"
    );
    let status = k.status("default", "aux");
    let names: Vec<&str> = status.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        ["cluster-net", "default/data"],
        "no entry for a chain without interfaces"
    );
    k.del("aux1", &pod, "default", "aux", &uid, &conf)
        .assert_ok();
    assert!(k.node.records_dir().join("DEL-aux1-net2.json").exists());
    k.assert_clean(&pod);

    // A pod that asks for net2 itself keeps it; the chain takes the next free name.
    let (pod, uid) = k.pod("default", "aux-b", &[(NETWORKS, "data@net2")]);
    k.add("aux2", &pod, "default", "aux-b", &uid, &conf).ok();
    assert!(pod.link_names().contains(&"net2".to_string()));
    assert!(
        k.node.records_dir().join("ADD-aux2-net3.json").exists(),
        "the chain ran as net3"
    );
    k.del("aux2", &pod, "default", "aux-b", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn every_annotation_field_reaches_the_delegates() {
    let k = K::new();
    let rec = json!({"cniVersion": "1.0.0", "name": "rec-net", "type": "cni-recorder", "recordDir": k.node.records_dir(),
        "capabilities": {"ips": true, "mac": true, "portMappings": true, "bandwidth": true, "infinibandGUID": true,
                         "deviceID": true, "ipam-claim-reference": true}});
    k.api
        .create_nad(NadSeed::new("ns1", "rec-net", rec.to_string()))
        .unwrap();
    let static_net = json!({"cniVersion": "1.0.0", "name": "static-net", "plugins": [
        {"type": "bridge", "bridge": "br-s", "capabilities": {"ips": true}, "ipam": {"type": "static"}},
        {"type": "tuning", "capabilities": {"mac": true}}]});
    k.api
        .create_nad(NadSeed::new("ns1", "static-net", static_net.to_string()))
        .unwrap();
    let annotation = json!([
        {"name": "rec-net", "interface": "rec9", "ips": ["10.9.9.9/24"], "mac": "02:11:22:33:44:55",
         "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
         "bandwidth": {"ingressRate": 1000, "ingressBurst": 100}, "cni-args": {"foo": "bar"},
         "infiniband-guid": "c2:b0:57:49:47:f1:00:01", "deviceID": "0000:03:00.1", "ipam-claim-reference": "claim-a"},
        {"name": "static-net", "namespace": "ns1", "ips": ["10.55.0.7/24"], "mac": "02:aa:bb:cc:dd:ee"}
    ]);
    let (pod, uid) = k.pod("ns1", "p1", &[(NETWORKS, &annotation.to_string())]);
    let conf = k.conf("1.0.0");
    k.add("ann1", &pod, "ns1", "p1", &uid, &conf).ok();
    let r = serde_json::from_str::<Value>(
        &std::fs::read_to_string(k.node.records_dir().join("ADD-ann1-rec9.json")).unwrap(),
    )
    .unwrap();
    let rc = &r["stdin"]["runtimeConfig"];
    assert_eq!(rc["ips"], json!(["10.9.9.9/24"]));
    assert_eq!(rc["mac"], "02:11:22:33:44:55");
    assert_eq!(rc["portMappings"][0]["hostPort"], 8080);
    assert_eq!(rc["bandwidth"]["ingressRate"], 1000);
    assert_eq!(rc["infinibandGUID"], "c2:b0:57:49:47:f1:00:01");
    assert_eq!(rc["deviceID"], "0000:03:00.1");
    assert_eq!(rc["ipam-claim-reference"], "claim-a");
    assert_eq!(r["stdin"]["args"]["cni"]["foo"], "bar");
    let args = r["env"]["CNI_ARGS"].as_str().unwrap();
    assert!(
        args.contains("IP=10.9.9.9/24")
            && args.contains("MAC=02:11:22:33:44:55")
            && args.contains("K8S_POD_NAME=p1"),
        "{args}"
    );
    // Real plugins honour ips (static IPAM) and mac (tuning) on net2.
    assert_eq!(pod.addresses("net2"), vec!["10.55.0.7/24"]);
    let mac = pod
        .links()
        .iter()
        .find(|l| l["ifname"] == "net2")
        .map(|l| l["address"].clone())
        .unwrap();
    assert_eq!(mac, "02:aa:bb:cc:dd:ee");
    // The cluster network did not get the per-attachment runtime config.
    assert_eq!(k.status("ns1", "p1").len(), 3);
    k.del("ann1", &pod, "ns1", "p1", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn short_form_namespaces_and_interface_names() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    k.bridge_nad("other", "green", "br-g", "10.102.0.0/24");
    let (pod, uid) = k.pod(
        "ns1",
        "p2",
        &[(NETWORKS, "blue, other/green@data0 ,blue@blue2")],
    );
    let conf = k.conf("1.0.0");
    k.add("short", &pod, "ns1", "p2", &uid, &conf).ok();
    let mut links = pod.link_names();
    links.sort();
    assert_eq!(links, vec!["blue2", "data0", "eth0", "net1"]);
    let names: Vec<String> = k
        .status("ns1", "p2")
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s["name"].as_str().unwrap(),
                s["interface"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "cluster-net=eth0",
            "ns1/blue=net1",
            "other/green=data0",
            "ns1/blue=blue2"
        ]
    );
    k.del("short", &pod, "ns1", "p2", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
}

/// The product binary is static (glibc's own files/dns lookups, no NSS libraries of the node):
/// a kubeconfig naming the API server by host name must still resolve and connect.
#[test]
fn an_api_server_named_by_host_name_is_reached() {
    let k = K::new();
    let by_name = KubeconfigOptions {
        file_name: "kubeconfig-localhost".into(),
        host: "localhost".into(),
        ..Default::default()
    };
    let kubeconfig = k
        .api
        .write_kubeconfig_with(k.node.root(), &by_name)
        .expect("kubeconfig");
    k.bridge_nad("default", "blue", "br-b", "10.101.0.0/24");
    let (pod, uid) = k.pod("default", "named", &[(NETWORKS, "blue")]);
    let mut conf = k.conf("1.0.0");
    conf["kubeconfig"] = json!(kubeconfig);
    k.add("byname", &pod, "default", "named", &uid, &conf).ok();
    let status = k.status("default", "named");
    let names: Vec<&str> = status
        .iter()
        .map(|s| s["interface"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["eth0", "net1"]);
    k.del("byname", &pod, "default", "named", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
}

/// The bearer token of the kubeconfig (the stand-in's): the credential a log must never show.
fn kubeconfig_token(kubeconfig: &std::path::Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the kubeconfig is JSON");
    doc["users"][0]["user"]["token"]
        .as_str()
        .expect("a token in the kubeconfig")
        .to_string()
}

/// At the most detailed log level (every crate's debug events: kube, hyper, rustls), a
/// successful ADD/DEL and an ADD refused for a wrong token leave no credential in the log file,
/// on stderr or in the result.
#[test]
fn credentials_never_reach_the_log_or_the_result() {
    let k = K::new();
    let token = kubeconfig_token(&k.kubeconfig);
    assert!(token.len() >= 16, "a real token: {token:?}");
    k.bridge_nad("default", "blue", "br-b", "10.101.0.0/24");
    let (pod, uid) = k.pod("default", "creds", &[(NETWORKS, "blue")]);
    let log = k.node.root().join("multus.log");
    let mut conf = k.conf("1.0.0");
    conf["logLevel"] = json!("debug");
    conf["logFile"] = json!(log);
    conf["logToStderr"] = json!(true);
    let mut outputs = Vec::new();
    let add = k.add("creds", &pod, "default", "creds", &uid, &conf);
    add.ok();
    outputs.push(add);
    let del = k.del("creds", &pod, "default", "creds", &uid, &conf);
    del.assert_ok();
    outputs.push(del);

    let wrong = KubeconfigOptions {
        file_name: "kubeconfig-wrong".into(),
        auth: KubeconfigAuth::WrongToken,
        ..Default::default()
    };
    let wrong_path = k
        .api
        .write_kubeconfig_with(k.node.root(), &wrong)
        .expect("kubeconfig");
    let wrong_token = kubeconfig_token(&wrong_path);
    conf["kubeconfig"] = json!(wrong_path);
    let refused = k.add("creds2", &pod, "default", "creds", &uid, &conf);
    assert!(
        !refused.status.success(),
        "a wrong token is refused: {}",
        refused.stdout
    );
    outputs.push(refused);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("calling delegate"),
        "debug events are logged: {text}"
    );
    for secret in [&token, &wrong_token] {
        assert!(
            !text.contains(secret.as_str()),
            "the log shows a token:\n{text}"
        );
        for out in &outputs {
            assert!(
                !out.stdout.contains(secret.as_str()),
                "stdout shows a token: {}",
                out.stdout
            );
            assert!(
                !out.stderr.contains(secret.as_str()),
                "stderr shows a token: {}",
                out.stderr
            );
        }
    }
    k.assert_clean(&pod);
}

#[test]
fn invalid_annotations_are_rejected_naming_the_field_and_leave_nothing() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let conf = k.conf("1.0.0");
    let cases: &[(&str, &str, u64)] = &[
        ("blue,,blue", "element 1", 7),
        ("Blue", "not a valid NetworkAttachmentDefinition name", 7),
        ("blue@this-is-too-long-x", "longer than 15", 7),
        (r#"[{"name":"blue","ips":["300.1.1.1"]}]"#, "\"ips\"", 7),
        (r#"[{"name":"blue","mac":"nope"}]"#, "\"mac\"", 7),
        (
            r#"[{"name":"blue","default-route":["x"]}]"#,
            "\"default-route\"",
            7,
        ),
        (
            r#"[{"name":"blue","portMappings":[{"hostPort":99999,"containerPort":1}]}]"#,
            "\"portMappings\"",
            7,
        ),
        (
            r#"[{"name":"blue","bandwidth":{"bogus":1}}]"#,
            "\"bandwidth\"",
            7,
        ),
        (r#"[{"name":"blue","cni-args":"x"}]"#, "\"cni-args\"", 7),
        (
            r#"[{"name":"blue","infiniband-guid":"1"}]"#,
            "\"infiniband-guid\"",
            7,
        ),
        (r#"[{"name":"blue","deviceID":""}]"#, "\"deviceID\"", 7),
        (
            r#"[{"name":"blue","ipam-claim-reference":"UP"}]"#,
            "\"ipam-claim-reference\"",
            7,
        ),
        (r#"[{"name":"blue"}"#, "not valid JSON", 7),
        ("missing-nad", "not found", 7),
        ("blue@eth0", "more than one network", 7),
    ];
    for (i, (value, needle, code)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        let (pod, uid) = k.pod("ns1", &name, &[(NETWORKS, value)]);
        let out = k.add(&name, &pod, "ns1", &name, &uid, &conf);
        assert_eq!(out.err_code(), *code, "{value}: {}", out.stdout);
        assert!(
            out.err_msg().contains(needle),
            "{value}: expected {needle:?} in {}",
            out.err_msg()
        );
        k.assert_clean(&pod);
    }
}

#[test]
fn cluster_network_resolution_order_and_nad_from_conf_dir() {
    let k = K::new();
    std::fs::create_dir_all(k.conf_dir()).unwrap();
    let file_net = confs::bridge(
        "cluster-net",
        "br-file",
        "10.110.0.0/24",
        "1.0.0",
        &k.node.ipam_dir(),
    );
    std::fs::write(k.conf_dir().join("10-cluster.conf"), file_net.to_string()).unwrap();
    let dir = k.node.root().join("netdir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("20-b.conf"),
        confs::bridge(
            "b",
            "br-dir-b",
            "10.112.0.0/24",
            "1.0.0",
            &k.node.ipam_dir(),
        )
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("10-a.conflist"),
        confs::bridge_tuning_list(
            "a",
            "br-dir-a",
            "10.111.0.0/24",
            "1.0.0",
            &k.node.ipam_dir(),
        )
        .to_string(),
    )
    .unwrap();
    // NAD with an empty spec.config: its conf comes from confDir by name, NAD name injected.
    let onfile = confs::bridge(
        "from-file",
        "br-of",
        "10.113.0.0/24",
        "1.0.0",
        &k.node.ipam_dir(),
    );
    std::fs::write(k.conf_dir().join("30-from-file.conf"), onfile.to_string()).unwrap();
    k.api
        .create_nad(NadSeed::new("ns1", "from-file", ""))
        .unwrap();
    // A NAD without a name in its config gets the NAD's name.
    let unnamed =
        json!({"cniVersion": "1.0.0", "type": "cni-recorder", "recordDir": k.node.records_dir()});
    k.api
        .create_nad(NadSeed::new("ns1", "unnamed", unnamed.to_string()))
        .unwrap();
    let mut cases = vec![
        ("cluster-net", "10.110.0."),         // no NAD yet: confDir by name
        (dir.to_str().unwrap(), "10.111.0."), // a directory: its alphabetically first conf
        ("/nonexistent/../x", ""),            // neither: error
    ];
    let file = dir.join("20-b.conf");
    cases.push((file.to_str().unwrap(), "10.112.0."));
    for (i, (reference, prefix)) in cases.iter().enumerate() {
        let mut conf = k.conf("1.0.0");
        conf.as_object_mut().unwrap().remove("delegates");
        conf["clusterNetwork"] = json!(reference);
        let name = format!("order{i}");
        let (pod, uid) = k.pod("ns1", &name, &[(NETWORKS, "from-file,unnamed")]);
        let out = k.add(&name, &pod, "ns1", &name, &uid, &conf);
        if prefix.is_empty() {
            assert_eq!(out.err_code(), 7, "{}", out.stdout);
            assert!(out.err_msg().contains("not found"), "{}", out.err_msg());
            continue;
        }
        assert!(
            pod.addresses("eth0")[0].starts_with(prefix),
            "{reference}: {:?}",
            pod.addresses("eth0")
        );
        assert!(
            pod.addresses("net1")[0].starts_with("10.113.0."),
            "NAD with empty config from confDir"
        );
        let rec: Value = serde_json::from_str(
            &std::fs::read_to_string(k.node.records_dir().join(format!("ADD-{name}-net2.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(rec["stdin"]["name"], "unnamed", "NAD name injected");
        k.del(&name, &pod, "ns1", &name, &uid, &conf).assert_ok();
        k.assert_clean(&pod);
    }
    // With a NAD of that name in multusNamespace, the NAD wins over the file.
    k.bridge_nad("kube-system", "cluster-net", "br-nad", "10.114.0.0/24");
    let mut conf = k.conf("1.0.0");
    conf.as_object_mut().unwrap().remove("delegates");
    conf["clusterNetwork"] = json!("cluster-net");
    let (pod, uid) = k.pod("ns1", "order-nad", &[]);
    k.add("ordernad", &pod, "ns1", "order-nad", &uid, &conf)
        .ok();
    assert!(pod.addresses("eth0")[0].starts_with("10.114.0."));
    assert_eq!(
        k.status("ns1", "order-nad")[0]["name"],
        "kube-system/cluster-net"
    );
    k.del("ordernad", &pod, "ns1", "order-nad", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn namespace_isolation_default_network_override_and_default_networks() {
    let k = K::new();
    k.bridge_nad("team-b", "secret", "br-x", "10.120.0.0/24");
    k.bridge_nad("default", "shared", "br-sh", "10.121.0.0/24");
    k.bridge_nad("kube-system", "alt-cluster", "br-alt", "10.122.0.0/24");
    k.bridge_nad("kube-system", "extra", "br-ex", "10.123.0.0/24");
    let mut conf = k.conf("1.0.0");
    conf["namespaceIsolation"] = json!(true);
    conf["defaultNetworks"] = json!(["extra"]);
    // Isolation: another namespace is refused; the global one ("default") is allowed.
    let (pod, uid) = k.pod("team-a", "iso1", &[(NETWORKS, "team-b/secret")]);
    let out = k.add("iso1", &pod, "team-a", "iso1", &uid, &conf);
    assert_eq!(out.err_code(), 7);
    assert!(
        out.err_msg().contains("namespace isolation"),
        "{}",
        out.err_msg()
    );
    k.assert_clean(&pod);
    let (pod, uid) = k.pod(
        "team-a",
        "iso2",
        &[
            (NETWORKS, "default/shared"),
            ("v1.multus-cni.io/default-network", "alt-cluster"),
        ],
    );
    k.add("iso2", &pod, "team-a", "iso2", &uid, &conf).ok();
    assert!(
        pod.addresses("eth0")[0].starts_with("10.122.0."),
        "default-network override replaces the cluster network"
    );
    assert!(
        pod.addresses("net1")[0].starts_with("10.123.0."),
        "defaultNetworks come next"
    );
    assert!(
        pod.addresses("net2")[0].starts_with("10.121.0."),
        "then the annotation's networks"
    );
    k.del("iso2", &pod, "team-a", "iso2", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
    // System namespaces do not get defaultNetworks.
    let (pod, uid) = k.pod("kube-system", "sys", &[]);
    k.add("sys", &pod, "kube-system", "sys", &uid, &conf).ok();
    assert_eq!(pod.link_names(), vec!["eth0"]);
    k.del("sys", &pod, "kube-system", "sys", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
    // Two default-network entries are refused.
    let (pod, uid) = k.pod(
        "team-a",
        "two",
        &[("v1.multus-cni.io/default-network", "a,b")],
    );
    assert_eq!(
        k.add("two", &pod, "team-a", "two", &uid, &conf).err_code(),
        7
    );
    k.assert_clean(&pod);
}

#[test]
fn network_status_in_every_cni_version() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    for (i, v) in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("ver{i}");
        let (pod, uid) = k.pod("ns1", &name, &[(NETWORKS, "blue")]);
        let mut conf = k.conf(v);
        let cluster_v = if *v == "1.1.0" { "1.0.0" } else { v };
        conf["delegates"] = json!([confs::bridge(
            "cluster-net",
            "br-c",
            "10.100.0.0/24",
            cluster_v,
            &k.node.ipam_dir()
        )]);
        let out = k.add(&name, &pod, "ns1", &name, &uid, &conf);
        assert_eq!(out.ok()["cniVersion"], *v);
        let status = k.status("ns1", &name);
        assert_eq!(status.len(), 2, "{v}: {status:?}");
        assert_eq!(status[0]["interface"], "eth0");
        assert!(
            status[0]["ips"][0]
                .as_str()
                .unwrap()
                .starts_with("10.100.0."),
            "{v}: {status:?}"
        );
        assert_eq!(status[1]["interface"], "net1");
        assert!(
            status[1]["ips"][0]
                .as_str()
                .unwrap()
                .starts_with("10.101.0."),
            "{v}"
        );
        assert!(
            status[1]["mac"].is_string() && status[1]["mtu"].is_u64(),
            "{v}: {status:?}"
        );
        k.del(&name, &pod, "ns1", &name, &uid, &conf).assert_ok();
        k.assert_clean(&pod);
    }
}

#[test]
fn default_route_moves_to_the_requested_gateway_and_conflicts_are_refused() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    k.bridge_nad("ns1", "green", "br-g", "10.102.0.0/24");
    let conf = k.conf("1.0.0");
    let ann = r#"[{"name":"blue","default-route":["10.101.0.1"]},{"name":"green"}]"#;
    let (pod, uid) = k.pod("ns1", "dr", &[(NETWORKS, ann)]);
    k.add("dr", &pod, "ns1", "dr", &uid, &conf).ok();
    let defaults = ipv4_defaults(&pod);
    assert_eq!(
        defaults.len(),
        1,
        "exactly one IPv4 default route: {defaults:?}"
    );
    assert_eq!(defaults[0]["gateway"], "10.101.0.1");
    assert_eq!(defaults[0]["dev"], "net1");
    let status = k.status("ns1", "dr");
    assert_eq!(
        status
            .iter()
            .map(|s| s["default"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![false, true, false]
    );
    k.del("dr", &pod, "ns1", "dr", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    // "default-route": [] is no request at all (the reference wrongly deletes the route).
    let (pod, uid) = k.pod(
        "ns1",
        "dr-empty",
        &[(NETWORKS, r#"[{"name":"blue","default-route":[]}]"#)],
    );
    k.add("dr-empty", &pod, "ns1", "dr-empty", &uid, &conf).ok();
    let defaults = ipv4_defaults(&pod);
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0]["dev"], "eth0");
    k.del("dr-empty", &pod, "ns1", "dr-empty", &uid, &conf)
        .assert_ok();
    // Two networks asking for the IPv4 default route: refused before anything is made.
    let ann = r#"[{"name":"blue","default-route":["10.101.0.1"]},{"name":"green","default-route":["10.102.0.1"]}]"#;
    let (pod, uid) = k.pod("ns1", "dr-conflict", &[(NETWORKS, ann)]);
    let out = k.add("drc", &pod, "ns1", "dr-conflict", &uid, &conf);
    assert_eq!(out.err_code(), 7);
    assert!(
        out.err_msg().contains("more than one network"),
        "{}",
        out.err_msg()
    );
    k.assert_clean(&pod);
    // An unreachable gateway: the route cannot be set, everything is rolled back.
    let (pod, uid) = k.pod(
        "ns1",
        "dr-bad",
        &[(
            NETWORKS,
            r#"[{"name":"blue","default-route":["192.0.2.1"]}]"#,
        )],
    );
    let out = k.add("drb", &pod, "ns1", "dr-bad", &uid, &conf);
    assert!(out.err_code() >= 100, "{}", out.stdout);
    assert!(out.err_msg().contains("192.0.2.1"), "{}", out.err_msg());
    k.assert_clean(&pod);
}

/// `default-route` moving the pod's default route to a network whose chain ends with `ebpf-sbr`
/// (the SBR state was made while the default still left by eth0): multus brings the SBR state up
/// to date after the route change, so CHECK of the whole pod passes, and DEL leaves no pin.
#[test]
fn default_route_to_an_ebpf_sbr_network_keeps_check_passing() {
    let k = K::new();
    k.node.install("ebpf-sbr", &bins::product("ebpf-sbr"));
    let bpffs = testkit::bpffs::Bpffs::new();
    let config = json!({"cniVersion": "1.0.0", "name": "blue", "plugins": [
        {"type": "bridge", "bridge": "br-b", "isGateway": true, "ipam": {"type": "host-local",
            "subnet": "10.101.0.0/24", "gateway": "10.101.0.1", "dataDir": k.node.ipam_dir()}},
        {"type": "ebpf-sbr", "bpffsDir": bpffs.path()}]});
    k.api
        .create_nad(NadSeed::new("ns1", "blue", config.to_string()))
        .expect("nad");
    let conf = k.conf("1.0.0");
    let ann = r#"[{"name":"blue","default-route":["10.101.0.1"]}]"#;
    let (pod, uid) = k.pod("ns1", "drs", &[(NETWORKS, ann)]);
    k.add("drs", &pod, "ns1", "drs", &uid, &conf).ok();
    let defaults = ipv4_defaults(&pod);
    assert_eq!(defaults.len(), 1, "{defaults:?}");
    assert_eq!(defaults[0]["dev"], "net1");
    assert!(
        bpffs.entries().contains(&"drs".to_string()),
        "ebpf-sbr made the pod: {:?}",
        bpffs.entries()
    );
    k.call("CHECK", "drs", &pod, "ns1", "drs", &uid)
        .run(&k.node, &k.multus, &conf)
        .assert_ok();
    k.del("drs", &pod, "ns1", "drs", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    assert_eq!(bpffs.entries(), Vec::<String>::new(), "pins left behind");
}

/// A pod named like a system namespace, in an ordinary namespace, is an ordinary pod: it gets
/// its networks and its network-status (the reference checks the pod's name, not its namespace,
/// against `systemNamespaces` when it writes network-status).
#[test]
fn a_pod_named_like_a_system_namespace_gets_its_network_status() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let conf = k.conf("1.0.0");
    let (pod, uid) = k.pod("ns1", "kube-system", &[(NETWORKS, "blue")]);
    k.add("kss", &pod, "ns1", "kube-system", &uid, &conf).ok();
    assert_eq!(pod.link_names().len(), 2);
    assert_eq!(k.status("ns1", "kube-system").len(), 2);
    k.del("kss", &pod, "ns1", "kube-system", &uid, &conf)
        .assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn api_faults_are_retried_within_the_deadline() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let conf = k.conf("1.0.0");
    // Transient 500s and 429s on the pod GET, then success.
    let (pod, uid) = k.pod("ns1", "f1", &[(NETWORKS, "blue")]);
    k.api.inject(
        Fault::status(500)
            .method("GET")
            .path("/api/v1/namespaces/ns1/pods/f1")
            .times(3),
    );
    k.api.inject(
        Fault::too_many_requests(0)
            .method("GET")
            .path("/apis/k8s.cni.cncf.io/v1/namespaces/ns1/network-attachment-definitions/blue")
            .times(2),
    );
    k.api.inject(
        Fault::status(409)
            .method("PATCH")
            .path("/api/v1/namespaces/ns1/pods/f1")
            .times(2),
    );
    k.add("f1", &pod, "ns1", "f1", &uid, &conf).ok();
    assert_eq!(
        k.api.request_count("GET", "/api/v1/namespaces/ns1/pods/f1"),
        4,
        "three failures then success"
    );
    assert_eq!(
        k.api
            .request_count("PATCH", "/api/v1/namespaces/ns1/pods/f1"),
        3,
        "conflicts retried"
    );
    assert_eq!(k.status("ns1", "f1").len(), 2);
    k.del("f1", &pod, "ns1", "f1", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    // The pod deleted while multus works: not an ADD failure.
    let (pod, uid) = k.pod("ns1", "f2", &[(NETWORKS, "blue")]);
    k.api.inject(
        Fault::delete_target()
            .method("PATCH")
            .path("/api/v1/namespaces/ns1/pods/f2")
            .times(1),
    );
    k.add("f2", &pod, "ns1", "f2", &uid, &conf).ok();
    assert_eq!(pod.link_names().len(), 2);
    k.del("f2", &pod, "ns1", "f2", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    // Persistent 500s: ADD gives up at the deadline with "try again later" and leaves nothing.
    let mut short = conf.clone();
    short["apiDeadlineSeconds"] = json!(1);
    let (pod, uid) = k.pod("ns1", "f3", &[(NETWORKS, "blue")]);
    let id = k.api.inject(
        Fault::status(503)
            .method("GET")
            .path("/api/v1/namespaces/ns1/pods/f3")
            .always(),
    );
    let out = k.add("f3", &pod, "ns1", "f3", &uid, &short);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(
        out.elapsed < Duration::from_secs(4),
        "bounded by the deadline: {:?}",
        out.elapsed
    );
    k.assert_clean(&pod);
    k.api.remove_fault(id);
    // A full outage: connection refused, retried, then "try again later".
    k.api.begin_outage().unwrap();
    let out = k.add("f3", &pod, "ns1", "f3", &uid, &short);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(out.elapsed < Duration::from_secs(4));
    k.assert_clean(&pod);
    k.api.end_outage().unwrap();
    // Latency within the deadline is fine.
    k.api.set_latency(Duration::from_millis(100));
    k.add("f3", &pod, "ns1", "f3", &uid, &conf).ok();
    k.api.set_latency(Duration::ZERO);
    k.del("f3", &pod, "ns1", "f3", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn del_works_without_the_api_from_the_cache_and_bounded_without_it() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let conf = k.conf("1.0.0");
    let (pod, uid) = k.pod("ns1", "d1", &[(NETWORKS, "blue")]);
    k.add("d1", &pod, "ns1", "d1", &uid, &conf).ok();
    k.api.begin_outage().unwrap();
    k.api.reset_requests();
    let out = k.del("d1", &pod, "ns1", "d1", &uid, &conf);
    out.assert_ok();
    assert!(
        out.elapsed < Duration::from_secs(1),
        "DEL from the cache does not wait for the API: {:?}",
        out.elapsed
    );
    k.assert_clean(&pod);
    k.api.end_outage().unwrap();
    assert_eq!(
        k.api.requests().len(),
        0,
        "DEL with a cache makes no API call"
    );
    // Pod gone from the API: DEL from the cache.
    let (pod, uid) = k.pod("ns1", "d2", &[(NETWORKS, "blue")]);
    k.add("d2", &pod, "ns1", "d2", &uid, &conf).ok();
    k.api.delete_pod("ns1", "d2");
    k.del("d2", &pod, "ns1", "d2", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    // No cache and no API: the configured networks are cleaned within the DEL deadline.
    let (pod, uid) = k.pod("ns1", "d3", &[(NETWORKS, "blue")]);
    k.add("d3", &pod, "ns1", "d3", &uid, &conf).ok();
    std::fs::remove_file(k.node.cache_dir().join("d3")).unwrap();
    // With the API up, DEL rebuilds the attachments from the pod and frees the NAD network too.
    k.del("d3", &pod, "ns1", "d3", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    let (pod, uid) = k.pod("ns1", "d4", &[]);
    k.add("d4", &pod, "ns1", "d4", &uid, &conf).ok();
    std::fs::remove_file(k.node.cache_dir().join("d4")).unwrap();
    k.api.begin_outage().unwrap();
    let out = k.del("d4", &pod, "ns1", "d4", &uid, &conf);
    out.assert_ok();
    assert!(
        out.elapsed < Duration::from_secs(3),
        "bounded: {:?}",
        out.elapsed
    );
    k.assert_clean(&pod);
}

#[test]
fn pod_identity_uid_mismatch_static_pods_and_missing_pods() {
    let k = K::new();
    let conf = k.conf("1.0.0");
    let (pod, _uid) = k.pod("ns1", "u1", &[]);
    let out = k.add("u1", &pod, "ns1", "u1", "some-other-uid", &conf);
    assert!(out.err_msg().contains("recreated"), "{}", out.stdout);
    k.assert_clean(&pod);
    let (pod, _) = k.pod(
        "ns1",
        "static",
        &[
            ("kubernetes.io/config.mirror", "abc"),
            ("kubernetes.io/config.source", "file"),
        ],
    );
    k.add("st", &pod, "ns1", "static", "kubelet-uid", &conf)
        .ok();
    k.del("st", &pod, "ns1", "static", "kubelet-uid", &conf)
        .assert_ok();
    // No pod in the API (a static pod before its mirror exists): the cluster network only.
    let pod = Netns::new("kp");
    k.add("ghost", &pod, "ns1", "ghost", "x", &conf).ok();
    assert_eq!(pod.link_names(), vec!["eth0"]);
    k.del("ghost", &pod, "ns1", "ghost", "x", &conf).assert_ok();
    k.assert_clean(&pod);
}

#[test]
fn twenty_pods_in_parallel() {
    let k = Arc::new(K::new());
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let conf = Arc::new(k.conf("1.0.0"));
    let pods: Vec<_> = (0..20)
        .map(|i| Arc::new(k.pod("ns1", &format!("par{i}"), &[(NETWORKS, "blue")])))
        .collect();
    let run = |cmd: &'static str| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (k, conf, p) = (k.clone(), conf.clone(), p.clone());
                std::thread::spawn(move || {
                    let name = format!("par{i}");
                    let out = k
                        .call(cmd, &name, &p.0, "ns1", &name, &p.1)
                        .run(&k.node, &k.multus, &conf);
                    out.assert_ok();
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    };
    run("ADD");
    for i in 0..20 {
        assert_eq!(k.status("ns1", &format!("par{i}")).len(), 2);
    }
    assert_eq!(leaks::host_local_leases(&k.node.ipam_dir()).len(), 40);
    run("DEL");
    for p in &pods {
        k.assert_clean(&p.0);
    }
}

#[test]
fn device_resources_are_injected_and_device_info_reaches_network_status() {
    use testkit::kubelet_podresources::{FakePod, PodResourcesServer};
    let k = K::new();
    let kubelet_dir = k.node.root().join("kubelet");
    std::fs::create_dir_all(&kubelet_dir).unwrap();
    let kubelet = PodResourcesServer::start(&kubelet_dir.join("kubelet.sock"));
    let devinfo = k.node.root().join("devinfo");
    let rec = json!({"cniVersion": "1.0.0", "name": "sriov-net", "plugins": [{"type": "cni-recorder", "recordDir": k.node.records_dir(),
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}}]});
    k.api
        .create_nad(
            NadSeed::new("ns1", "sriov-net", rec.to_string()).resource_name("example.com/vf"),
        )
        .unwrap();
    let (pod, uid) = k.pod("ns1", "dev", &[(NETWORKS, "sriov-net@vf0,sriov-net@vf1")]);
    kubelet.set_pods(vec![FakePod::with_devices(
        "ns1",
        "dev",
        &[("example.com/vf", &["0000:03:02.1", "0000:03:02.2"])],
    )]);
    // The device plugin left a device-info file for the first device.
    std::fs::create_dir_all(devinfo.join("dp")).unwrap();
    let dp_info =
        json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:02.1"}});
    std::fs::write(
        devinfo
            .join("dp")
            .join("example.com-vf-0000:03:02.1-device.json"),
        dp_info.to_string(),
    )
    .unwrap();
    let mut conf = k.conf("1.0.0");
    conf["podResourcesSocket"] = json!(kubelet.socket());
    conf["deviceCheckpointFile"] = json!(k.node.root().join("no-checkpoint"));
    conf["deviceInfoDir"] = json!(devinfo);
    k.add("dev", &pod, "ns1", "dev", &uid, &conf).ok();
    let rec = |ifname: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(k.node.records_dir().join(format!("ADD-dev-{ifname}.json")))
                .unwrap(),
        )
        .unwrap()
    };
    let (a, b) = (rec("vf0"), rec("vf1"));
    assert_eq!(a["stdin"]["deviceID"], "0000:03:02.1");
    assert_eq!(a["stdin"]["pciBusID"], "0000:03:02.1");
    assert_eq!(a["stdin"]["runtimeConfig"]["deviceID"], "0000:03:02.1");
    assert_eq!(
        b["stdin"]["deviceID"], "0000:03:02.2",
        "the second network of the same resource gets the next device"
    );
    let info_file = a["stdin"]["runtimeConfig"]["CNIDeviceInfoFile"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        std::path::Path::new(&info_file).exists(),
        "pre-filled from the device plugin's file"
    );
    let status = k.status("ns1", "dev");
    assert_eq!(status[1]["device-info"], dp_info);
    assert!(
        status[2].get("device-info").is_none(),
        "no device-info file for the second device"
    );
    k.del("dev", &pod, "ns1", "dev", &uid, &conf).assert_ok();
    assert!(
        !std::path::Path::new(&info_file).exists(),
        "DEL removes the device-info file"
    );
    k.assert_clean(&pod);
    // Neither the kubelet nor a checkpoint: "try again later", nothing made.
    drop(kubelet);
    let (pod, uid) = k.pod("ns1", "dev2", &[(NETWORKS, "sriov-net")]);
    let out = k.add("dev2", &pod, "ns1", "dev2", &uid, &conf);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(out.err_msg().contains("kubelet"), "{}", out.err_msg());
    k.assert_clean(&pod);
}

/// The pod's events read back with the real `kubectl get events` (JSON), oldest first.
fn kubectl_events(k: &K, namespace: &str, pod: &str) -> Vec<Value> {
    let out = k
        .node
        .ns
        .command("kubectl")
        .arg(format!("--kubeconfig={}", k.kubeconfig.display()))
        .arg(format!(
            "--cache-dir={}",
            k.node.root().join("kcache").display()
        ))
        .args(["get", "events", "-n", namespace, "-o", "json"])
        .arg(format!("--field-selector=involvedObject.name={pod}"))
        .output()
        .expect("kubectl (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|e| {
        e["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    items
}

#[test]
fn an_add_records_one_added_interface_event_per_attachment() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    k.bridge_nad("ns1", "red", "br-r", "10.102.0.0/24");
    let conf = k.conf("1.0.0");
    let (pod, uid) = k.pod("ns1", "ev1", &[(NETWORKS, "blue,red")]);
    let out = k.add("ev1", &pod, "ns1", "ev1", &uid, &conf);
    out.ok();
    assert_eq!(
        out.stderr.matches("connecting to").count(),
        1,
        "the pod GET, the NAD GETs, the status PATCH and the events share one connection (the kube client's debug log)"
    );
    let events = kubectl_events(&k, "ns1", "ev1");
    let address = |ifname: &str| {
        let a = pod.addresses(ifname);
        assert_eq!(a.len(), 1, "{ifname}: {a:?}");
        a[0].clone()
    };
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        vec![
            format!("Add eth0 [{}] from cluster-net", address("eth0")),
            format!("Add net1 [{}] from ns1/blue", address("net1")),
            format!("Add net2 [{}] from ns1/red", address("net2")),
        ],
        "the reference's message, in ADD order"
    );
    for e in &events {
        assert_eq!(e["reason"], "AddedInterface");
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["source"]["component"], "multus");
        assert_eq!(e["reportingComponent"], "multus");
        assert_eq!(e["count"], 1);
        assert_eq!(e["metadata"]["namespace"], "ns1");
        assert!(e["metadata"]["name"].as_str().unwrap().starts_with("ev1."));
        assert_eq!(
            e["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "namespace": "ns1", "name": "ev1", "uid": uid})
        );
    }
    assert_eq!(
        k.api.request_count("POST", "/api/v1/namespaces/ns1/events"),
        3
    );
    // DEL records nothing.
    k.del("ev1", &pod, "ns1", "ev1", &uid, &conf).assert_ok();
    assert_eq!(kubectl_events(&k, "ns1", "ev1").len(), 3);
    k.assert_clean(&pod);
}

#[test]
fn a_failed_add_records_a_warning_event() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let broken = json!({"cniVersion": "1.0.0", "name": "broken", "type": "cni-recorder",
        "recordDir": k.node.records_dir(), "failOn": "ADD"});
    k.api
        .create_nad(NadSeed::new("ns1", "broken", broken.to_string()))
        .unwrap();
    let conf = k.conf("1.0.0");
    // A delegate fails: rolled back, and one Warning says why.
    let (pod, uid) = k.pod("ns1", "ev2", &[(NETWORKS, "blue,broken")]);
    let out = k.add("ev2", &pod, "ns1", "ev2", &uid, &conf);
    assert_eq!(out.err_code(), 100, "{}", out.stdout);
    let events = kubectl_events(&k, "ns1", "ev2");
    assert_eq!(
        events.len(),
        1,
        "no AddedInterface for a rolled-back ADD: {events:?}"
    );
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["reason"], "FailedAddNetwork");
    assert_eq!(events[0]["message"], out.err_msg().as_str());
    assert!(
        events[0]["message"]
            .as_str()
            .unwrap()
            .contains("recorder told to fail on ADD"),
        "{events:?}"
    );
    assert_eq!(events[0]["involvedObject"]["uid"], uid.as_str());
    k.assert_clean(&pod);
    // A NetworkAttachmentDefinition that does not exist: the reference's NoNetworkFound.
    let (pod, uid) = k.pod("ns1", "ev3", &[(NETWORKS, "missing")]);
    let out = k.add("ev3", &pod, "ns1", "ev3", &uid, &conf);
    assert_eq!(out.err_code(), 7, "{}", out.stdout);
    let events = kubectl_events(&k, "ns1", "ev3");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["reason"], "NoNetworkFound");
    assert!(
        events[0]["message"]
            .as_str()
            .unwrap()
            .contains("ns1/missing"),
        "{events:?}"
    );
    k.assert_clean(&pod);
}

#[test]
fn events_never_fail_or_hold_an_add() {
    let k = K::new();
    k.bridge_nad("ns1", "blue", "br-b", "10.101.0.0/24");
    let mut conf = k.conf("1.0.0");
    conf["apiDeadlineSeconds"] = json!(1);
    let events_path = "/api/v1/namespaces/ns1/events";
    // The API refuses events (no RBAC for them, say): ADD succeeds, after one attempt.
    let (pod, uid) = k.pod("ns1", "ev4", &[(NETWORKS, "blue")]);
    let refuse = k
        .api
        .inject(Fault::status(403).method("POST").path(events_path).always());
    k.add("ev4", &pod, "ns1", "ev4", &uid, &conf).ok();
    assert_eq!(
        k.api.request_count("POST", events_path),
        1,
        "the first refusal ends the attempt"
    );
    assert_eq!(k.status("ns1", "ev4").len(), 2);
    k.del("ev4", &pod, "ns1", "ev4", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    k.api.remove_fault(refuse);
    // Events that hang: the ADD waits at most the API deadline for them, and succeeds.
    let (pod, uid) = k.pod("ns1", "ev5", &[(NETWORKS, "blue")]);
    let hang = k.api.inject(
        Fault::delay(Duration::from_secs(30))
            .method("POST")
            .path(events_path)
            .always(),
    );
    let out = k.add("ev5", &pod, "ns1", "ev5", &uid, &conf);
    out.assert_ok();
    assert!(
        out.elapsed < Duration::from_millis(2500),
        "events are bounded by the API deadline: {:?}",
        out.elapsed
    );
    k.del("ev5", &pod, "ns1", "ev5", &uid, &conf).assert_ok();
    k.assert_clean(&pod);
    k.api.remove_fault(hang);
    // The API down: ADD fails with "try again later" as before, and no event is tried.
    let (pod, uid) = k.pod("ns1", "ev6", &[(NETWORKS, "blue")]);
    k.api.begin_outage().unwrap();
    let out = k.add("ev6", &pod, "ns1", "ev6", &uid, &conf);
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(
        out.elapsed < Duration::from_millis(2500),
        "one deadline, not two: {:?}",
        out.elapsed
    );
    k.api.end_outage().unwrap();
    assert!(kubectl_events(&k, "ns1", "ev6").is_empty());
    k.assert_clean(&pod);
}
