//! The multus meta-plugin with the reference plugins, in real namespaces: every CNI version,
//! rollback with leak checks, bad inputs, idempotent DEL, torn caches, concurrency, GC, STATUS.
//! Run as root (`cargo xtask test`).

use std::{path::Path, path::PathBuf, sync::Arc};

use serde_json::{json, Value};
use testkit::{bins, confs, leaks, CniCall, Netns, Node};

const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

struct Env {
    node: Node,
    multus: PathBuf,
}

impl Env {
    fn new() -> Env {
        let node = Node::new();
        let multus = bins::product("multus");
        node.install("multus", &multus);
        node.install(
            "cni-recorder",
            Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
        );
        Env { node, multus }
    }

    fn call(&self, command: &str, id: &str, pod: Option<&Netns>) -> CniCall {
        CniCall::new(&self.node, command, id, pod, "eth0")
    }

    fn conf(&self, version: &str, delegates: Vec<Value>) -> Value {
        confs::multus(
            version,
            &self.node.cache_dir(),
            &self.node.bin_dir(),
            delegates,
        )
    }

    fn bridge(&self, name: &str, br: &str, subnet: &str, version: &str) -> Value {
        confs::bridge(name, br, subnet, version, &self.node.ipam_dir())
    }

    fn list(&self, name: &str, br: &str, subnet: &str, version: &str) -> Value {
        confs::bridge_tuning_list(name, br, subnet, version, &self.node.ipam_dir())
    }

    /// Four networks from four reference plugins: bridge, bridge+tuning, ptp, macvlan+static.
    fn four_networks(&self, version: &str) -> Value {
        let mut conf = self.two_networks(version);
        let v = if version == "1.1.0" { "1.0.0" } else { version };
        let ptp = json!({"cniVersion": v, "name": "net-ptp", "type": "ptp",
            "ipam": {"type": "host-local", "subnet": "10.25.0.0/24", "dataDir": self.node.ipam_dir()}});
        let macvlan = json!({"cniVersion": v, "name": "net-mv", "type": "macvlan", "master": "mvl0", "mode": "bridge",
            "ipam": {"type": "static", "addresses": [{"address": "10.26.0.5/24"}]}});
        if self.node.ns.link_names().iter().all(|l| l != "mvl0") {
            self.node.ns.ip(&[
                "link", "add", "mvl0", "type", "veth", "peer", "name", "mvl0p",
            ]);
            self.node.ns.ip(&["link", "set", "mvl0", "up"]);
        }
        conf["delegates"]
            .as_array_mut()
            .unwrap()
            .extend([ptp, macvlan]);
        conf
    }

    fn two_networks(&self, version: &str) -> Value {
        let master_v = if version == "1.1.0" { "1.0.0" } else { version };
        let list_v = match version {
            "0.1.0" | "0.2.0" => "0.3.1",
            "1.1.0" => "1.0.0",
            v => v,
        };
        self.conf(
            version,
            vec![
                self.bridge("net-a", "br-a", "10.10.0.0/24", master_v),
                self.list("net-b", "br-b", "10.20.0.0/24", list_v),
            ],
        )
    }

    fn recorded(&self, command: &str, id: &str, ifname: &str) -> Value {
        let p = self
            .node
            .records_dir()
            .join(format!("{command}-{id}-{ifname}.json"));
        let s = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("no record {}: {e}", p.display()));
        serde_json::from_str(&s).unwrap()
    }

    fn recorder(&self, extra: Value) -> Value {
        let mut r = json!({"type": "cni-recorder", "recordDir": self.node.records_dir()});
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    }

    /// Nothing of the container is left: no pod interfaces, no leases, no cache or lock file.
    fn assert_clean(&self, pod: &Netns) {
        self.node.assert_pod_clean(pod);
        let veths: Vec<String> = self
            .node
            .ns
            .link_names()
            .into_iter()
            .filter(|n| n.starts_with("veth"))
            .collect();
        assert_eq!(
            veths,
            Vec::<String>::new(),
            "host-side veths left on the node"
        );
    }
}

