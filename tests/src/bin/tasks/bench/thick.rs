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
    thick_parts as parts,
};

const NODE: &str = "bench-node";
/// Concurrent ADDs of the burst (the figure).
const BURST: usize = 200;
/// How long each call of the burst holds its slot in the no-op delegate.
const BURST_HOLD_MS: u64 = 200;
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
    let fifo = parts::realtime();
    if !fifo {
        eprintln!("bench thick: SCHED_FIFO refused; the figures include the machine's other work");
    }
    let node = Node::new();
    let recorder = bins::test_bin("cni-recorder");
    node.install("cni-recorder", &recorder);
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
    api.create_nad(NadSeed::new(
        "bench",
        "noopnet",
        parts::noop("noopnet").to_string(),
    ))?;
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
    let uids = pod_pairs(&api, total, "", "blue")?;
    let noop_uids = pod_pairs(&api, total, "n", "noopnet")?;
    api_daemon.wait_cache("pods", 4 * total, Duration::from_secs(60));
    api_daemon.wait_cache("network-attachment-definitions", 2, Duration::from_secs(60));
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
    // The same paths around a delegate that does nothing: what remains is multus's own cost.
    let noop = parts::noop("noop");
    let noop_cluster = parts::noop("cluster");
    let mut thin_noop = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![noop.clone()],
    );
    thin_noop["logLevel"] = Value::from("error");
    let mut thin_noop_api = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![noop_cluster.clone()],
    );
    thin_noop_api["kubeconfig"] = json!(kubeconfig);
    thin_noop_api["logLevel"] = Value::from("error");
    let mut shim_noop = plain_daemon.shim_conf("1.0.0", vec![noop.clone()]);
    shim_noop["logLevel"] = Value::from("error");
    let mut shim_noop_api = api_daemon.shim_conf("1.0.0", vec![noop_cluster.clone()]);
    shim_noop_api["logLevel"] = Value::from("error");
    let (mut n_direct, mut n_thin, mut n_thick, mut n_direct2, mut n_thin_k, mut n_thick_k): (
        Timings,
        Timings,
        Timings,
        Timings,
        Timings,
        Timings,
    ) = Default::default();
    let noopnet = parts::noop("noopnet");
    for (i, (thin_uid, thick_uid)) in noop_uids.iter().enumerate() {
        let warm = i < 3;
        for k in 0..6 {
            let (a, d, p): (Duration, Duration, &mut Timings) = match (i + k) % 6 {
                0 => {
                    let (a, d) =
                        parts::add_del(&node, &recorder, &noop, &pod, &format!("nd{i}"), None);
                    (a, d, &mut n_direct)
                }
                1 => {
                    let (a, d) =
                        parts::add_del(&node, &multus, &thin_noop, &pod, &format!("nt{i}"), None);
                    (a, d, &mut n_thin)
                }
                2 => {
                    let (a, d) =
                        parts::add_del(&node, &shim, &shim_noop, &pod, &format!("ns{i}"), None);
                    (a, d, &mut n_thick)
                }
                3 => {
                    let (a, d) = direct_pair(
                        &node,
                        &recorder,
                        &pod,
                        &format!("nd2{i}"),
                        &noop_cluster,
                        &noopnet,
                    );
                    (a, d, &mut n_direct2)
                }
                4 => {
                    let id = format!("ntk{i}");
                    let a = args(&format!("nthin{i}"), &id, thin_uid);
                    let (a, d) =
                        parts::add_del(&node, &multus, &thin_noop_api, &pod, &id, Some(&a));
                    (a, d, &mut n_thin_k)
                }
                _ => {
                    let id = format!("nsk{i}");
                    let a = args(&format!("nthick{i}"), &id, thick_uid);
                    let (a, d) = parts::add_del(&node, &shim, &shim_noop_api, &pod, &id, Some(&a));
                    (a, d, &mut n_thick_k)
                }
            };
            if !warm {
                p.add.push(a);
                p.del.push(d);
            }
        }
    }
    let starts = [
        (
            "a minimal plugin (the recorder)",
            parts::version_start(&node, &recorder, cycles),
        ),
        ("multus-shim", parts::version_start(&node, &shim, cycles)),
        ("multus", parts::version_start(&node, &multus, cycles)),
    ];
    ensure!(
        api.request_count("GET", "/api/v1/namespaces/bench/pods/thick*") == 0
            && api.request_count("GET", "/api/v1/namespaces/bench/pods/nthick*") == 0,
        "the daemon GET a pod its cache should have held"
    );
    drop(api_daemon);
    // RSS with `pods` pods on this node and `nads` NADs in the caches.
    let (rss, big_ready) = rss_with(&node, &api, &kubeconfig, pods, nads)?;
    let sbr = parts::sbr_step(&node, cycles)?;
    let (sbr_daemon, sbr_debian) = sbr.sums();
    let (idle, peak, threads) = parts::rss_burst(&node, BURST, BURST_HOLD_MS)?;
    let row = parts::row;
    let over = |p: &Timings, base: &Timings, add: bool| {
        if add {
            p.add.minus(&base.add)
        } else {
            p.del.minus(&base.del)
        }
    };
    let lines = |rows: Vec<String>| rows.join("\n");
    let bridge_rows = lines(vec![
        row("direct ADD (2 delegates)", &direct.add),
        row("direct DEL (2 delegates)", &direct.del),
        row("thin multus ADD, no API", &thin.add),
        row("thin multus DEL, no API", &thin.del),
        row("shim + daemon ADD, no API", &thick.add),
        row("shim + daemon DEL, no API", &thick.del),
        row(
            "→ overhead ADD shim + daemon, no API (paired)",
            &over(&thick, &direct, true),
        ),
        row(
            "→ overhead DEL shim + daemon, no API (paired)",
            &over(&thick, &direct, false),
        ),
        row(
            "thin multus ADD with the API (GET pod, GET NAD, PATCH)",
            &thin_k.add,
        ),
        row(
            "shim + daemon ADD with the API (caches, PATCH)",
            &thick_k.add,
        ),
        row(
            "→ overhead ADD thin with the API (paired)",
            &over(&thin_k, &direct, true),
        ),
        row(
            "→ overhead ADD shim + daemon with the API (paired)",
            &over(&thick_k, &direct, true),
        ),
        row(
            "→ overhead DEL thin with the API (paired)",
            &over(&thin_k, &direct, false),
        ),
        row(
            "→ overhead DEL shim + daemon with the API (paired)",
            &over(&thick_k, &direct, false),
        ),
    ]);
    let mut noop_rows = starts
        .iter()
        .map(|(name, s)| row(&format!("process start of {name} (VERSION)"), s))
        .collect::<Vec<_>>();
    noop_rows.extend([
        row("direct ADD (1 no-op delegate)", &n_direct.add),
        row("direct DEL (1 no-op delegate)", &n_direct.del),
        row(
            "→ overhead ADD thin multus, no API (paired)",
            &over(&n_thin, &n_direct, true),
        ),
        row(
            "→ overhead DEL thin multus, no API (paired)",
            &over(&n_thin, &n_direct, false),
        ),
        row(
            "→ overhead ADD shim + daemon, no API (paired)",
            &over(&n_thick, &n_direct, true),
        ),
        row(
            "→ overhead DEL shim + daemon, no API (paired)",
            &over(&n_thick, &n_direct, false),
        ),
        row("direct ADD (2 no-op delegates)", &n_direct2.add),
        row(
            "→ overhead ADD thin multus with the API (paired)",
            &over(&n_thin_k, &n_direct2, true),
        ),
        row(
            "→ overhead ADD shim + daemon with the API (paired)",
            &over(&n_thick_k, &n_direct2, true),
        ),
        row(
            "→ overhead DEL thin multus with the API (paired)",
            &over(&n_thin_k, &n_direct2, false),
        ),
        row(
            "→ overhead DEL shim + daemon with the API (paired)",
            &over(&n_thick_k, &n_direct2, false),
        ),
    ]);
    let sbr_rows = lines(vec![
        row("ebpf-sbr ADD, in the daemon", &sbr.daemon_add),
        row("ebpf-sbr DEL, in the daemon", &sbr.daemon_del),
        row("Debian sbr ADD, process", &sbr.debian_add),
        row("Debian sbr DEL, process", &sbr.debian_del),
        row("ebpf-sbr ADD+DEL in the daemon", &sbr_daemon),
        row("Debian sbr ADD+DEL", &sbr_debian),
    ]);
    let body = format!(
        "## thick: multus-shim + multus-daemon vs thin multus vs the delegates called directly\n\n\
         Command: `cargo xtask bench thick --cycles {cycles}` (release build) · {}\n\n\
         The bench and everything it starts (daemons, shims, plugins, the API stand-in) run at SCHED_FIFO \
         priority 10{}, so that other work on the machine does not land in the figures. Times are wall-clock \
         per CNI call including process start; overheads are paired per-cycle differences against the \
         delegates called directly; each cycle runs the paths in rotating order on the same pod namespace.\n\n\
         ### Two bridge networks\n\n\
         Two `bridge` + `host-local` networks. Without the API both are inline in the configuration; with it the \
         second comes from the pod's annotation (NAD `blue`), and multus reads the pod and the NAD and patches \
         network-status (the in-tree API stand-in on the node's loopback). Thin `multus` GETs pod and NAD; the daemon \
         reads them from its watch caches (the pods exist before the cycle, as for a sandbox kubelet creates). The \
         bridge plugin's own variance (see p90) is larger than the overhead measured here: the no-op table below \
         isolates it.\n\n\
         | measurement | p50 | p90 |\n|---|---|---|\n{bridge_rows}\n\n\
         ### multus's own cost: a delegate that does nothing\n\n\
         The same paths with the test kit's recorder plugin as the delegate (it reads its configuration and \
         answers an empty result). The process start of a minimal plugin is the floor of any CNI call, and the \
         shim's own process start is the floor of the thick overhead. With the API: the cluster network and \
         the annotation's NAD `noopnet` are both no-op delegates; the daemon reads pod and NAD from its caches \
         and PATCHes network-status (its pod events are sent in the background).\n\n\
         | measurement | p50 | p90 |\n|---|---|---|\n{}\n\n\
         ### The SBR step inside the daemon vs Debian's sbr as a process\n\n\
         A [bridge, sbr] network with `ebpfSbr.replaceSbr` in the daemon configuration: the step runs in the \
         daemon, its time read from the daemon's log (`delegate returned (in-process)`); Debian's sbr runs as a \
         process after the same bridge, called directly, on the same pod namespace. Steady state: the programs \
         are loaded and pinned node-wide by the first step.\n\n\
         | measurement | p50 | p90 |\n|---|---|---|\n{sbr_rows}\n\n\
         → ebpf-sbr in the daemon / Debian sbr, ADD+DEL p50: **{:.2}×**\n\n\
         ### The daemon\n\n\
         | daemon | value |\n|---|---|\n| start to ready (`/readyz` 200), API reachable | {} |\n\
         | RSS with {pods} pods on the node and {nads} NADs in the caches | {:.1} MiB |\n\
         | start to caches synced with them | {} |\n\
         | RSS idle (no API, after one call) | {:.1} MiB |\n\
         | highest RSS during {BURST} concurrent ADDs, then {BURST} DELs, each holding its slot {BURST_HOLD_MS} ms | {:.1} MiB ({:.2}× idle; {threads} threads at most) |\n\n\
         Goals: ADD overhead of shim + daemon over the direct delegates ≤ 1.0 ms p50 with the API, ≤ 0.8 ms without; \
         DEL overhead ≤ 0.5 ms; SBR step in the daemon ≤ 0.3× Debian sbr (ADD+DEL); daemon RSS ≤ 30 MiB, under \
         200 concurrent ADDs within 2× of idle; start to ready ≤ 1 s.\n",
        report::machine(),
        if fifo { "" } else { " (refused by the kernel on this run: other work may show)" },
        lines(noop_rows),
        sbr_daemon.p50() / sbr_debian.p50(),
        ms(start_to_ready.as_secs_f64() * 1e6),
        rss as f64 / 1024.0,
        ms(big_ready.as_secs_f64() * 1e6),
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak as f64 / idle.max(1) as f64,
    );
    println!("{body}");
    if write {
        report::write_section("thick", &body)?;
    }
    Ok(())
}

/// `total` pairs of pods on this node (`<prefix>thin<i>`, `<prefix>thick<i>`) asking for the
/// network `annotation`; their UIDs.
fn pod_pairs(
    api: &KubeApiServer,
    total: usize,
    prefix: &str,
    annotation: &str,
) -> Result<Vec<(String, String)>> {
    let pod = |name: String| -> Result<String> {
        let obj = api.create_pod(
            PodSeed::new("bench", &name)
                .node_name(NODE)
                .annotation(NETWORKS, annotation),
        )?;
        Ok(obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };
    (0..total)
        .map(|i| {
            Ok((
                pod(format!("{prefix}thin{i}"))?,
                pod(format!("{prefix}thick{i}"))?,
            ))
        })
        .collect()
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
        nads + 2,
        Duration::from_secs(120),
    );
    let synced = started.elapsed();
    // Let the allocator settle after the initial lists.
    std::thread::sleep(Duration::from_millis(500));
    let rss = parts::proc_status(d.pid(), "VmRSS:")?;
    Ok((rss, synced))
}
