//! `cargo xtask bench thick`: in one run, side by side, two delegates called directly, the thin
//! `multus`, and `multus-shim` + `multus-daemon`, each without the API (both networks inline) and
//! with it (pod, NAD, network-status PATCH; the daemon reads pod and NAD from its watch caches);
//! then the daemon's RSS with many pods on the node and NADs in its caches, and its start-to-ready
//! time with the API reachable.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{ensure, Result};
use serde_json::{json, Value};
use testkit::{
    bins, cni, confs,
    kube_api::{KubeApiServer, NadSeed, PodSeed, ServerOptions},
    thick::Daemon,
    CniCall, CniOutput, Netns, Node,
};

use super::{
    direct_pair, report,
    stats::{ms, Samples},
};

const NODE: &str = "bench-node";
const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// One path under test: its ADD and DEL samples.
#[derive(Default)]
struct Timings {
    add: Samples,
    del: Samples,
}

pub fn run(bins_dir: &Path, cycles: usize, pods: usize, nads: usize, write: bool) -> Result<()> {
    // The test kit's daemon helper finds the binaries here.
    std::env::set_var("MULTUS_BIN_DIR", bins_dir);
    let node = Node::new();
    let multus = bins_dir.join("multus");
    let shim = bins_dir.join("multus-shim");
    let api = KubeApiServer::start_with(ServerOptions {
        netns: Some(node.ns.path().to_path_buf()),
        ..Default::default()
    })?;
    let kubeconfig = api.write_kubeconfig(node.root())?;
    let cluster = confs::bridge("cluster", "br-c", "10.10.0.0/24", "1.0.0", &node.ipam_dir());
    let blue = confs::bridge("blue", "br-b", "10.20.0.0/24", "1.0.0", &node.ipam_dir());
    api.create_nad(NadSeed::new("bench", "blue", blue.to_string()))?;
    // Thin: the same configuration as `bench core` (both inline) and `bench kube` (API).
    let thin_plain = {
        let mut c = confs::multus(
            "1.0.0",
            &node.cache_dir(),
            &node.bin_dir(),
            vec![cluster.clone(), blue.clone()],
        );
        c["logLevel"] = Value::from("error");
        c
    };
    let mut thin_api = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![cluster.clone()],
    );
    thin_api["kubeconfig"] = json!(kubeconfig);
    thin_api["logLevel"] = Value::from("error");
    // Thick: one daemon without the API, one with it (watch caches of this node's pods and NADs).
    let plain_daemon = Daemon::start(&node, json!({"logLevel": "error"}));
    let mut api_daemon = Daemon::configure(
        &node,
        json!({"logLevel": "error", "kubeconfig": kubeconfig}),
    );
    api_daemon
        .env
        .push(("MULTUS_NODE_NAME".into(), NODE.into()));
    let started = Instant::now();
    api_daemon.spawn(&node);
    api_daemon.wait_ready(Duration::from_secs(10));
    let start_to_ready = started.elapsed();
    let mut shim_plain = plain_daemon.shim_conf("1.0.0", vec![cluster.clone(), blue.clone()]);
    shim_plain["logLevel"] = Value::from("error");
    let mut shim_api = api_daemon.shim_conf("1.0.0", vec![cluster.clone()]);
    shim_api["logLevel"] = Value::from("error");
    // The pods of the API paths exist before the loop, so that the daemon's cache holds them
    // (as kubelet creates the sandbox of a pod the API server has had for a while).
    let total = cycles + 3;
    let mut uids = Vec::new();
    for i in 0..total {
        let pod = |name: String| -> Result<String> {
            let obj = api.create_pod(
                PodSeed::new("bench", &name)
                    .node_name(NODE)
                    .annotation(NETWORKS, "blue"),
            )?;
            Ok(obj["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        };
        uids.push((pod(format!("thin{i}"))?, pod(format!("thick{i}"))?));
    }
    api_daemon.wait_cache("pods", 2 * total, Duration::from_secs(60));
    api_daemon.wait_cache("network-attachment-definitions", 1, Duration::from_secs(60));
    let bridge = bins::reference("bridge");
    let (mut direct, mut thin, mut thin_k, mut thick, mut thick_k): (
        Timings,
        Timings,
        Timings,
        Timings,
        Timings,
    ) = Default::default();
    let pod = Netns::new("bt");
    let run_pair = |bin: &Path, conf: &Value, id: &str, args: Option<String>| {
        let mut add = CniCall::new(&node, "ADD", id, Some(&pod), "eth0");
        if let Some(a) = &args {
            add = add.args(a);
        }
        let out: CniOutput = add.run(&node, bin, conf);
        out.assert_ok();
        let mut del = add.clone();
        del.command = "DEL".into();
        let d = del.run(&node, bin, conf);
        d.assert_ok();
        (out.elapsed, d.elapsed)
    };
    let args = |name: &str, id: &str, uid: &str| cni::k8s_args("bench", name, Some(id), Some(uid));
    for (i, (thin_uid, thick_uid)) in uids.iter().enumerate() {
        let warm = i < 3;
        // Rotate the order so that no path always runs first.
        for k in 0..5 {
            let which = (i + k) % 5;
            let (a, d, p): (Duration, Duration, &mut Timings) = match which {
                0 => {
                    let (a, d) =
                        direct_pair(&node, &bridge, &pod, &format!("d{i}"), &cluster, &blue);
                    (a, d, &mut direct)
                }
                1 => {
                    let (a, d) = run_pair(&multus, &thin_plain, &format!("t{i}"), None);
                    (a, d, &mut thin)
                }
                2 => {
                    let id = format!("tk{i}");
                    let a = args(&format!("thin{i}"), &id, thin_uid);
                    let (a, d) = run_pair(&multus, &thin_api, &id, Some(a));
                    (a, d, &mut thin_k)
                }
                3 => {
                    let (a, d) = run_pair(&shim, &shim_plain, &format!("s{i}"), None);
                    (a, d, &mut thick)
                }
                _ => {
                    let id = format!("sk{i}");
                    let a = args(&format!("thick{i}"), &id, thick_uid);
                    let (a, d) = run_pair(&shim, &shim_api, &id, Some(a));
                    (a, d, &mut thick_k)
                }
            };
            if !warm {
                p.add.push(a);
                p.del.push(d);
            }
        }
    }
    ensure!(
        api.request_count("GET", "/api/v1/namespaces/bench/pods/thick*") == 0,
        "the daemon GET a pod its cache should have held"
    );
    drop(api_daemon);
    // RSS with `pods` pods on this node and `nads` NADs in the caches.
    let (rss, big_ready) = rss_with(&node, &api, &kubeconfig, pods, nads)?;
    let row = |name: &str, s: &Samples| format!("| {name} | {} | {} |", ms(s.p50()), ms(s.p90()));
    let over = |p: &Timings, add: bool| {
        if add {
            p.add.minus(&direct.add)
        } else {
            p.del.minus(&direct.del)
        }
    };
    let body = format!(
        "## thick: multus-shim + multus-daemon vs thin multus vs the delegates called directly\n\n\
         Command: `cargo xtask bench thick --cycles {cycles}` (release build) · {}\n\n\
         Two `bridge` + `host-local` networks. Without the API both are inline in the configuration; with it the \
         second comes from the pod's annotation (NAD `blue`), and multus reads the pod and the NAD and patches \
         network-status (the in-tree API stand-in on the node's loopback). Thin `multus` GETs pod and NAD; the daemon \
         reads them from its watch caches (the pods exist before the cycle, as for a sandbox kubelet creates). Each \
         cycle runs the five paths in rotating order on the same empty pod namespace; times are wall-clock per CNI \
         call including process start; overheads are paired per-cycle differences against the direct calls.\n\n\
         | measurement | p50 | p90 |\n|---|---|---|\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n\n\
         | daemon | value |\n|---|---|\n| start to ready (`/readyz` 200), API reachable | {} |\n\
         | RSS with {pods} pods on the node and {nads} NADs in the caches | {:.1} MiB |\n\
         | start to caches synced with them | {} |\n\n\
         Goals: ADD overhead of shim + daemon over the direct delegates ≤ 1.0 ms p50 with the API, ≤ 0.8 ms without; \
         DEL overhead ≤ 0.5 ms; daemon RSS ≤ 30 MiB; start to ready ≤ 1 s.\n",
        report::machine(),
        row("direct ADD (2 delegates)", &direct.add),
        row("direct DEL (2 delegates)", &direct.del),
        row("thin multus ADD, no API", &thin.add),
        row("thin multus DEL, no API", &thin.del),
        row("shim + daemon ADD, no API", &thick.add),
        row("shim + daemon DEL, no API", &thick.del),
        row("→ overhead ADD shim + daemon, no API (paired)", &over(&thick, true)),
        row("→ overhead DEL shim + daemon, no API (paired)", &over(&thick, false)),
        row("thin multus ADD with the API (GET pod, GET NAD, PATCH)", &thin_k.add),
        row("shim + daemon ADD with the API (caches, PATCH)", &thick_k.add),
        row("→ overhead ADD thin with the API (paired)", &over(&thin_k, true)),
        row("→ overhead ADD shim + daemon with the API (paired)", &over(&thick_k, true)),
        row("→ overhead DEL thin with the API (paired)", &over(&thin_k, false)),
        row("→ overhead DEL shim + daemon with the API (paired)", &over(&thick_k, false)),
        ms(start_to_ready.as_secs_f64() * 1e6),
        rss as f64 / 1024.0,
        ms(big_ready.as_secs_f64() * 1e6),
    );
    println!("{body}");
    if write {
        report::write_section("thick", &body)?;
    }
    Ok(())
}

/// Starts a daemon whose caches hold `pods` pods of this node and `nads` NADs; its RSS (KiB) once
/// they are synced, and how long that took from start.
fn rss_with(
    node: &Node,
    api: &KubeApiServer,
    kubeconfig: &Path,
    pods: usize,
    nads: usize,
) -> Result<(u64, Duration)> {
    let nad = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "bridge": "br-x",
        "ipam": {"type": "host-local", "subnet": "10.30.0.0/24"}})
    .to_string();
    for i in 0..nads {
        api.create_nad(NadSeed::new(
            &format!("ns{}", i % 20),
            &format!("nad{i}"),
            nad.clone(),
        ))?;
    }
    for i in 0..pods {
        api.create_pod(
            PodSeed::new(&format!("ns{}", i % 20), &format!("p{i}"))
                .node_name("rss-node")
                .label("app", "bench")
                .annotation(NETWORKS, "nad1,nad2"),
        )?;
    }
    let mut d = Daemon::configure(node, json!({"logLevel": "error", "kubeconfig": kubeconfig}));
    d.env.push(("MULTUS_NODE_NAME".into(), "rss-node".into()));
    let started = Instant::now();
    d.spawn(node);
    d.wait_ready(Duration::from_secs(10));
    d.wait_cache("pods", pods, Duration::from_secs(120));
    d.wait_cache(
        "network-attachment-definitions",
        nads + 1,
        Duration::from_secs(120),
    );
    let synced = started.elapsed();
    // Let the allocator settle after the initial lists.
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid()))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Ok((rss, synced))
}
