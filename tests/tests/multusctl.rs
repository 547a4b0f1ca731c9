//! multusctl on real attachments: pods attached by the real `multus` binary (bridge delegates with
//! host-local IPAM) in namespaces of a private node, their net1 routed by source with the SBR library
//! (`multus::sbr::add`, with the addresses of the cached result, as the ebpf-sbr plugin does) on a
//! private bpffs. JSON output is checked field by field against the cache, the pod's interfaces and
//! the library's own view; `check` and `gc` are checked by exit code, message and effect.
//! Run as root (`cargo xtask test`). Every command and its output is printed (`--nocapture`):
//! docs/cli.md shows such output.

use std::{
    net::IpAddr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use multus::sbr::{self, IfAddr, InterfaceSpec, SbrConfig};
use serde_json::{json, Value};
use testkit::{
    bins, bpffs::Bpffs, cni, confs, kube_api::PodSeed, leaks, netns::unique_name, sbr::cid,
    topo::MiniPod, CniCall, Netns, Node,
};

/// A node with multus, a private bpffs and a multus configuration file that multusctl reads.
struct Env {
    node: Node,
    multus: PathBuf,
    ctl: PathBuf,
    bpffs: Bpffs,
    conf: Value,
    conf_path: PathBuf,
}

/// A pod attached by multus: eth0 on net-a (cluster network), net1 on net-b (routed by source).
struct Pod {
    ns: Netns,
    id: String,
    namespace: String,
    name: String,
    uid: String,
}

/// What one multusctl run printed.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

impl Env {
    fn new() -> Env {
        let node = Node::new();
        let multus = bins::product("multus");
        node.install("multus", &multus);
        let ctl = bins::product("multusctl");
        let bpffs = Bpffs::new();
        let ipam = node.ipam_dir();
        let net_a = confs::bridge("net-a", "br-a", "10.10.0.0/24", "1.0.0", &ipam);
        let net_b = json!({"cniVersion": "1.0.0", "name": "net-b", "plugins": [
            {"type": "bridge", "bridge": "br-b", "isGateway": true,
             "ipam": {"type": "host-local", "subnet": "10.20.0.0/24", "dataDir": ipam}},
            {"type": "tuning", "mtu": 1400}]});
        let mut conf = confs::multus(
            "1.0.0",
            &node.cache_dir(),
            &node.bin_dir(),
            vec![net_a, net_b],
        );
        conf["binDir"] = json!(format!(
            "{}:{}",
            node.bin_dir().display(),
            bins::REFERENCE_PLUGINS
        ));
        conf["logLevel"] = json!("error");
        conf["ebpfSbr"] = json!({"bpffsDir": bpffs.path()});
        let conf_path = node.root().join("conf").join("00-multus.conf");
        std::fs::write(&conf_path, serde_json::to_vec_pretty(&conf).expect("json"))
            .expect("write conf");
        Env {
            node,
            multus,
            ctl,
            bpffs,
            conf,
            conf_path,
        }
    }

    /// The SBR settings of the pods: TCX links (`auto` means netlink filters), so that the views
    /// of pinned links and a detached link are covered too.
    fn sbr_cfg(&self) -> SbrConfig {
        SbrConfig {
            attach_mode: sbr::AttachMode::Tcx,
            ..SbrConfig::new(self.bpffs.path())
        }
    }

    /// ADD through multus (pod identity in CNI_ARGS), then SBR for net1 with the cached addresses.
    fn pod(&self, namespace: &str, name: &str, uid: &str) -> Pod {
        let ns = Netns::new("cp");
        let id = unique_name("ctl");
        let args = cni::k8s_args(namespace, name, None, Some(uid));
        CniCall::new(&self.node, "ADD", &id, Some(&ns), "eth0")
            .args(&args)
            .run(&self.node, &self.multus, &self.conf)
            .assert_ok();
        let spec = InterfaceSpec {
            ifname: "net1".into(),
            addresses: cached_addresses(&self.cache_entry(&id), "net1"),
        };
        assert_eq!(spec.addresses.len(), 1, "net1 has one cached address");
        sbr::add(&self.sbr_cfg(), &cid(&id), ns.path(), &spec)
            .unwrap_or_else(|e| panic!("sbr add: {e}"));
        Pod {
            ns,
            id,
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn cache_entry(&self, id: &str) -> Value {
        let bytes = std::fs::read(self.node.cache_dir().join(id))
            .unwrap_or_else(|e| panic!("cache of {id}: {e}"));
        serde_json::from_slice(&bytes).expect("cache JSON")
    }

    /// Runs multusctl in the node's namespace with the configuration file.
    fn ctl(&self, args: &[&str]) -> Out {
        let mut all = vec!["--conf".to_string(), self.conf_path.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        self.ctl_raw(&all, None)
    }

    /// Runs multusctl with `args`; with `uid`, as that user (in the test's own namespace: entering
    /// the node's needs root).
    fn ctl_raw(&self, args: &[String], uid: Option<u32>) -> Out {
        // Another user runs a copy outside the work tree (bins::world_executable).
        let mut copy = None;
        let mut cmd = match uid {
            None => self.node.ns.command(&self.ctl),
            Some(uid) => {
                let (dir, path) = bins::world_executable("multusctl");
                let mut c = std::process::Command::new(&path);
                c.uid(uid).gid(uid).current_dir("/");
                copy = Some(dir);
                c
            }
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .env_remove("MULTUSCTL_CONF");
        // A copy just written can be "text file busy" while a child forked meanwhile by another
        // test thread still holds its descriptor: try again briefly.
        let mut tries = 0;
        let out = loop {
            match cmd.output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap_or_else(|e| panic!("run multusctl: {e}")),
            }
        };
        drop(copy);
        let o = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ multusctl {}   # exit {}\n{}{}",
            args.join(" "),
            o.code,
            o.stdout,
            o.stderr
        );
        o
    }
}

/// The addresses a cached attachment's result gives `ifname` (what ebpf-sbr reads from prevResult).
fn cached_addresses(entry: &Value, ifname: &str) -> Vec<IfAddr> {
    let att = entry["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .find(|a| a["ifname"] == ifname)
        .expect("attachment");
    let result = &att["result"];
    let index = result["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .position(|i| i["name"] == ifname && i.get("sandbox").is_some())
        .expect("sandbox interface");
    result["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .filter(|ip| ip["interface"].as_u64() == Some(index as u64))
        .map(|ip| {
            let (addr, len) = ip["address"]
                .as_str()
                .expect("address")
                .split_once('/')
                .expect("cidr");
            IfAddr {
                address: addr.parse().expect("ip"),
                prefix_len: len.parse().expect("prefix"),
                gateway: ip["gateway"].as_str().map(|g| g.parse().expect("gateway")),
            }
        })
        .collect()
}

/// The interface's index and MTU, as `ip` sees them.
fn link(ns: &Netns, ifname: &str) -> (u64, u64) {
    let l = ns
        .links()
        .into_iter()
        .find(|l| l["ifname"] == ifname)
        .unwrap_or_else(|| panic!("no {ifname}"));
    (
        l["ifindex"].as_u64().expect("ifindex"),
        l["mtu"].as_u64().expect("mtu"),
    )
}

fn item<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["containerID"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {doc}"))
}

fn ids(doc: &Value) -> Vec<String> {
    doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["containerID"].as_str().expect("id").to_string())
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// Waits until every program link of a pod's pins is detached (a deleted namespace is destroyed
/// asynchronously).
fn wait_detached(cfg: &SbrConfig, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = sbr::inspect(cfg, &cid(id)).expect("inspect");
        if info
            .attachments
            .iter()
            .all(|a| a.target.as_ref().map(|t| t.ifindex == 0).unwrap_or(true))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "links of {id} still attached 10 s after the namespace went"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn list_and_show_json_field_by_field() {
    let env = Env::new();
    let started = now();
    let a = env.pod("team-a", "web-1", "uid-web-1");
    let b = env.pod("team-b", "db-0", "uid-db-0");
    let cfg = env.sbr_cfg();

    let out = env.ctl(&["-o", "json", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["apiVersion"], "multusctl/v1");
    assert_eq!(doc["kind"], "ContainerList");
    let mut expected_ids = vec![a.id.clone(), b.id.clone()];
    expected_ids.sort();
    assert_eq!(ids(&doc), expected_ids);
    for p in [&a, &b] {
        let c = item(&doc, &p.id);
        let entry = env.cache_entry(&p.id);
        assert_eq!(
            c["pod"],
            json!({"namespace": p.namespace, "name": p.name, "uid": p.uid})
        );
        assert_eq!(c["netns"], json!(p.ns.path()));
        assert_eq!(c["netnsState"], "present");
        assert_eq!(c["cached"], true);
        assert_eq!(c["cacheError"], Value::Null);
        assert_eq!(c["cacheFormat"], "native");
        let created = c["createdAt"].as_u64().expect("createdAt");
        assert!(
            created >= started && created <= now(),
            "createdAt {created}"
        );
        assert_eq!(c["api"], Value::Null, "no kubeconfig: no API");
        let ifaces = c["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifaces.len(), 2, "{c}");
        let eth0 = &ifaces[0];
        assert_eq!(eth0["ifname"], "eth0");
        assert_eq!(eth0["network"], "net-a");
        assert_eq!(eth0["master"], true);
        assert_eq!(eth0["isDefault"], true);
        assert_eq!(eth0["cniVersion"], "1.0.0");
        assert_eq!(eth0["plugins"], json!(["bridge"]));
        assert_eq!(eth0["addresses"], json!(p.ns.addresses("eth0")));
        assert_eq!(eth0["gateways"], json!(["10.10.0.1"]));
        assert_eq!(eth0["sbr"], Value::Null);
        assert!(
            eth0.get("result").is_none() && eth0.get("live").is_none(),
            "show-only fields are left out of list"
        );
        let net1 = &ifaces[1];
        assert_eq!(net1["ifname"], "net1");
        assert_eq!(net1["network"], "net-b");
        assert_eq!(net1["master"], false);
        assert_eq!(net1["isDefault"], false);
        assert_eq!(net1["plugins"], json!(["bridge", "tuning"]));
        assert_eq!(net1["addresses"], json!(p.ns.addresses("net1")));
        assert_eq!(net1["gateways"], json!(["10.20.0.1"]));
        assert_eq!(net1["sbr"], "managed");
        let s = &c["sbr"];
        assert_eq!(s["pinDir"], json!(env.bpffs.pod_dir(&p.id)));
        assert_eq!(s["state"], "attached");
        assert_eq!(s["error"], Value::Null);
        assert_eq!(s["entryCount"], 1);
        assert_eq!(s["linksAttached"], 3, "carrier, eth0 and net1");
        assert_eq!(s["linksTotal"], 3);
        assert_eq!(s["managedInterfaces"], json!(["net1"]));
        assert!(s.get("entries").is_none(), "show-only");
        // The cached result is what the list's addresses come from.
        let cached_net1 = cached_addresses(&entry, "net1");
        assert_eq!(
            net1["addresses"],
            json!([format!(
                "{}/{}",
                cached_net1[0].address, cached_net1[0].prefix_len
            )])
        );
    }

    let out = env.ctl(&["list", "--namespace", "team-b"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("team-b/db-0") && !out.stdout.contains("team-a/web-1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .next()
            .unwrap_or("")
            .starts_with("CONTAINER"),
        "{}",
        out.stdout
    );

    // show by namespace/pod, and by a unique id prefix: the same container.
    let out = env.ctl(&["-o", "json", "show", "team-a/web-1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["apiVersion"], "multusctl/v1");
    assert_eq!(doc["kind"], "ContainerDetailList");
    assert_eq!(ids(&doc), vec![a.id.clone()]);
    let by_id = env.ctl(&["-o", "json", "show", &a.id]).json();
    // Live packet counters may tick between the two calls (neighbour discovery); the rest is equal.
    assert_eq!(without_counters(by_id), without_counters(doc.clone()));
    let c = item(&doc, &a.id);
    let entry = env.cache_entry(&a.id);
    let info = sbr::inspect(&cfg, &cid(&a.id)).expect("inspect");
    let (eth0_index, _) = link(&a.ns, "eth0");
    let (net1_index, net1_mtu) = link(&a.ns, "net1");
    let (carrier_index, _) = link(&a.ns, sbr::CARRIER_IFNAME);
    assert_eq!(net1_mtu, 1400, "tuning ran");
    for (i, ifname) in ["eth0", "net1"].iter().enumerate() {
        let iface = &c["interfaces"][i];
        assert_eq!(iface["ifname"], *ifname);
        assert_eq!(
            iface["result"], entry["attachments"][i]["result"],
            "the cached result, as cached"
        );
        let live = &iface["live"];
        let (index, mtu) = link(&a.ns, ifname);
        assert_eq!(live["ifindex"], index);
        assert_eq!(live["mtu"], mtu);
        assert_eq!(live["up"], true);
        let l =
            a.ns.links()
                .into_iter()
                .find(|l| l["ifname"] == *ifname)
                .expect("link");
        assert_eq!(live["mac"], l["address"]);
        for addr in a.ns.addresses(ifname) {
            assert!(
                live["addresses"]
                    .as_array()
                    .expect("live addresses")
                    .contains(&json!(addr)),
                "{live}"
            );
        }
    }
    let s = &c["sbr"];
    let net1_addr: IpAddr = a.ns.addresses("net1")[0]
        .split('/')
        .next()
        .expect("addr")
        .parse()
        .expect("ip");
    assert_eq!(
        s["entries"],
        json!([{"source": net1_addr.to_string(), "network": "10.20.0.0/24", "ifindex": net1_index, "ifname": "net1",
                "gateway": "10.20.0.1", "mtu": 1400}])
    );
    assert_eq!(
        s["defaults"]["ipv4"],
        json!({"ifindex": eth0_index, "ifname": "eth0", "gateway": "10.10.0.1"})
    );
    assert_eq!(s["defaults"]["ipv6"], Value::Null);
    let programs = s["programs"].as_array().expect("programs");
    assert_eq!(programs.len(), info.attachments.len());
    let mut seen = Vec::new();
    for p in programs {
        let lib = info
            .attachments
            .iter()
            .find(|x| x.ifname == p["ifname"])
            .expect("attachment in the library's view");
        let t = lib.target.as_ref().expect("target");
        let ifname = p["ifname"].as_str().expect("ifname");
        seen.push(ifname.to_string());
        let expected_index = match ifname {
            "eth0" => eth0_index,
            "net1" => net1_index,
            _ => carrier_index,
        };
        assert_eq!(p["ifindex"], expected_index);
        assert_eq!(
            p["program"],
            if ifname == sbr::CARRIER_IFNAME {
                "sbr_carrier"
            } else {
                "sbr_egress"
            }
        );
        assert_eq!(p["programId"], t.prog_id);
        // The carrier is our own device: always a netlink filter (no BPF link, no pin); the pod's
        // interfaces use TCX links (the pods' mode, see `Env::sbr_cfg`), pinned.
        if ifname == sbr::CARRIER_IFNAME {
            assert_eq!(p["attachMode"], "netlink-clsact-egress");
            assert_eq!(p["linkId"], Value::Null);
            assert_eq!(p["pin"], Value::Null);
        } else {
            assert_eq!(p["attachMode"], "tcx-egress");
            assert_eq!(p["linkId"], t.id);
            assert_eq!(p["pin"], json!(lib.pin));
        }
        assert_eq!(p["attached"], true);
        assert_eq!(p["error"], Value::Null);
    }
    seen.sort();
    assert_eq!(seen, vec!["eth0", "net1", sbr::CARRIER_IFNAME]);
    let records = s["records"].as_array().expect("records");
    let net1_rec = records
        .iter()
        .find(|r| r["ifname"] == "net1")
        .expect("net1 record");
    assert_eq!(net1_rec["ifindex"], net1_index);
    assert_eq!(net1_rec["managed"], true);
    let counters = s["counters"].as_array().expect("counters");
    for (ifindex, lib) in &info.counters {
        let c = counters
            .iter()
            .find(|c| c["ifindex"] == *ifindex)
            .expect("counters of an interface");
        assert!(
            lib.seen >= c["counters"]["seen"].as_u64().expect("seen"),
            "read later, never less"
        );
    }

    // The table forms print the same facts.
    let table = env.ctl(&["show", &a.id]);
    assert_eq!(table.code, 0);
    for needle in [
        "Delegate chain:",
        "bridge → tuning",
        "Source entries:",
        "Programs:",
        "tcx-egress",
        "10.20.0.1",
        "1400",
    ] {
        assert!(
            table.stdout.contains(needle),
            "{needle:?} missing from:\n{}",
            table.stdout
        );
    }
    let table = env.ctl(&["list"]);
    assert!(
        table.stdout.contains(&a.id) && table.stdout.contains("by source"),
        "{}",
        table.stdout
    );

    // Unknown and ambiguous targets are errors (exit 3).
    let out = env.ctl(&["show", "no-such-container"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("no container \"no-such-container\""),
        "{}",
        out.stderr
    );
    let out = env.ctl(&["show", "team-a/nobody"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("no container of pod team-a/nobody"),
        "{}",
        out.stderr
    );
}

#[test]
fn stats_counts_and_rates() {
    let env = Env::new();
    let a = env.pod("team-a", "web-1", "uid-1");
    let net1_addr = a.ns.addresses("net1")[0]
        .split('/')
        .next()
        .expect("addr")
        .to_string();
    // The node owns 10.20.0.1 on br-b: its pings to net1 are answered from net1's address.
    assert!(
        env.node.ns.ping(&net1_addr, 3, &[]) > 0,
        "node reaches the pod's net1"
    );
    let out = env.ctl(&["-o", "json", "stats"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["apiVersion"], "multusctl/v1");
    assert_eq!(doc["kind"], "Stats");
    assert_eq!(doc["intervalSeconds"], Value::Null);
    let (net1_index, _) = link(&a.ns, "net1");
    let net1 = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["ifname"] == "net1")
        .expect("net1 counters");
    assert_eq!(net1["containerID"], a.id.as_str());
    assert_eq!(net1["pod"]["name"], "web-1");
    assert_eq!(net1["ifindex"], net1_index);
    assert_eq!(net1["rates"], Value::Null);
    let c = &net1["counters"];
    assert!(c["seen"].as_u64().expect("seen") >= 3, "{c}");
    assert!(
        c["matched"].as_u64().expect("matched") >= 3,
        "replies come from a managed source: {c}"
    );
    for field in [
        "redirected",
        "redirectedIn",
        "fallback",
        "passed",
        "droppedNoRoute",
        "droppedMalformed",
        "droppedRedirect",
    ] {
        assert!(c[field].is_u64(), "{field} in {c}");
    }
    let lib = sbr::inspect(&env.sbr_cfg(), &cid(&a.id)).expect("inspect");
    let lib_net1 = lib
        .counters
        .iter()
        .find(|(i, _)| u64::from(*i) == net1_index)
        .map(|(_, c)| *c)
        .expect("lib counters");
    assert!(
        lib_net1.seen >= c["seen"].as_u64().expect("seen"),
        "the library reads the same counters"
    );

    // --watch: one JSON document a line, with rates from the second sample on, while pings flow.
    let mut ping = env.node.ns.command("ping");
    ping.args(["-i", "0.05", "-c", "60", "-q", &net1_addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut ping = ping.spawn().expect("ping");
    let out = env.ctl(&[
        "-o",
        "json",
        "stats",
        &a.id,
        "--watch",
        "--interval",
        "1",
        "--count",
        "2",
    ]);
    let _ = ping.wait();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document a line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["intervalSeconds"], Value::Null);
    let interval = lines[1]["intervalSeconds"].as_f64().expect("interval");
    assert!((0.9..3.0).contains(&interval), "{interval}");
    let r = &lines[1]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["ifname"] == "net1")
        .expect("net1")["rates"];
    assert!(
        r["seen"].as_f64().expect("seen rate") > 1.0,
        "pings every 50 ms: {r}"
    );
    assert!(r["matched"].as_f64().expect("matched rate") > 1.0, "{r}");
    let out = env.ctl(&["stats", "--watch", "--interval", "0.2", "--count", "2"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("packets per second") && out.stdout.contains("SEEN"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_passes_then_names_a_removed_entry_and_a_detached_program() {
    let env = Env::new();
    let a = env.pod("team-a", "web-1", "uid-1");
    let b = env.pod("team-a", "web-2", "uid-2");
    let cfg = env.sbr_cfg();

    let out = env.ctl(&["-o", "json", "check"]);
    assert_eq!(out.code, 0, "healthy node: {}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["apiVersion"], "multusctl/v1");
    assert_eq!(doc["kind"], "CheckReport");
    assert_eq!(doc["ok"], true);
    for p in [&a, &b] {
        let i = item(&doc, &p.id);
        assert_eq!(i["ok"], true);
        assert_eq!(i["verified"], json!(["net1"]));
        assert_eq!(i["problems"], json!([]));
        assert_eq!(i["pod"]["name"], p.name.as_str());
    }
    let out = env.ctl(&["check"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("2 container(s) checked, 0 with drift"),
        "{}",
        out.stdout
    );

    // Remove a's net1 entry from the source map.
    let addr: std::net::Ipv4Addr = a.ns.addresses("net1")[0]
        .split('/')
        .next()
        .expect("addr")
        .parse()
        .expect("ipv4");
    // SrcKey: {cookie u64, family u32, reserved u32, addr [u32; 4]} (multus-common), little endian.
    let cookie = sbr::inspect(&env.sbr_cfg(), &cid(&a.id))
        .expect("inspect")
        .cookie;
    let mut key: Vec<String> = cookie
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    key.extend(["02", "00", "00", "00", "00", "00", "00", "00"].map(String::from));
    key.extend(addr.octets().iter().map(|o| format!("{o:02x}")));
    key.extend(std::iter::repeat_n("00".to_string(), 12));
    let pin = env.bpffs.pod_dir(&a.id).join("map-src");
    let mut args = vec![
        "map".to_string(),
        "delete".into(),
        "pinned".into(),
        pin.display().to_string(),
        "key".into(),
        "hex".into(),
    ];
    args.extend(key);
    let del = std::process::Command::new("bpftool")
        .args(&args)
        .output()
        .expect("bpftool");
    assert!(
        del.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&del.stderr)
    );
    let out = env.ctl(&["-o", "json", "check"]);
    assert_eq!(out.code, 1, "drift exits 1");
    let doc = out.json();
    assert_eq!(doc["ok"], false);
    let ia = item(&doc, &a.id);
    assert_eq!(ia["ok"], false);
    let problems = ia["problems"].as_array().expect("problems");
    assert!(
        problems.iter().any(|p| p["kind"] == "mapEntryMissing"
            && p["interface"] == "net1"
            && p["message"] == format!("source entry {addr} missing")),
        "{problems:?}"
    );
    assert_eq!(item(&doc, &b.id)["ok"], true, "the other pod is unaffected");
    let out = env.ctl(&["check"]);
    assert_eq!(out.code, 1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("mapEntryMissing"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.contains("net1") && line.contains(&format!("source entry {addr} missing")),
        "{line}"
    );
    assert!(
        out.stdout.contains("2 container(s) checked, 1 with drift"),
        "{}",
        out.stdout
    );

    // `multusctl repair` fixes it, touching only SBR state: the cache entry, the leases and the
    // pod's interfaces are as they were. Then detach net1's program of pod b.
    let cache_before = std::fs::read(env.node.cache_dir().join(&a.id)).expect("cache");
    let leases_before = leaks::host_local_leases(&env.node.ipam_dir());
    let links_before = a.ns.links();
    let out = env.ctl(&["-o", "json", "repair", "team-a/web-1"]);
    assert_eq!(out.code, 0, "repaired: {}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["kind"], "RepairReport");
    assert_eq!(
        ids(&doc),
        vec![a.id.clone()],
        "repair of one pod repairs only it"
    );
    assert_eq!(item(&doc, &a.id)["repaired"], json!(["net1"]));
    assert_eq!(item(&doc, &a.id)["problems"], json!([]));
    assert_eq!(env.ctl(&["check"]).code, 0, "repaired");
    assert_eq!(
        std::fs::read(env.node.cache_dir().join(&a.id)).expect("cache"),
        cache_before
    );
    assert_eq!(
        leaks::host_local_leases(&env.node.ipam_dir()),
        leases_before
    );
    assert_eq!(a.ns.links(), links_before, "no interface changed");
    let info = sbr::inspect(&cfg, &cid(&b.id)).expect("inspect");
    let link_id = info
        .attachments
        .iter()
        .find(|x| x.ifname == "net1")
        .and_then(|x| x.target.as_ref().ok())
        .expect("net1 link")
        .id;
    let detach = std::process::Command::new("bpftool")
        .args(["link", "detach", "id", &link_id.to_string()])
        .output()
        .expect("bpftool");
    assert!(
        detach.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&detach.stderr)
    );
    let out = env.ctl(&["-o", "json", "check", "team-a/web-2"]);
    assert_eq!(out.code, 1);
    let doc = out.json();
    assert_eq!(
        ids(&doc),
        vec![b.id.clone()],
        "check of one pod checks only it"
    );
    let problems = item(&doc, &b.id)["problems"]
        .as_array()
        .expect("problems")
        .clone();
    assert!(
        problems.iter().any(|p| p["kind"] == "programDetached"
            && p["interface"] == "net1"
            && p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("program not attached to net1"))),
        "{problems:?}"
    );
    let out = env.ctl(&["check"]);
    assert_eq!(out.code, 1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("programDetached"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.contains("net1") && line.contains("program not attached to net1"),
        "{line}"
    );
    let out = env.ctl(&["-o", "json", "show", &b.id]).json();
    let p = item(&out, &b.id)["sbr"]["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .find(|p| p["ifname"] == "net1")
        .cloned()
        .expect("net1");
    assert_eq!(p["attached"], false);
    assert_eq!(p["ifindex"], 0);
    assert_eq!(item(&out, &b.id)["sbr"]["state"], "partial");
    // Repaired by container id, in the table form.
    let out = env.ctl(&["repair", &b.id]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("repaired (net1)"), "{}", out.stdout);
    assert_eq!(env.ctl(&["check"]).code, 0, "b repaired");

    // An interface of a cached attachment that is gone from the namespace.
    a.ns.ip(&["link", "del", "net1"]);
    let out = env.ctl(&["-o", "json", "check", &a.id]);
    assert_eq!(out.code, 1);
    let doc = out.json();
    let problems = item(&doc, &a.id)["problems"]
        .as_array()
        .expect("problems")
        .clone();
    assert!(
        problems.iter().any(|p| p["kind"] == "interfaceGone"
            && p["interface"] == "net1"
            && p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("interface net1 of network \"net-b\" is not in"))),
        "{problems:?}"
    );
    // That, repair cannot fix: it exits 1 naming it, and leaves the rest as it was.
    let links_before = a.ns.link_names();
    let out = env.ctl(&["-o", "json", "repair", &a.id]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let doc = out.json();
    assert_eq!(doc["ok"], false);
    let problems = item(&doc, &a.id)["problems"]
        .as_array()
        .expect("problems")
        .clone();
    assert!(
        problems
            .iter()
            .any(|p| p["kind"] == "repairFailed" && p["interface"] == "net1"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["kind"] == "interfaceGone" && p["interface"] == "net1"),
        "{problems:?}"
    );
    let out = env.ctl(&["repair", &a.id]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("NOT FIXED") && out.stdout.contains("with problems left"),
        "{}",
        out.stdout
    );
    assert_eq!(a.ns.link_names(), links_before, "repair made no interface");
}

#[test]
fn gc_removes_exactly_the_stale_ones() {
    let env = Env::new();
    let cfg = env.sbr_cfg();
    let stale = env.pod("team-a", "gone-1", "uid-g");
    let live = env.pod("team-a", "live-1", "uid-l");
    // Pins only (the plugin chained without multus): one whose namespace goes, one that stays.
    let orphan = MiniPod::new();
    let orphan_id = unique_name("pin");
    sbr::add(
        &cfg,
        &cid(&orphan_id),
        orphan.pod.path(),
        &orphan.net1_spec(),
    )
    .expect("add orphan");
    let standalone = MiniPod::new();
    let standalone_id = unique_name("pin");
    sbr::add(
        &cfg,
        &cid(&standalone_id),
        standalone.pod.path(),
        &standalone.net1_spec(),
    )
    .expect("add standalone");

    let leases_before = leaks::host_local_leases(&env.node.ipam_dir());
    let stale_ips: Vec<String> = ["eth0", "net1"]
        .iter()
        .map(|i| {
            stale.ns.addresses(i)[0]
                .split('/')
                .next()
                .expect("ip")
                .to_string()
        })
        .collect();
    let live_ips: Vec<String> = ["eth0", "net1"]
        .iter()
        .map(|i| {
            live.ns.addresses(i)[0]
                .split('/')
                .next()
                .expect("ip")
                .to_string()
        })
        .collect();
    assert_eq!(leases_before.len(), 4, "{leases_before:?}");
    let cache_before = leaks::cache_files(&env.node.cache_dir());
    let pins_before = env.bpffs.entries();

    let out = env.ctl(&["gc"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("nothing to remove"), "{}", out.stdout);

    drop_netns(&stale.ns);
    orphan.pod.delete();
    wait_detached(&cfg, &orphan_id);

    // check names both: the cached attachment whose namespace is gone, the pins whose links all are.
    let out = env.ctl(&["-o", "json", "check"]);
    assert_eq!(out.code, 1);
    let doc = out.json();
    let kinds = |id: &str| -> Vec<String> {
        item(&doc, id)["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(|p| p["kind"].as_str().expect("kind").to_string())
            .collect()
    };
    assert_eq!(kinds(&stale.id), vec!["netnsGone"]);
    assert!(item(&doc, &stale.id)["problems"][0]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with(&format!(
            "network namespace {} is gone",
            stale.ns.path().display()
        ))));
    assert_eq!(kinds(&orphan_id), vec!["pinsOrphaned"]);
    assert_eq!(item(&doc, &live.id)["ok"], true);
    assert_eq!(item(&doc, &standalone_id)["ok"], true);

    let out = env.ctl(&["-o", "json", "gc", "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(doc["apiVersion"], "multusctl/v1");
    assert_eq!(doc["kind"], "GcReport");
    assert_eq!(doc["dryRun"], true);
    assert_eq!(doc["ok"], true);
    let mut expected = vec![stale.id.clone(), orphan_id.clone()];
    expected.sort();
    assert_eq!(ids(&doc), expected, "exactly the stale ones");
    let s = item(&doc, &stale.id);
    assert_eq!(
        s["pod"],
        json!({"namespace": "team-a", "name": "gone-1", "uid": "uid-g"})
    );
    assert_eq!(s["netns"], json!(stale.ns.path()));
    assert_eq!(
        s["reason"],
        format!("network namespace {} is gone", stale.ns.path().display())
    );
    assert_eq!(s["cache"], json!(["net-a", "net-b"]));
    assert_eq!(s["pins"], json!(env.bpffs.pod_dir(&stale.id)));
    assert_eq!(s["error"], Value::Null);
    let o = item(&doc, &orphan_id);
    assert_eq!(o["pod"], Value::Null);
    assert_eq!(o["netns"], Value::Null);
    assert_eq!(o["cache"], Value::Null);
    assert_eq!(o["pins"], json!(env.bpffs.pod_dir(&orphan_id)));
    assert!(
        o["reason"].as_str().expect("reason").contains("detached"),
        "{o}"
    );
    let table = env.ctl(&["gc", "--dry-run"]);
    assert!(
        table.stdout.contains("WOULD REMOVE")
            && table
                .stdout
                .contains("dry run: would remove 1 cache entry and 2 pin directories"),
        "{}",
        table.stdout
    );
    assert_eq!(
        leaks::host_local_leases(&env.node.ipam_dir()),
        leases_before,
        "--dry-run releases nothing"
    );
    assert_eq!(
        leaks::cache_files(&env.node.cache_dir()),
        cache_before,
        "--dry-run removes no cache"
    );
    assert_eq!(env.bpffs.entries(), pins_before, "--dry-run removes no pin");

    // gc decides from an unlocked read; the teardown asks again under the container's lock, and
    // an entry that no longer qualifies (a concurrent call changed it) is kept whole.
    let conf = multus::config::MultusConf::parse(&serde_json::to_vec(&env.conf).expect("conf"))
        .expect("parse conf");
    let asked = std::cell::Cell::new(0);
    let released = multus::metaplugin::release_cached(
        &conf,
        &multus::cni::ContainerId::parse(&stale.id).unwrap(),
        &[],
        &|entry| {
            asked.set(asked.get() + 1);
            assert_eq!(entry.netns.as_deref(), Some(stale.ns.path()));
            false
        },
    )
    .expect("release_cached");
    assert!(
        matches!(released, multus::metaplugin::Released::Kept),
        "{released:?}"
    );
    assert_eq!(asked.get(), 1, "asked once, under the lock");
    assert_eq!(
        leaks::host_local_leases(&env.node.ipam_dir()),
        leases_before
    );
    assert_eq!(leaks::cache_files(&env.node.cache_dir()), cache_before);

    let out = env.ctl(&["-v", "-o", "json", "gc"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Progress lines name the pod, not only the container id.
    assert!(
        out.stderr
            .contains(&format!("team-a/gone-1 ({}): network namespace", stale.id)),
        "{}",
        out.stderr
    );
    let doc = out.json();
    assert_eq!(doc["dryRun"], false);
    assert_eq!(doc["ok"], true);
    assert_eq!(ids(&doc), expected);

    let leases = leaks::host_local_leases(&env.node.ipam_dir());
    for ip in &stale_ips {
        assert!(
            !leases.iter().any(|l| l.ends_with(&format!("/{ip}"))),
            "lease of {ip} released: {leases:?}"
        );
    }
    for ip in &live_ips {
        assert!(
            leases.iter().any(|l| l.ends_with(&format!("/{ip}"))),
            "lease of {ip} kept: {leases:?}"
        );
    }
    assert_eq!(leases.len(), 2);
    let cache: Vec<String> = cache_before
        .iter()
        .filter(|f| **f != stale.id)
        .cloned()
        .collect();
    assert_eq!(
        leaks::cache_files(&env.node.cache_dir()),
        cache,
        "only the stale cache entry (and its lock) went"
    );
    let of = |p: &str, id: &str| p == id || p.starts_with(&format!("{id}/"));
    let pins: Vec<String> = pins_before
        .iter()
        .filter(|p| !of(p, &stale.id) && !of(p, &orphan_id))
        .cloned()
        .collect();
    assert_eq!(env.bpffs.entries(), pins, "only the stale pins went");
    let mut remaining: Vec<String> = sbr::pods(&cfg)
        .expect("pods")
        .iter()
        .map(ToString::to_string)
        .collect();
    remaining.sort();
    let mut kept = vec![live.id.clone(), standalone_id.clone()];
    kept.sort();
    assert_eq!(remaining, kept);

    let out = env.ctl(&["check"]);
    assert_eq!(out.code, 0, "what is left is healthy: {}", out.stdout);
    let out = env.ctl(&["gc"]);
    assert!(out.stdout.contains("nothing to remove"), "{}", out.stdout);
    sbr::del(
        &cfg,
        &cid(&standalone_id),
        Some(standalone.pod.path()),
        "net1",
    )
    .expect("del standalone");
}

/// Deletes a pod's namespace (the runtime removed the sandbox without a CNI DEL).
fn drop_netns(ns: &Netns) {
    let out = std::process::Command::new("ip")
        .args(["netns", "del", ns.name()])
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn clear_errors_without_root_or_bpffs() {
    let env = Env::new();
    let plain = tempfile::tempdir().expect("tempdir");
    let out = env.ctl(&["--bpffs-dir", &plain.path().display().to_string(), "list"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains(&format!(
            "{} is not on a bpffs: no bpffs is mounted there",
            plain.path().display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    let out = env.ctl_raw(
        &[
            "--cni-dir".into(),
            env.node.cache_dir().display().to_string(),
            "list".into(),
        ],
        Some(65534),
    );
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("multusctl needs root"),
        "{}",
        out.stderr
    );
    let out = env.ctl(&["list", "--no-such-flag"]);
    assert_eq!(out.code, 2, "usage errors exit 2");
    // A bpffs directory that does not exist yet is an empty node, not an error.
    let missing = plain.path().join("never-created");
    let out = env.ctl(&[
        "--bpffs-dir",
        &missing.display().to_string(),
        "-o",
        "json",
        "list",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["items"], json!([]));
    // A configuration that is not JSON is named.
    let bad = env.node.root().join("bad.conf");
    std::fs::write(&bad, b"{not json").expect("write");
    let out = env.ctl_raw(
        &["--conf".into(), bad.display().to_string(), "list".into()],
        None,
    );
    assert_eq!(out.code, 3);
    assert!(
        out.stderr
            .contains(&format!("multus configuration {}: not JSON", bad.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn completions_and_man_page() {
    let env = Env::new();
    let out = env.ctl_raw(&["completions".into(), "bash".into()], Some(65534));
    assert_eq!(out.code, 0, "no root needed");
    assert!(
        out.stdout.contains("_multusctl()") && out.stdout.contains("gc"),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    for shell in ["zsh", "fish"] {
        assert_eq!(
            env.ctl_raw(&["completions".into(), shell.into()], None)
                .code,
            0
        );
    }
    let out = env.ctl_raw(&["man".into()], None);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with(".ie") || out.stdout.contains(".TH multusctl"),
        "roff"
    );
    for sub in ["list", "show", "stats", "check", "gc"] {
        assert!(out.stdout.contains(sub), "man page lists {sub}");
    }
}

/// With a kubeconfig, list and show say what the API knows of each pod: found, phase, node, and
/// whether a sandbox is the pod's current one.
#[test]
fn kubernetes_api_when_configured() {
    let env = Env::new();
    let api = env.node.api_server();
    let kubeconfig = api.write_kubeconfig(env.node.root()).expect("kubeconfig");
    let uid = "0f6c1f9a-0000-4000-8000-00000000c71a";
    api.create_pod(PodSeed::new("team-k", "web-k").uid(uid).node_name("node-7"))
        .expect("pod");
    let old = env.pod("team-k", "web-k", "9e3d2f00-0000-4000-8000-0000000000aa");
    let current = env.pod("team-k", "web-k", uid);
    let gone = env.pod("team-k", "deleted", "1d2c3b4a-0000-4000-8000-000000000bbb");
    let k = kubeconfig.display().to_string();

    let doc = env.ctl(&["--kubeconfig", &k, "-o", "json", "list"]).json();
    assert_eq!(
        item(&doc, &current.id)["api"],
        json!({"status": "found", "uid": uid, "phase": "Running", "nodeName": "node-7", "current": true, "error": null})
    );
    assert_eq!(
        item(&doc, &old.id)["api"]["current"],
        false,
        "recreated pod: the old sandbox is stale"
    );
    assert_eq!(item(&doc, &gone.id)["api"]["status"], "notFound");

    let out = env.ctl(&["--kubeconfig", &k, "-o", "json", "show", "team-k/web-k"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ids(&out.json()),
        vec![current.id.clone(), old.id.clone()],
        "the current sandbox first"
    );
    let table = env.ctl(&["--kubeconfig", &k, "list"]);
    assert!(
        table.stdout.contains("API") && table.stdout.contains("Running (stale sandbox)"),
        "{}",
        table.stdout
    );

    // The API is never required: unreachable within the deadline, the rest is still shown.
    api.begin_outage().expect("outage");
    let started = Instant::now();
    let out = env.ctl(&[
        "--kubeconfig",
        &k,
        "--api-timeout",
        "0.5",
        "-o",
        "json",
        "list",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by --api-timeout: {:?}",
        started.elapsed()
    );
    let doc = out.json();
    assert_eq!(ids(&doc).len(), 3);
    assert_eq!(item(&doc, &current.id)["api"]["status"], "error");
    assert_eq!(item(&doc, &current.id)["interfaces"][1]["sbr"], "managed");
}

/// A JSON document without its live `counters` objects.
fn without_counters(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("counters");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// kubectl's habits: `-n`/`-A` on every command that lists pods, `-o yaml|wide|name`,
/// `--no-headers`, and `show -n NS NAME`.
#[test]
fn kubectl_style_namespaces_and_output_formats() {
    let env = Env::new();
    let a = env.pod("team-a", "web-1", "uid-1");
    let b = env.pod("team-b", "db-0", "uid-2");
    let lines = |o: &Out| -> Vec<String> { o.stdout.lines().map(String::from).collect() };
    for cmd in ["list", "stats", "check", "show"] {
        let target: &[&str] = if cmd == "show" { &["db-0"] } else { &[] };
        let mut args = vec![cmd, "-n", "team-b", "-o", "name"];
        args.extend(target);
        let out = env.ctl(&args);
        assert_eq!(out.code, 0, "{cmd}: {}", out.stderr);
        assert_eq!(lines(&out), vec![b.id.clone()], "{cmd} -n team-b");
    }
    for cmd in ["list", "stats", "check"] {
        let out = env.ctl(&[cmd, "-A", "-o", "name"]);
        assert_eq!(out.code, 0, "{cmd}: {}", out.stderr);
        assert_eq!(lines(&out), vec![a.id.clone(), b.id.clone()], "{cmd} -A");
    }
    assert_eq!(
        env.ctl(&["list", "-n", "team-a", "-A"]).code,
        2,
        "-n and -A conflict"
    );
    let out = env.ctl(&["-o", "json", "gc", "--dry-run", "--namespace", "team-b"]);
    assert_eq!(out.json()["items"], json!([]));

    // YAML says what JSON says.
    let json_doc = env.ctl(&["-o", "json", "list"]).json();
    let out = env.ctl(&["-o", "yaml", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let yaml_doc: Value = serde_norway::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not YAML ({e}): {}", out.stdout));
    assert_eq!(yaml_doc, json_doc);
    assert!(out
        .stdout
        .starts_with("apiVersion: multusctl/v1\nkind: ContainerList\n"));

    // wide: full ids and more columns; --no-headers: the rows alone.
    let out = env.ctl(&["-o", "wide", "list"]);
    let header = lines(&out)[0].clone();
    assert!(
        header.contains("GATEWAYS") && header.contains("PLUGINS"),
        "{header}"
    );
    assert!(out.stdout.contains("10.20.0.1") && out.stdout.contains("bridge,tuning"));
    let out = env.ctl(&["list", "--no-headers"]);
    let rows = lines(&out);
    assert_eq!(rows.len(), 4, "two pods, two interfaces each: {rows:?}");
    assert!(rows.iter().all(|r| !r.contains("CONTAINER")), "{rows:?}");
    assert!(rows[0].starts_with(&a.id), "{rows:?}");
    let out = env.ctl(&["check", "--no-headers"]);
    assert!(!out.stdout.contains("DRIFT  DETAIL"), "{}", out.stdout);
}

/// A path that does not exist is an error (exit 3) naming it and where it came from, not an empty
/// node.
#[test]
fn paths_that_do_not_exist_are_errors() {
    let env = Env::new();
    let missing = env.node.root().join("nonexistent");
    let m = missing.display().to_string();
    for (flag, what) in [
        ("--cni-dir", "the delegate cache directory"),
        ("--conf-dir", "the CNI configuration directory"),
        ("--kubeconfig", "the kubeconfig"),
    ] {
        let mut args = vec![];
        if flag != "--conf-dir" {
            args.extend(["--conf".to_string(), env.conf_path.display().to_string()]);
        }
        args.extend([flag.to_string(), m.clone(), "list".to_string()]);
        let out = env.ctl_raw(&args, None);
        assert_eq!(out.code, 3, "{flag}: {}", out.stdout);
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr
                .contains(&format!("{what} {m} does not exist (from {flag})")),
            "{flag}: {}",
            out.stderr
        );
    }
    // So is a configuration whose cniDir does not exist.
    let mut conf = env.conf.clone();
    conf["cniDir"] = json!(missing);
    let path = env.node.root().join("other.conf");
    std::fs::write(&path, serde_json::to_vec(&conf).expect("json")).expect("write");
    let out = env.ctl_raw(
        &["--conf".into(), path.display().to_string(), "list".into()],
        None,
    );
    assert_eq!(out.code, 3);
    assert!(
        out.stderr
            .contains(&format!("(from cniDir of {})", path.display())),
        "{}",
        out.stderr
    );
}

/// Without --conf, multusctl reads the configuration the runtime uses: the first file of the CNI
/// configuration directory, when it is multus's. So the cache and the pins (ebpfSbr.bpffsDir)
/// are the node's, and the SBR column is right.
#[test]
fn finds_the_runtime_configuration_by_itself() {
    let env = Env::new();
    let a = env.pod("team-a", "web-1", "uid-1");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf_dir = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("00-multus.conflist"),
        serde_json::to_vec(&json!({"cniVersion": "1.0.0", "name": "multus-cni-network",
            "plugins": [env.conf.clone()]}))
        .expect("json"),
    )
    .expect("write");
    std::fs::write(dir.path().join("99-other.conf"), br#"{"type": "bridge"}"#).expect("write");
    let out = env.ctl_raw(
        &["--conf-dir".into(), conf_dir.clone(), "list".into()],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&a.id), "{}", out.stdout);
    let out = env.ctl_raw(
        &[
            "--conf-dir".into(),
            conf_dir.clone(),
            "-o".into(),
            "json".into(),
            "list".into(),
        ],
        None,
    );
    let doc = out.json();
    assert_eq!(item(&doc, &a.id)["sbr"]["state"], "attached");
    assert_eq!(
        item(&doc, &a.id)["sbr"]["pinDir"],
        env.bpffs.path().join(&a.id).display().to_string()
    );
    // Thick mode: the runtime's configuration is the shim's, which names neither the cache nor
    // the pins; the daemon's configuration does, and multusctl reads it as the daemon does.
    let thick = tempfile::tempdir().expect("tempdir");
    let daemon_conf = thick.path().join("daemon-config.json");
    let mut node_keys = env.conf.clone();
    node_keys["socketDir"] = json!(thick.path().join("run"));
    std::fs::write(&daemon_conf, serde_json::to_vec(&node_keys).expect("json")).expect("write");
    std::fs::write(
        thick.path().join("00-multus.conf"),
        serde_json::to_vec(&json!({"cniVersion": "1.0.0", "name": "multus-cni-network",
            "type": "multus-shim", "daemonConfigFile": daemon_conf}))
        .expect("json"),
    )
    .expect("write");
    let out = env.ctl_raw(
        &[
            "--conf-dir".into(),
            thick.path().display().to_string(),
            "-o".into(),
            "json".into(),
            "list".into(),
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    assert_eq!(item(&doc, &a.id)["sbr"]["state"], "attached", "{doc}");
    // When the runtime's first configuration is another plugin's, multus is not the node's
    // network: the defaults are used, and multusctl says so.
    std::fs::write(dir.path().join("00-aaa.conf"), br#"{"type": "bridge"}"#).expect("write");
    let out = env.ctl_raw(
        &[
            "--conf-dir".into(),
            conf_dir,
            "--cni-dir".into(),
            env.node.cache_dir().display().to_string(),
            "list".into(),
        ],
        None,
    );
    assert!(
        out.stderr.contains("00-aaa.conf is not multus's"),
        "{}",
        out.stderr
    );
}

/// Pins without a cache entry (ebpf-sbr chained by another meta-plugin) record their namespace:
/// `show` reports it and the interfaces in it.
#[test]
fn show_reads_the_namespace_of_pins_without_a_cache_entry() {
    let env = Env::new();
    let mini = MiniPod::new();
    let id = unique_name("pin");
    sbr::add(
        &env.sbr_cfg(),
        &cid(&id),
        mini.pod.path(),
        &mini.net1_spec(),
    )
    .expect("add");
    let out = env.ctl(&["-o", "json", "show", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = out.json();
    let c = item(&doc, &id);
    assert_eq!(c["cached"], false);
    assert_eq!(c["netns"], mini.pod.path().display().to_string());
    assert_eq!(c["netnsState"], "present");
    let (ifindex, mtu) = link(&mini.pod, "net1");
    assert_eq!(c["interfaces"][0]["ifname"], "net1");
    assert_eq!(c["interfaces"][0]["live"]["ifindex"], ifindex);
    assert_eq!(c["interfaces"][0]["live"]["mtu"], mtu);
    let out = env.ctl(&["show", &id]);
    assert!(
        out.stdout.contains(&format!(
            "Netns:      {} (present)",
            mini.pod.path().display()
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("ifindex {ifindex} mtu {mtu} up")),
        "{}",
        out.stdout
    );
    // Gone, it is reported gone.
    mini.pod.delete();
    let doc = env.ctl(&["-o", "json", "show", &id]).json();
    assert_eq!(item(&doc, &id)["netnsState"], "gone");
    sbr::gc(&env.sbr_cfg(), &[]).expect("gc");
}

/// `multusctl logs` prints the debug records of a pod's programs, with interface names; the pod
/// is named on each line.
#[test]
fn logs_show_the_debug_records_of_a_pod() {
    let env = Env::new();
    let ns = Netns::new("cp");
    let id = unique_name("ctl");
    let args = cni::k8s_args("team-a", "dbg-1", None, Some("uid-d"));
    CniCall::new(&env.node, "ADD", &id, Some(&ns), "eth0")
        .args(&args)
        .run(&env.node, &env.multus, &env.conf)
        .assert_ok();
    let mut cfg = env.sbr_cfg();
    cfg.debug = true;
    let spec = InterfaceSpec {
        ifname: "net1".into(),
        addresses: cached_addresses(&env.cache_entry(&id), "net1"),
    };
    sbr::add(&cfg, &cid(&id), ns.path(), &spec).unwrap_or_else(|e| panic!("sbr add: {e}"));
    let net1 = spec.addresses[0].address.to_string();
    // From the node's br-a address: the replies' route is eth0's subnet, their source net1's
    // address, so the egress program redirects them to net1 (and logs it).
    assert!(env.node.ns.ping(&net1, 2, &["-I", "10.10.0.1"]) > 0);
    let out = env.ctl(&["logs", "team-a/dbg-1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (eth0, _) = link(&ns, "eth0");
    let (net1_index, _) = link(&ns, "net1");
    let wanted = format!("if {eth0} (eth0) -> if {net1_index} (net1)");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("team-a/dbg-1 ({id})")) && l.contains(&wanted)),
        "{wanted} in {}",
        out.stdout
    );
    CniCall::new(&env.node, "DEL", &id, Some(&ns), "eth0")
        .args(&args)
        .run(&env.node, &env.multus, &env.conf)
        .assert_ok();
    sbr::del(&cfg, &cid(&id), Some(ns.path()), "net1").ok();
}

/// `multusctl man` lists the subcommands' pages (multusctl-<name>(1)); `man --dir` writes each
/// of them with its flags, and `man <name>` prints one.
#[test]
fn man_pages_for_every_subcommand_with_their_flags() {
    let env = Env::new();
    let main = env.ctl_raw(&["man".into()], Some(65534));
    assert_eq!(main.code, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = env.ctl_raw(
        &[
            "man".into(),
            "--dir".into(),
            dir.path().display().to_string(),
        ],
        None,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let flags: &[(&str, &[&str])] = &[
        ("list", &["namespace", "output"]),
        ("show", &["TARGET"]),
        ("stats", &["watch", "interval", "count"]),
        ("check", &["TARGET"]),
        ("gc", &["dry\\-run"]),
        ("logs", &["follow"]),
        ("completions", &["SHELL"]),
        ("man", &["dir"]),
    ];
    for (sub, sub_flags) in flags {
        let listed = format!("multusctl\\-{sub}(1)");
        assert!(main.stdout.contains(&listed), "multusctl(1) lists {listed}");
        let page = std::fs::read_to_string(dir.path().join(format!("multusctl-{sub}.1")))
            .unwrap_or_else(|e| panic!("page of {sub}: {e}"));
        assert!(page.contains(&format!(".TH multusctl-{sub} 1")), "{page}");
        for f in *sub_flags {
            assert!(page.contains(f), "multusctl-{sub}(1) mentions {f}: {page}");
        }
        let one = env.ctl_raw(&["man".into(), sub.to_string()], None);
        assert_eq!(one.stdout, page, "man {sub} prints the same page");
    }
    assert!(
        !main.stdout.contains("multusctl\\-help(1)"),
        "no page is listed that is not written"
    );
}

/// docs/cli.md documents what the binary has: a section per subcommand, and every flag.
#[test]
fn cli_md_documents_every_subcommand_and_flag() {
    use clap::CommandFactory;
    let text = std::fs::read_to_string(bins::workspace_root().join("docs/cli.md")).expect("cli.md");
    let headings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .collect();
    let cmd = multus::ctl::Cli::command();
    let mut missing = Vec::new();
    let flags = |c: &clap::Command, missing: &mut Vec<String>| {
        for a in c.get_arguments() {
            if let Some(long) = a.get_long().filter(|l| !["help", "version"].contains(l)) {
                if !text.contains(&format!("--{long}")) {
                    missing.push(format!("{} --{long}", c.get_name()));
                }
            }
        }
    };
    flags(&cmd, &mut missing);
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        if !headings
            .iter()
            .any(|h| h.split(' ').any(|w| w.trim_matches('`') == name))
        {
            missing.push(format!("a section for {name}"));
        }
        flags(sub, &mut missing);
    }
    assert!(missing.is_empty(), "docs/cli.md lacks: {missing:?}");
}

/// A typo in a key that does not change what is torn down (`logLevel`, `logOptions`) never blocks
/// `multusctl gc`, as it never blocks DEL: the key is named on stderr, its default used, and the
/// stale pod is collected with its leases.
#[test]
fn a_logging_typo_never_blocks_gc() {
    let env = Env::new();
    let stale = env.pod("team-a", "gone-typo", "uid-t");
    let mut conf = env.conf.clone();
    conf["logLevel"] = json!("info");
    conf["logOptions"] = json!({"maxSize": "ten"});
    std::fs::write(
        &env.conf_path,
        serde_json::to_vec_pretty(&conf).expect("json"),
    )
    .expect("write conf");
    drop_netns(&stale.ns);
    let out = env.ctl(&["gc"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("logLevel") && out.stderr.contains("logOptions"),
        "the ignored keys are named: {}",
        out.stderr
    );
    assert!(
        leaks::cache_files(&env.node.cache_dir()).is_empty(),
        "cache left"
    );
    assert!(
        leaks::host_local_leases(&env.node.ipam_dir()).is_empty(),
        "leases left"
    );
}