fn ge(v: &str, min: &str) -> bool {
    let p = |s: &str| {
        s.split('.')
            .map(|x| x.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    p(v) >= p(min)
}

#[test]
fn add_check_del_in_every_version() {
    let env = Env::new();
    for v in VERSIONS {
        let pod = Netns::new("pd");
        let id = format!("every-{}", v.replace('.', ""));
        let conf = env.four_networks(v);
        let out = env
            .call("ADD", &id, Some(&pod))
            .run(&env.node, &env.multus, &conf);
        let result = out.ok();
        assert_eq!(result["cniVersion"], v, "result version");
        if ge(v, "0.3.0") {
            let ip = &result["ips"][0];
            assert!(
                ip["address"].as_str().unwrap().starts_with("10.10.0."),
                "{result}"
            );
            assert_eq!(
                ip.get("version").is_some(),
                !ge(v, "1.0.0"),
                "ips[].version presence for {v}: {result}"
            );
            assert!(
                result["interfaces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["name"] == "eth0"),
                "{result}"
            );
        } else {
            assert!(
                result["ip4"]["ip"]
                    .as_str()
                    .unwrap()
                    .starts_with("10.10.0."),
                "{result}"
            );
            assert!(result.get("interfaces").is_none());
        }
        let mut links = pod.link_names();
        links.sort();
        assert_eq!(links, vec!["eth0", "net1", "net2", "net3"], "{v}");
        assert!(pod.addresses("eth0")[0].starts_with("10.10.0."));
        assert!(pod.addresses("net1")[0].starts_with("10.20.0."));
        assert!(pod.addresses("net2")[0].starts_with("10.25.0."), "ptp");
        assert_eq!(
            pod.addresses("net3"),
            vec!["10.26.0.5/24"],
            "macvlan with static IPAM"
        );
        let mtu = pod
            .links()
            .iter()
            .find(|l| l["ifname"] == "net1")
            .map(|l| l["mtu"].clone())
            .unwrap();
        assert_eq!(mtu, 1400, "tuning in the conflist ran with prevResult");
        if ge(v, "0.4.0") {
            env.call("CHECK", &id, Some(&pod))
                .run(&env.node, &env.multus, &conf)
                .assert_ok();
        } else {
            let check = env
                .call("CHECK", &id, Some(&pod))
                .run(&env.node, &env.multus, &conf);
            assert_eq!(check.err_code(), 1, "CHECK needs 0.4.0");
        }
        env.call("DEL", &id, Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .assert_ok();
        env.assert_clean(&pod);
        env.call("DEL", &id, Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .assert_ok();
    }
}

#[test]
fn rollback_at_each_delegate_position_leaves_nothing() {
    let env = Env::new();
    for k in 0..3 {
        let pod = Netns::new("pd");
        let mut delegates = vec![
            env.bridge("n0", "br0", "10.30.0.0/24", "1.0.0"),
            env.list("n1", "br1", "10.31.0.0/24", "1.0.0"),
            env.bridge("n2", "br2", "10.32.0.0/24", "0.4.0"),
        ];
        // Delegate k: bridge and host-local succeed, then tuning fails on a sysctl that does not exist.
        delegates[k] = json!({"cniVersion": "1.0.0", "name": format!("bad{k}"), "plugins": [
            {"type": "bridge", "bridge": format!("brx{k}"), "ipam": {"type": "host-local", "subnet": "10.40.0.0/24", "dataDir": env.node.ipam_dir()}},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.no_such_knob": "1"}}]});
        let conf = env.conf("1.0.0", delegates);
        let id = format!("rollback{k}");
        let out = env
            .call("ADD", &id, Some(&pod))
            .run(&env.node, &env.multus, &conf);
        assert!(out.err_code() > 0);
        assert!(
            out.err_msg().contains(&format!("bad{k}")),
            "error names the failing network: {}",
            out.stdout
        );
        assert!(
            out.json.as_ref().unwrap()["details"]
                .as_str()
                .unwrap_or("")
                .contains("rolled back"),
            "{}",
            out.stdout
        );
        env.assert_clean(&pod);
    }
}

#[test]
fn bad_inputs_get_the_right_code_and_leave_nothing() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let good = env.two_networks("1.0.0");
    let regular_file = env.node.root().join("not-a-netns");
    std::fs::write(&regular_file, b"").unwrap();
    let mut cases: Vec<(&str, CniCall, Vec<u8>, u64)> = Vec::new();
    let base = || env.call("ADD", "bad-input", Some(&pod));
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    cases.push((
        "malformed JSON",
        base(),
        b"{\"cniVersion\": \"1.0.0\", \"type\": ".to_vec(),
        6,
    ));
    cases.push(("empty stdin", base(), Vec::new(), 6));
    cases.push((
        "wrong field type",
        base(),
        bytes(&json!({"cniVersion": "1.0.0", "type": "multus", "delegates": "x"})),
        6,
    ));
    cases.push((
        "no delegates",
        base(),
        bytes(&json!({"cniVersion": "1.0.0", "type": "multus", "cniDir": env.node.cache_dir()})),
        7,
    ));
    cases.push((
        "delegate without type",
        base(),
        bytes(&env.conf("1.0.0", vec![json!({"name": "x"})])),
        7,
    ));
    cases.push((
        "unknown plugin type",
        base(),
        bytes(&env.conf(
            "1.0.0",
            vec![
                env.bridge("a", "br-a", "10.10.0.0/24", "1.0.0"),
                json!({"cniVersion": "1.0.0", "name": "x", "type": "no-such-plugin"}),
            ],
        )),
        7,
    ));
    cases.push((
        "incompatible version",
        base(),
        bytes(&json!({"cniVersion": "0.5.0", "type": "multus", "delegates": [{"type": "bridge"}]})),
        1,
    ));
    let mut c = base();
    c.container_id = "../x".into();
    cases.push(("container id ../x", c, bytes(&good), 4));
    let mut c = base();
    c.ifname = "abcdefghijklmnop".into();
    cases.push(("ifname over 15", c, bytes(&good), 4));
    let mut c = base();
    c.ifname = "et/h0".into();
    cases.push(("ifname with /", c, bytes(&good), 4));
    let mut c = base();
    c.unset.push("CNI_NETNS".into());
    cases.push(("missing netns", c, bytes(&good), 4));
    let mut c = base();
    c.netns = Some("/var/run/netns/does-not-exist-zz".into());
    cases.push(("bogus netns", c, bytes(&good), 3));
    let mut c = base();
    c.netns = Some(regular_file.clone());
    cases.push(("netns not a namespace", c, bytes(&good), 4));
    for var in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"] {
        let mut c = base();
        c.unset.push(var.into());
        cases.push((var, c, bytes(&good), 4));
    }
    for (what, call, stdin, code) in cases {
        let out = call.run_bytes(&env.node, &env.multus, &stdin);
        assert_eq!(out.err_code(), code, "{what}: {}", out.stdout);
        assert!(!out.err_msg().is_empty(), "{what}: message");
        assert_eq!(
            out.stdout.trim().lines().count(),
            1,
            "{what}: exactly one JSON document"
        );
        assert!(
            !out.stderr.contains("panicked"),
            "{what}: panic: {}",
            out.stderr
        );
        env.assert_clean(&pod);
    }
}

#[test]
fn del_is_idempotent_and_survives_missing_netns_and_torn_cache() {
    let env = Env::new();
    let conf = env.two_networks("1.0.0");
    // DEL without ADD.
    env.call("DEL", "never-added", None)
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    // DEL after the netns is gone.
    let pod = Netns::new("pd");
    env.call("ADD", "gone", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .ok();
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 2);
    let path = pod.path().to_path_buf();
    drop(pod);
    let mut del = env.call("DEL", "gone", None);
    del.netns = Some(path);
    let t = std::time::Instant::now();
    del.run(&env.node, &env.multus, &conf).assert_ok();
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    del.run(&env.node, &env.multus, &conf).assert_ok();
    assert_eq!(
        leaks::host_local_leases(&env.node.ipam_dir()),
        Vec::<String>::new()
    );
    assert_eq!(
        leaks::cache_files(&env.node.cache_dir()),
        Vec::<String>::new()
    );
    // A torn cache (power loss during a write) must not wedge DEL.
    for torn in [0usize, 1, 2] {
        let pod = Netns::new("pd");
        let id = format!("torn{torn}");
        env.call("ADD", &id, Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .ok();
        let file = env.node.cache_dir().join(&id);
        let full = std::fs::read(&file).unwrap();
        let cut = [0, full.len() / 2, full.len() - 1][torn];
        std::fs::write(&file, &full[..cut]).unwrap();
        env.call("DEL", &id, Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .assert_ok();
        env.assert_clean(&pod);
    }
}

#[test]
fn thirty_two_containers_in_parallel() {
    let env = Arc::new(Env::new());
    let conf = Arc::new(env.two_networks("1.0.0"));
    let pods: Vec<Arc<Netns>> = (0..32).map(|_| Arc::new(Netns::new("pp"))).collect();
    let handles: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (env, conf, pod) = (env.clone(), conf.clone(), pod.clone());
            std::thread::spawn(move || {
                let out = env.call("ADD", &format!("par{i}"), Some(&pod)).run(
                    &env.node,
                    &env.multus,
                    &conf,
                );
                out.ok()["ips"][0]["address"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let mut ips: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 32, "every container got its own address");
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 64);
    let handles: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (env, conf, pod) = (env.clone(), conf.clone(), pod.clone());
            std::thread::spawn(move || {
                env.call("DEL", &format!("par{i}"), Some(&pod))
                    .run(&env.node, &env.multus, &conf)
                    .assert_ok()
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    for pod in &pods {
        env.assert_clean(pod);
    }
}

#[test]
fn calls_for_one_container_serialize() {
    let env = Arc::new(Env::new());
    let conf = Arc::new(env.two_networks("1.0.0"));
    let pod = Arc::new(Netns::new("pd"));
    for round in 0..5 {
        let add = {
            let (env, conf, pod) = (env.clone(), conf.clone(), pod.clone());
            std::thread::spawn(move || {
                env.call("ADD", "same", Some(&pod))
                    .run(&env.node, &env.multus, &conf)
            })
        };
        let del = {
            let (env, conf, pod) = (env.clone(), conf.clone(), pod.clone());
            std::thread::spawn(move || {
                env.call("DEL", "same", Some(&pod))
                    .run(&env.node, &env.multus, &conf)
            })
        };
        let (a, d) = (add.join().unwrap(), del.join().unwrap());
        d.assert_ok();
        // Whichever ran first, the state is whole: either fully added or fully removed.
        let links = pod.link_names().len();
        let cached = leaks::cache_files(&env.node.cache_dir())
            .iter()
            .any(|f| f == "same");
        if a.status.success() && links == 2 {
            assert!(cached, "round {round}: interfaces without cache");
        } else {
            assert_eq!(links, 0, "round {round}");
        }
        env.call("DEL", "same", Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .assert_ok();
        env.assert_clean(&pod);
    }
}

#[test]
fn delegates_get_runtime_config_args_prev_result_and_unknown_keys() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let master = json!({"cniVersion": "1.0.0", "name": "master-list", "plugins": [
        {"type": "bridge", "bridge": "br-m", "ipam": {"type": "host-local", "subnet": "10.50.0.0/24", "dataDir": env.node.ipam_dir()}},
        env.recorder(json!({"capabilities": {"portMappings": true}, "vendorKey": {"nested": [1, 2]}}))]});
    let second = env.recorder(
        json!({"cniVersion": "1.0.0", "name": "plain", "capabilities": {"bandwidth": false}}),
    );
    let mut conf = env.conf("1.0.0", vec![master, second]);
    conf["capabilities"] = json!({"portMappings": true, "bandwidth": true});
    conf["runtimeConfig"] = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {"ingressRate": 1}});
    conf["x-unknown-top"] = json!("kept");
    let args = testkit::cni::k8s_args("ns1", "p1", None, None);
    env.call("ADD", "rec", Some(&pod))
        .args(&args)
        .run(&env.node, &env.multus, &conf)
        .ok();
    let m = env.recorded("ADD", "rec", "eth0");
    assert_eq!(
        m["stdin"]["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert_eq!(
        m["stdin"]["vendorKey"],
        json!({"nested": [1, 2]}),
        "unknown keys survive"
    );
    assert_eq!(m["stdin"]["name"], "master-list");
    assert!(
        m["stdin"]["prevResult"]["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.50.0."),
        "prevResult chained"
    );
    assert_eq!(m["env"]["CNI_ARGS"], args);
    let s = env.recorded("ADD", "rec", "net1");
    assert!(
        s["stdin"].get("runtimeConfig").is_none(),
        "no capability, no runtimeConfig: {s}"
    );
    assert_eq!(s["env"]["CNI_ARGS"], args);
    env.call("DEL", "rec", Some(&pod))
        .args(&args)
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    let d = env.recorded("DEL", "rec", "eth0");
    assert!(
        d["stdin"]["prevResult"]["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.50.0."),
        "DEL gets the cached result"
    );
    assert!(
        d["stdin"]["runtimeConfig"]["portMappings"].is_array(),
        "DEL gets the same runtimeConfig"
    );
    env.assert_clean(&pod);
}

#[test]
fn master_plugin_gets_the_runtime_ifname_and_gives_the_result() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let mut b = env.bridge("second", "br-b", "10.61.0.0/24", "1.0.0");
    b["masterplugin"] = json!(true);
    let conf = env.conf(
        "1.0.0",
        vec![env.bridge("first", "br-a", "10.60.0.0/24", "1.0.0"), b],
    );
    let out = env
        .call("ADD", "master", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert!(out.ok()["ips"][0]["address"]
        .as_str()
        .unwrap()
        .starts_with("10.61.0."));
    assert!(pod.addresses("eth0")[0].starts_with("10.61.0."));
    assert!(pod.addresses("net0")[0].starts_with("10.60.0."));
    env.call("DEL", "master", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pod);
}

#[test]
fn check_detects_a_removed_interface() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let conf = env.two_networks("1.0.0");
    env.call("ADD", "chk", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .ok();
    env.call("CHECK", "chk", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    pod.ip(&["link", "del", "net1"]);
    let out = env
        .call("CHECK", "chk", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert!(out.err_code() > 0);
    assert!(out.err_msg().contains("net-b"), "{}", out.stdout);
    assert_eq!(
        env.call("CHECK", "never", Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .err_code(),
        3
    );
    env.call("DEL", "chk", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pod);
}

#[test]
fn delegate_timeout_rolls_back() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let mut conf = env.conf(
        "1.0.0",
        vec![
            env.bridge("fast", "br-a", "10.70.0.0/24", "1.0.0"),
            env.recorder(json!({"cniVersion": "1.0.0", "name": "slow", "sleepMs": 10000})),
        ],
    );
    conf["delegateTimeoutSeconds"] = json!(1);
    let out = env
        .call("ADD", "slow", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert!(out.err_code() >= 100, "{}", out.stdout);
    assert!(out.err_msg().contains("did not finish"), "{}", out.stdout);
    assert!(
        out.elapsed < std::time::Duration::from_secs(8),
        "killed at the deadline, took {:?}",
        out.elapsed
    );
    env.assert_clean(&pod);
}

#[test]
fn gc_removes_exactly_the_stale_containers_and_forwards_valid_attachments() {
    let env = Env::new();
    let conf = env.conf(
        "1.1.0",
        vec![
            env.bridge("net-a", "br-a", "10.80.0.0/24", "1.0.0"),
            env.recorder(json!({"cniVersion": "1.1.0", "name": "rec"})),
        ],
    );
    let pods: Vec<Netns> = (0..3).map(|_| Netns::new("pd")).collect();
    for (i, pod) in pods.iter().enumerate() {
        env.call("ADD", &format!("gc{i}"), Some(pod))
            .run(&env.node, &env.multus, &conf)
            .ok();
    }
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "gc0", "ifname": "eth0"}]);
    let mut gc = CniCall::new(&env.node, "GC", "", None, "");
    gc.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    gc.run(&env.node, &env.multus, &gc_conf).assert_ok();
    assert_eq!(
        pods[0].link_names(),
        vec!["eth0"],
        "the valid container keeps its interface"
    );
    assert_eq!(
        pods[1].link_names(),
        Vec::<String>::new(),
        "stale container 1 cleaned"
    );
    assert_eq!(
        pods[2].link_names(),
        Vec::<String>::new(),
        "stale container 2 cleaned"
    );
    for i in 1..3 {
        let del = env.recorded("DEL", &format!("gc{i}"), "net1");
        assert_eq!(
            del["env"]["CNI_CONTAINERID"],
            format!("gc{i}"),
            "stale delegates got DEL"
        );
    }
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 1);
    let files = leaks::cache_files(&env.node.cache_dir());
    assert!(
        files.contains(&"gc0".to_string())
            && !files.contains(&"gc1".to_string())
            && !files.contains(&"gc2".to_string()),
        "{files:?}"
    );
    let forwarded = env.recorded("GC", "", "");
    assert_eq!(
        forwarded["stdin"]["cni.dev/valid-attachments"],
        json!([{"containerID": "gc0", "ifname": "net1"}])
    );
    env.call("DEL", "gc0", Some(&pods[0]))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pods[0]);
}

/// A GC that keeps no container still forwards GC, with no valid attachment, to every configured
/// network (the cluster network too: GC names no interface), so a plugin can release what a
/// crashed ADD left before multus cached anything. It once forwarded nothing then.
#[test]
fn gc_keeping_nothing_is_forwarded_to_every_configured_network() {
    let env = Env::new();
    // Each its own record directory (a GC's record is named by command alone).
    let dir = |name: &str| {
        let d = env.node.records_dir().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mut conf = env.conf(
        "1.1.0",
        vec![
            env.recorder(json!({"cniVersion": "1.1.0", "name": "rec-a", "recordDir": dir("a")})),
            env.recorder(json!({"cniVersion": "1.1.0", "name": "rec-b", "recordDir": dir("b")})),
        ],
    );
    conf["cni.dev/valid-attachments"] = json!([]);
    let mut gc = CniCall::new(&env.node, "GC", "", None, "");
    gc.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    gc.run(&env.node, &env.multus, &conf).assert_ok();
    for (name, sub) in [("rec-a", "a"), ("rec-b", "b")] {
        let record = std::fs::read_to_string(env.node.records_dir().join(sub).join("GC--.json"))
            .unwrap_or_else(|e| panic!("{name} got no GC: {e}"));
        let forwarded: Value = serde_json::from_str(&record).unwrap();
        assert_eq!(forwarded["stdin"]["name"], name);
        assert_eq!(forwarded["stdin"]["cni.dev/valid-attachments"], json!([]));
    }
}

#[test]
fn status_and_add_follow_the_readiness_indicator() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let ready = env.node.root().join("ready");
    let mut conf = env.conf(
        "1.1.0",
        vec![env.bridge("net-a", "br-a", "10.90.0.0/24", "1.0.0")],
    );
    conf["readinessindicatorfile"] = json!(ready);
    conf["readinessTimeoutSeconds"] = json!(1);
    let mut status = CniCall::new(&env.node, "STATUS", "", None, "");
    status.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    assert_eq!(status.run(&env.node, &env.multus, &conf).err_code(), 50);
    assert_eq!(
        env.call("ADD", "rdy", Some(&pod))
            .run(&env.node, &env.multus, &conf)
            .err_code(),
        11
    );
    env.assert_clean(&pod);
    std::fs::write(&ready, b"").unwrap();
    status.run(&env.node, &env.multus, &conf).assert_ok();
    // A clusterNetwork that only the API can resolve does not make STATUS fail.
    let mut nad_cluster = conf.clone();
    nad_cluster.as_object_mut().unwrap().remove("delegates");
    nad_cluster["clusterNetwork"] = json!("only-a-nad");
    status.run(&env.node, &env.multus, &nad_cluster).assert_ok();
    env.call("ADD", "rdy", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .ok();
    env.call("DEL", "rdy", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pod);
}

/// STATUS is defined from cniVersion 1.1.0 (docs/configuration.md, error code 1): an older
/// configuration gets the spec's "incompatible version" error, as GC does.
#[test]
fn status_before_1_1_0_is_an_incompatible_version() {
    let env = Env::new();
    let mut status = CniCall::new(&env.node, "STATUS", "", None, "");
    status.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    for version in ["0.4.0", "1.0.0"] {
        let conf = env.conf(
            version,
            vec![env.bridge("net-a", "br-a", "10.91.0.0/24", "0.4.0")],
        );
        let out = status.run(&env.node, &env.multus, &conf);
        assert_eq!(
            out.err_code(),
            1,
            "STATUS with cniVersion {version}: {}",
            out.stdout
        );
        assert!(out.stdout.contains("needs 1.1.0"), "{}", out.stdout);
    }
    let conf = env.conf(
        "1.1.0",
        vec![env.bridge("net-a", "br-a", "10.91.0.0/24", "1.0.0")],
    );
    status.run(&env.node, &env.multus, &conf).assert_ok();
}

/// `type` must be `multus` (or `multus-shim`, thick mode; docs/configuration.md): another name is
/// refused before anything is done.
#[test]
fn a_type_other_than_multus_is_refused() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let mut conf = env.two_networks("1.0.0");
    conf["type"] = json!("multus-cni");
    let out = env
        .call("ADD", "typ", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert_eq!(out.err_code(), 7, "{}", out.stdout);
    let msg = out
        .json
        .as_ref()
        .map(|j| j["msg"].to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("multus-cni") && msg.contains("install the plugin under that name"),
        "{msg}"
    );
    env.assert_clean(&pod);
}

#[test]
fn logs_go_to_the_log_file_and_never_to_stdout() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let log = env.node.root().join("multus.log");
    let mut conf = env.two_networks("1.0.0");
    conf["logFile"] = json!(log);
    conf["logToStderr"] = json!(false);
    let out = env
        .call("ADD", "log", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    out.ok();
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", out.stderr);
    assert_eq!(out.stdout.trim().lines().count(), 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("calling delegate"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.call("DEL", "log", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pod);
}

#[test]
fn the_auxiliary_chain_runs_for_every_pod_after_its_networks() {
    let env = Env::new();
    let pod = Netns::new("pd");
    // The cluster network as a file, and the vendor's chain in a directory beside it.
    let netd = env.node.root().join("netd");
    let chain = netd.join("vendor-chain");
    std::fs::create_dir_all(&chain).unwrap();
    let cluster = netd.join("10-cluster.conf");
    std::fs::write(
        &cluster,
        env.bridge("cluster", "br-c", "10.60.0.0/24", "1.0.0")
            .to_string(),
    )
    .unwrap();
    std::fs::write(
        chain.join("10-record.conf"),
        env.recorder(json!({})).to_string(),
    )
    .unwrap();
    // A reference plugin that needs a prevResult and, with nothing configured, passes it on.
    std::fs::write(
        chain.join("20-bandwidth.conf"),
        json!({"type": "bandwidth"}).to_string(),
    )
    .unwrap();
    let mut conf = env.conf("1.0.0", vec![]);
    let m = conf.as_object_mut().unwrap();
    m.remove("delegates");
    m.insert("clusterNetwork".into(), json!(cluster));
    m.insert("auxiliaryCNIChainName".into(), json!("vendor-chain"));

    let out = env
        .call("ADD", "aux", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    let result = out.ok();
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(
        names.contains(&"eth0") && !names.contains(&"net1"),
        "the cluster network's result: {result}"
    );
    assert_eq!(pod.link_names(), ["eth0"], "the chain adds no interface");
    // passthru (built in: no such binary on this node) started the chain with an empty result
    let add = env.recorded("ADD", "aux", "net1");
    assert_eq!(add["stdin"]["name"], "vendor-chain");
    let prev = &add["stdin"]["prevResult"];
    assert_eq!(prev["cniVersion"], "1.0.0", "{prev}");
    for key in ["interfaces", "ips", "routes"] {
        assert!(
            prev.get(key)
                .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty)),
            "{prev}"
        );
    }
    assert_eq!(add["env"]["CNI_IFNAME"], "net1");
    let cached = std::fs::read_to_string(env.node.cache_dir().join("aux")).unwrap();
    let cached: Value = serde_json::from_str(&cached).unwrap();
    let aux = &cached["attachments"][1];
    assert_eq!(aux["name"], "vendor-chain");
    let types: Vec<&str> = aux["network"]["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    assert_eq!(types, ["passthru", "cni-recorder", "bandwidth"]);

    // multusctl shows the chain as making no interface, and does not call that drift.
    let conf_file = env.node.root().join("aux-multus.conf");
    std::fs::write(&conf_file, conf.to_string()).unwrap();
    let ctl = |args: &[&str]| {
        let out = env
            .node
            .ns
            .command(testkit::bins::product("multusctl"))
            .arg("--conf")
            .arg(&conf_file)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = ctl(&["check", "aux"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = ctl(&["-o", "json", "show", "aux"]);
    assert_eq!(code, Some(0), "{text}");
    let shown: Value = serde_json::from_str(&text).unwrap();
    let ifaces = &shown["items"][0]["interfaces"];
    assert_eq!(ifaces[1]["auxiliary"], true, "{shown}");
    assert_eq!(ifaces[1]["live"], Value::Null);
    assert_eq!(ifaces[0]["auxiliary"], false);
    // CHECK skips the chain, as the reference does (bandwidth cannot check an empty result).
    env.call("CHECK", "aux", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    assert!(!env.node.records_dir().join("CHECK-aux-net1.json").exists());
    env.call("DEL", "aux", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    assert_eq!(
        env.recorded("DEL", "aux", "net1")["stdin"]["name"],
        "vendor-chain"
    );
    env.assert_clean(&pod);
    // A DEL with neither cache nor API runs the chain too (best effort, like the networks).
    env.call("DEL", "auxnocache", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    assert_eq!(
        env.recorded("DEL", "auxnocache", "net1")["stdin"]["name"],
        "vendor-chain"
    );

    // A failing chain plugin fails the ADD and rolls back the cluster network.
    std::fs::write(
        chain.join("10-record.conf"),
        env.recorder(json!({"failOn": "ADD"})).to_string(),
    )
    .unwrap();
    let out = env
        .call("ADD", "aux2", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert_eq!(out.err_code(), 100);
    env.assert_clean(&pod);

    // A name that would leave the directory is refused before anything is done.
    conf["auxiliaryCNIChainName"] = json!("../netd");
    let out = env
        .call("ADD", "aux3", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert_eq!(out.err_code(), 7, "{}", out.stdout);
    env.assert_clean(&pod);
}

/// The log file's backups next to it, newest last (names sort by their time stamps).
fn log_backups(log: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p != log
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("multus-")
        })
        .collect();
    found.sort();
    found
}

/// Waits (bounded) until every backup is compressed by the detached compressor.
fn wait_compressed(log: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = log_backups(log);
        if found.len() == count
            && found
                .iter()
                .all(|p| p.extension().is_some_and(|e| e == "gz"))
        {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backups not compressed: {found:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_log_file_rotates_like_the_references() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let log = env.node.root().join("logs/multus.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut conf = env.conf(
        "1.0.0",
        vec![env.bridge("net-a", "br-a", "10.10.0.0/24", "1.0.0")],
    );
    conf["logFile"] = json!(log);
    conf["logLevel"] = json!("debug");
    conf["logToStderr"] = json!(false);
    // A DEL of nothing: a whole call (VERSION is answered before the configuration is read).
    let call = |conf: &Value| {
        let out = env
            .call("DEL", "rotation", None)
            .run(&env.node, &env.multus, conf);
        out.assert_ok();
        assert!(out.stderr.is_empty(), "{}", out.stderr);
    };

    // Without logOptions: the reference's defaults, 100 MiB, compressed. A sparse full file
    // (cheap to make, and to compress) is rotated by the next call.
    std::fs::File::create(&log)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    call(&conf);
    let first = wait_compressed(&log, 1);
    let mut unpacked = 0u64;
    let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&first[0]).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = gz.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        unpacked += n as u64;
    }
    assert_eq!(unpacked, 100 << 20, "the backup holds the whole file");
    assert_eq!(
        std::fs::metadata(&first[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(
        fresh.contains("log file rotated to"),
        "the new file says where the old one went: {fresh}"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // maxSize 1 MiB, 2 backups, 1 day; a backup from last week goes at the next rotation.
    conf["logOptions"] = json!({"maxSize": 1, "maxBackups": 2, "maxAge": 1, "compress": true});
    let stale = log.with_file_name("multus-2026-01-01T00-00-00.000.log.gz");
    std::fs::write(&stale, b"old").unwrap();
    let below = std::fs::metadata(&log).unwrap().len();
    call(&conf);
    assert!(
        std::fs::metadata(&log).unwrap().len() > below,
        "below maxSize: appended, not rotated"
    );
    for _ in 0..3 {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, &vec![b'x'; 1 << 20]).unwrap();
        drop(f);
        call(&conf);
        // distinct millisecond stamps
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kept = wait_compressed(&log, 2);
    assert!(!stale.exists(), "older than maxAge: removed");
    assert!(!first[0].exists(), "beyond maxBackups: removed");
    for b in &kept {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(b).unwrap())
            .read_to_end(&mut text)
            .unwrap();
        assert!(text.len() > 1 << 20, "{b:?}");
    }

    // compress false: plain backups; concurrent calls rotate once.
    conf["logOptions"] = json!({"maxSize": 1, "maxBackups": 0, "compress": false});
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, &vec![b'y'; 1 << 20]).unwrap();
    drop(f);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| call(&conf));
        }
    });
    let all = log_backups(&log);
    let plain: Vec<_> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(
        plain.len(),
        1,
        "one rotation for four concurrent calls: {all:?}"
    );
    assert_eq!(all.len(), 3, "maxBackups 0 keeps them all: {all:?}");
    assert!(std::fs::metadata(&log).unwrap().len() < 1 << 20);
}

#[test]
fn version_answers() {
    let env = Env::new();
    let mut call = CniCall::new(&env.node, "VERSION", "", None, "");
    call.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
        "CNI_PATH".into(),
    ];
    let out = call.run_bytes(&env.node, &env.multus, br#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(out.ok()["cniVersion"], "0.4.0");
    assert_eq!(out.ok()["supportedVersions"], json!(VERSIONS));
    let v = std::process::Command::new(&env.multus)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("multus "));
}

#[test]
fn ebpf_sbr_options_migrate_sbr_and_chain_secondaries() {
    let env = Env::new();
    // Observe what multus sends to the `ebpf-sbr` plugin type (the real plugin has its own tests).
    env.node
        .install("ebpf-sbr", Path::new(env!("CARGO_BIN_EXE_cni-recorder")));
    let pod = Netns::new("pd");
    let with_sbr = json!({"cniVersion": "1.0.0", "name": "with-sbr", "plugins": [
        {"type": "bridge", "bridge": "br-s", "ipam": {"type": "host-local", "subnet": "10.71.0.0/24", "dataDir": env.node.ipam_dir()}},
        {"type": "sbr", "table": 5000, "recordDir": env.node.records_dir()}]});
    let plain = env.bridge("plain", "br-p", "10.72.0.0/24", "1.0.0");
    let mut conf = env.conf(
        "1.0.0",
        vec![
            env.bridge("cluster", "br-c", "10.70.0.0/24", "1.0.0"),
            with_sbr,
            plain,
        ],
    );
    conf["ebpfSbr"] = json!({"replaceSbr": true, "allSecondary": true, "bpffsDir": "/sys/fs/bpf/test-x",
                            "config": {"recordDir": env.node.records_dir(), "gateway": "10.72.0.1"}});
    env.call("ADD", "sbrcfg", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .ok();
    let migrated = env.recorded("ADD", "sbrcfg", "net1");
    assert_eq!(
        migrated["stdin"]["type"], "ebpf-sbr",
        "sbr runs as ebpf-sbr"
    );
    assert_eq!(
        migrated["stdin"]["table"], 5000,
        "with its configuration unchanged"
    );
    assert_eq!(migrated["stdin"]["bpffsDir"], "/sys/fs/bpf/test-x");
    assert!(migrated["stdin"]["prevResult"]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .starts_with("10.71.0."));
    let chained = env.recorded("ADD", "sbrcfg", "net2");
    assert_eq!(
        chained["stdin"]["type"], "ebpf-sbr",
        "chained after a plain secondary"
    );
    assert_eq!(chained["stdin"]["gateway"], "10.72.0.1");
    assert_eq!(chained["stdin"]["name"], "plain");
    assert!(
        !env.node.records_dir().join("ADD-sbrcfg-eth0.json").exists(),
        "never on the cluster network"
    );
    env.call("DEL", "sbrcfg", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    assert_eq!(
        env.recorded("DEL", "sbrcfg", "net2")["stdin"]["type"],
        "ebpf-sbr",
        "DEL reaches it from the cache"
    );
    env.assert_clean(&pod);
}

/// A typo in a key that changes nothing a teardown removes (`"logLevel": "info"`) is refused by
/// ADD but never blocks DEL or GC: they run with the default level and name the key on stderr.
#[test]
fn a_logging_typo_never_blocks_del_or_gc() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let good = env.two_networks("1.1.0");
    env.call("ADD", "typo", Some(&pod))
        .run(&env.node, &env.multus, &good)
        .ok();
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 2);
    let mut typo = good.clone();
    typo["logLevel"] = json!("info");
    typo["logOptions"] = json!({"maxSize": -1});
    let add = env
        .call("ADD", "typo2", Some(&pod))
        .run(&env.node, &env.multus, &typo);
    assert!(add.err_code() > 0, "ADD may refuse it: {}", add.stdout);
    // GC with nothing valid but this container: it keeps it, and runs.
    let mut gc = typo.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "typo", "ifname": "eth0"}]);
    let mut call = CniCall::new(&env.node, "GC", "", None, "");
    call.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    let out = call.run(&env.node, &env.multus, &gc);
    out.assert_ok();
    assert_eq!(pod.link_names().len(), 2, "GC kept the valid container");
    assert!(
        out.stderr.contains("logLevel"),
        "GC names the key: {}",
        out.stderr
    );
    let out = env
        .call("DEL", "typo", Some(&pod))
        .run(&env.node, &env.multus, &typo);
    out.assert_ok();
    assert!(
        out.stderr.contains("\"logLevel\"") && out.stderr.contains("logOptions"),
        "DEL names each ignored key on stderr: {}",
        out.stderr
    );
    env.assert_clean(&pod);
    // A key that decides what DEL removes stays strict.
    let mut strict = good.clone();
    strict["retryDeleteOnError"] = json!("yes");
    let out = env
        .call("DEL", "typo", Some(&pod))
        .run(&env.node, &env.multus, &strict);
    assert_eq!(out.err_code(), 6, "{}", out.stdout);
}

/// An operator edits 00-multus.conf so that it names no network (`delegates` dropped, no
/// `clusterNetwork`): ADD refuses it (code 7), but DEL still deletes what the cache recorded at
/// ADD, so the pod does not stay in Terminating (the reference's DEL refuses such a
/// configuration for ever); a DEL with no cache entry finds nothing and succeeds.
#[test]
fn a_configuration_that_lost_its_networks_still_deletes_from_the_cache() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let good = env.two_networks("1.0.0");
    env.call("ADD", "lost", Some(&pod))
        .run(&env.node, &env.multus, &good)
        .ok();
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()).len(), 2);
    let mut lost = good.clone();
    lost.as_object_mut().unwrap().remove("delegates");
    lost.as_object_mut().unwrap().remove("clusterNetwork");
    let add = env
        .call("ADD", "lost2", Some(&pod))
        .run(&env.node, &env.multus, &lost);
    assert_eq!(add.err_code(), 7, "{}", add.stdout);
    env.call("DEL", "lost", Some(&pod))
        .run(&env.node, &env.multus, &lost)
        .assert_ok();
    env.assert_clean(&pod);
    env.call("DEL", "never-added", Some(&pod))
        .run(&env.node, &env.multus, &lost)
        .assert_ok();
}

/// A repeated ADD never destroys a running attachment: with the same plan it returns the first
/// ADD's result and runs nothing; with another plan, or after an ADD that never completed, it is
/// refused before any delegate runs (code 105) and the pod keeps its interfaces, its leases and
/// its cache entry; DEL still cleans up everything.
#[test]
fn a_repeated_add_never_destroys_a_running_attachment() {
    let env = Env::new();
    let pod = Netns::new("pd");
    let conf = env.two_networks("1.0.0");
    let first = env
        .call("ADD", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .ok()
        .clone();
    let leases = leaks::host_local_leases(&env.node.ipam_dir());
    assert_eq!(leases.len(), 2);
    let cache = env.node.cache_dir().join("again");
    let cached = std::fs::read(&cache).unwrap();
    let links = |p: &Netns| {
        let mut l = p.link_names();
        l.sort();
        l
    };
    // The same plan: the first result, and nothing changed (the cache file is not rewritten).
    let again = env
        .call("ADD", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert_eq!(again.ok(), &first, "the cached result");
    assert_eq!(std::fs::read(&cache).unwrap(), cached);
    // Another plan (net-b's MTU): refused before any delegate ran; nothing of the pod changed.
    let mut other = conf.clone();
    other["delegates"][1]["plugins"][0]["mtu"] = json!(1300);
    let out = env
        .call("ADD", "again", Some(&pod))
        .run(&env.node, &env.multus, &other);
    assert_eq!(out.err_code(), 105, "{}", out.stdout);
    for needle in [
        "net-b (net1) has another configuration",
        "DEL it",
        "multusctl repair again",
    ] {
        assert!(out.err_msg().contains(needle), "{needle}: {}", out.stdout);
    }
    assert_eq!(links(&pod), vec!["eth0", "net1"]);
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()), leases);
    assert_eq!(std::fs::read(&cache).unwrap(), cached, "cache kept");
    env.call("CHECK", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    // An ADD that never completed (its process died while its delegates ran): refused; DEL of
    // what it left still works from its entry.
    let mut unfinished: Value = serde_json::from_slice(&cached).unwrap();
    unfinished["addState"] = json!("adding");
    std::fs::write(&cache, serde_json::to_vec(&unfinished).unwrap()).unwrap();
    let out = env
        .call("ADD", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf);
    assert_eq!(out.err_code(), 105, "{}", out.stdout);
    assert!(out.err_msg().contains("did not complete"), "{}", out.stdout);
    assert_eq!(links(&pod), vec!["eth0", "net1"]);
    assert_eq!(leaks::host_local_leases(&env.node.ipam_dir()), leases);
    env.call("DEL", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pod);
    // After DEL, ADD runs again.
    env.call("ADD", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .ok();
    env.call("DEL", "again", Some(&pod))
        .run(&env.node, &env.multus, &conf)
        .assert_ok();
    env.assert_clean(&pod);
}
