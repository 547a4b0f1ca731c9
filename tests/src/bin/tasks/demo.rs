//! `cargo xtask demo`: a local "node" made of network namespaces. Takes the release binaries
//! `cargo xtask` built, installs them into a temporary CNI bin/conf directory, adds a pod with two networks through the
//! real `multus` binary, shows its interfaces and result, pings both networks from client
//! namespaces, deletes the pod and shows that nothing is left. Each step prints the command a
//! user would type to do the same by hand (docs/cli.md, "By hand").

use std::process::Command;

use anyhow::{bail, ensure, Result};
use serde_json::Value;
use testkit::{cni, confs, leaks, CniCall, Netns, Node};

pub fn run(bins: &std::path::Path) -> Result<()> {
    let node = Node::new();
    let multus = bins.join("multus");
    node.install("multus", &multus);
    step(&format!(
        "node namespace {} with CNI dirs under {}",
        node.ns.name(),
        node.root().display()
    ));
    let conf = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![
            confs::bridge("net-a", "br-a", "10.10.0.0/24", "1.0.0", &node.ipam_dir()),
            confs::bridge_tuning_list("net-b", "br-b", "10.20.0.0/24", "1.0.0", &node.ipam_dir()),
        ],
    );
    let conf_path = node.root().join("conf").join("00-multus.conf");
    std::fs::write(&conf_path, serde_json::to_vec_pretty(&conf)?)?;
    println!("{}", std::fs::read_to_string(&conf_path)?);
    let pod = Netns::new("pod");
    step(&format!(
        "ADD pod sandbox {} through {}",
        pod.name(),
        multus.display()
    ));
    println!(
        "by hand: CNI_COMMAND=ADD CNI_CONTAINERID=demo-pod CNI_NETNS={} CNI_IFNAME=eth0 CNI_PATH={} \\\n  \
         nsenter --net={} {} < {}",
        pod.path().display(),
        node.cni_path(),
        node.ns.path().display(),
        node.bin_dir().join("multus").display(),
        conf_path.display()
    );
    let out = CniCall::new(&node, "ADD", "demo-pod", Some(&pod), "eth0").run(
        &node,
        &node.bin_dir().join("multus"),
        &conf,
    );
    if !out.status.success() {
        bail!("ADD failed: {}{}", out.stdout, out.stderr);
    }
    println!(
        "result ({:?}):\n{}",
        out.elapsed,
        serde_json::to_string_pretty(out.json.as_ref().unwrap_or(&Value::Null))?
    );
    step("interfaces inside the pod");
    print_cmd(Command::new("ip").args(["-n", pod.name(), "-br", "addr"]));
    let eth0 = first_ip(&pod, "eth0")?;
    let net1 = first_ip(&pod, "net1")?;
    let cli_a = client(&node, "br-a", "10.10.0.200/24")?;
    let cli_b = client(&node, "br-b", "10.20.0.200/24")?;
    step(&format!(
        "ping eth0 ({eth0}) from a client on net-a, net1 ({net1}) from a client on net-b"
    ));
    let a = cli_a.ping(&eth0, 3, &[]);
    let b = cli_b.ping(&net1, 3, &[]);
    println!("net-a: {}   net-b: {}", verdict(a), verdict(b));
    step("DEL the pod");
    let del = CniCall::new(&node, "DEL", "demo-pod", Some(&pod), "eth0").run(
        &node,
        &node.bin_dir().join("multus"),
        &conf,
    );
    ensure!(del.status.success(), "DEL failed: {}", del.stdout);
    println!("DEL took {:?}", del.elapsed);
    let left_links = pod.link_names();
    let left_leases = leaks::host_local_leases(&node.ipam_dir());
    let left_cache = leaks::cache_files(&node.cache_dir());
    println!("pod interfaces left: {left_links:?}\nIP leases left: {left_leases:?}\ncache files left: {left_cache:?}");
    ensure!(a > 0 && b > 0, "a ping got no reply");
    ensure!(
        left_links.is_empty() && left_leases.is_empty() && left_cache.is_empty(),
        "something was left behind"
    );
    step("part 1 done: both networks answered, and nothing was left behind");
    kubernetes(&node, &cli_b)?;
    source_based_routing(bins)?;
    step("done");
    Ok(())
}

/// Part 2: the same node with the Kubernetes API (the in-tree stand-in, real HTTPS and JSON): a
/// NetworkAttachmentDefinition, a pod annotated with it, ADD through multus, and kubectl reading
/// the network-status multus wrote.
fn kubernetes(node: &Node, cli_b: &Netns) -> Result<()> {
    use testkit::kube_api::{KubeApiServer, NadSeed, PodSeed, ServerOptions};
    step("part 2: Kubernetes — API server stand-in on the node's loopback");
    let api = KubeApiServer::start_with(ServerOptions {
        netns: Some(node.ns.path().to_path_buf()),
        ..Default::default()
    })?;
    let kubeconfig = api.write_kubeconfig(node.root())?;
    let blue = confs::bridge("blue", "br-b", "10.20.0.0/24", "1.0.0", &node.ipam_dir());
    api.create_nad(NadSeed::new("default", "blue", blue.to_string()))?;
    let annotation = r#"[{"name": "blue", "interface": "data0", "default-route": ["10.20.0.1"]}]"#;
    let pod_obj = api.create_pod(
        PodSeed::new("default", "demo").annotation("k8s.v1.cni.cncf.io/networks", annotation),
    )?;
    let uid = pod_obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!("NetworkAttachmentDefinition default/blue: {blue}\npod default/demo annotated k8s.v1.cni.cncf.io/networks: {annotation}");
    let mut conf = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![confs::bridge(
            "cluster",
            "br-a",
            "10.10.0.0/24",
            "1.0.0",
            &node.ipam_dir(),
        )],
    );
    conf["kubeconfig"] = serde_json::json!(kubeconfig);
    let pod = Netns::new("pod");
    let args = cni::k8s_args("default", "demo", Some("demo-k8s"), Some(&uid));
    let multus = node.bin_dir().join("multus");
    let out = CniCall::new(node, "ADD", "demo-k8s", Some(&pod), "eth0")
        .args(&args)
        .run(node, &multus, &conf);
    ensure!(
        out.status.success(),
        "ADD failed: {}{}",
        out.stdout,
        out.stderr
    );
    println!("ADD took {:?}", out.elapsed);
    step("the pod's interfaces and routes: data0 from the NAD, the default route moved to it");
    print_cmd(Command::new("ip").args(["-n", pod.name(), "-br", "addr"]));
    print_cmd(Command::new("ip").args(["-n", pod.name(), "route"]));
    step("kubectl get pod demo -o jsonpath='{.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}'");
    let kubectl = node
        .ns
        .command("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args([
            "get",
            "pod",
            "demo",
            "-o",
            r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}",
        ])
        .output()?;
    ensure!(
        kubectl.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    let status: Value = serde_json::from_slice(&kubectl.stdout)?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    let data0 = first_ip(&pod, "data0")?;
    // Part 1's pod had this address: forget its MAC.
    cli_b.ip(&["neigh", "flush", "all"]);
    let replies = cli_b.ping(&data0, 3, &[]);
    println!(
        "ping data0 ({data0}) from the client on blue: {}",
        verdict(replies)
    );
    step("DEL (from the cache: no API call needed)");
    api.begin_outage()?;
    let del = CniCall::new(node, "DEL", "demo-k8s", Some(&pod), "eth0")
        .args(&args)
        .run(node, &multus, &conf);
    ensure!(del.status.success(), "DEL failed: {}", del.stdout);
    println!(
        "DEL with the API server down took {:?}; pod interfaces left: {:?}",
        del.elapsed,
        pod.link_names()
    );
    ensure!(replies > 0 && pod.link_names().is_empty(), "part 2 failed");
    Ok(())
}

fn step(s: &str) {
    println!("\n==> {s}");
}

/// "n/3 replies", or FAILED when none came back.
fn verdict(replies: u32) -> String {
    if replies > 0 {
        format!("{replies}/3 replies")
    } else {
        "FAILED".to_string()
    }
}

fn print_cmd(cmd: &mut Command) {
    if let Ok(out) = cmd.output() {
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn first_ip(pod: &Netns, ifname: &str) -> Result<String> {
    let addrs = pod.addresses(ifname);
    let a = addrs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{ifname} has no address"))?;
    Ok(a.split('/').next().unwrap_or_default().to_string())
}

/// A client namespace plugged into `bridge` on the node.
fn client(node: &Node, bridge: &str, addr: &str) -> Result<Netns> {
    let cli = Netns::new("cli");
    let inside = "eth0";
    let peer = format!("c{}", &cli.name()[3..].chars().take(12).collect::<String>());
    cli.ip(&[
        "link",
        "add",
        inside,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "netns",
        node.ns.name(),
    ]);
    node.ns.ip(&["link", "set", &peer, "master", bridge, "up"]);
    cli.ip(&["addr", "add", addr, "dev", inside]);
    cli.ip(&["link", "set", inside, "up"]);
    Ok(cli)
}

/// Part 3: eBPF source-based routing on the test topology of tests/src/topo.rs (cli2 — r1 — pod net1;
/// r0, the pod's default gateway, drops replies with a net1 source through rp_filter): without SBR
/// cli2's pings to net1 get no answer; with `ebpf-sbr` chained after `bridge` they do, the replies
/// leave by net1, and `multusctl` shows the maps and counters.
fn source_based_routing(bins: &std::path::Path) -> Result<()> {
    use testkit::{
        chain::Runtime,
        sbrplugin::{Mode, PluginPod},
        topo::{Net1, Options},
    };
    // The harness runs the binaries of this (release) build.
    std::env::set_var("MULTUS_BIN_DIR", bins);
    step("part 3: source-based routing — net1 by `bridge`, no SBR");
    let mut plain = PluginPod::new(Net1::Bridge, Mode::None, Options::default());
    let (got, r0, r1) = plain.ping_from_cli2("10.1.0.2", 3);
    println!("cli2 -> pod net1 10.1.0.2: {got}/3 replies (packets from the pod: r0 received {r0}, r1 {r1}; r0 drops the replies by rp_filter)");
    plain.del();
    step("the same with `ebpf-sbr` chained after `bridge` (the whole migration from sbr is the type)");
    let mut pod = PluginPod::new(Net1::Bridge, Mode::Ebpf, Options::default());
    println!("{}", serde_json::to_string_pretty(&pod.list)?);
    let (got, r0, r1) = pod.ping_from_cli2("10.1.0.2", 3);
    println!("cli2 -> pod net1 10.1.0.2: {got}/3 replies (packets from the pod: r0 received {r0} (neighbour traffic), r1 {r1})");
    let ok = got == 3;
    pod.check()
        .map_err(|f| anyhow::anyhow!("CHECK of the chain failed: {}", f.out.stdout))?;
    println!("CHECK of the chain (bridge, then ebpf-sbr): ok");
    // By hand, `ip netns exec <node>` is what users type; it gives the command a private mount
    // namespace (a fresh /sys, no bpffs on /sys/fs/bpf): ebpf-sbr and multusctl then work in the
    // node's mount namespace, where the pins and the carrier's anchor live (sbr-design.md §3.5).
    let node = pod.t.r1.name().to_string();
    let sbr_conf = Runtime::plugin_conf(&pod.list, &pod.list["plugins"][1], Some(&pod.result));
    let conf_file = std::env::temp_dir().join(format!("{}-ebpf-sbr.json", pod.rt.container_id));
    std::fs::write(&conf_file, serde_json::to_vec_pretty(&sbr_conf)?)?;
    step(&format!(
        "by hand, as a user types it: CNI_COMMAND=CHECK CNI_CONTAINERID={} CNI_NETNS={} CNI_IFNAME=net1 \\\n    \
         ip netns exec {node} {} < {}",
        pod.rt.container_id,
        pod.rt.netns.display(),
        bins.join("ebpf-sbr").display(),
        conf_file.display()
    ));
    let launcher: Vec<String> = ["ip", "netns", "exec", &node].map(String::from).to_vec();
    let check = pod
        .rt
        .exec_via(&launcher, "CHECK", &sbr_conf, &pod.rt.netns);
    let _ = std::fs::remove_file(&conf_file);
    ensure!(
        check.status.success(),
        "CHECK through ip netns exec failed: {}{}",
        check.stdout,
        check.stderr
    );
    println!("CHECK from a private mount namespace: ok");
    let multusctl = bins.join("multusctl");
    let bpffs = pod.bpffs.path().display().to_string();
    // No multus here (ebpf-sbr chained by the test's runtime): an empty cache and CNI
    // configuration directory of the demo's own, so that the host's are not read.
    let no_multus = tempfile::tempdir()?;
    for args in [vec!["show", pod.rt.container_id.as_str()], vec!["stats"]] {
        step(&format!(
            "ip netns exec {node} multusctl --bpffs-dir <private bpffs> --conf-dir <empty> --cni-dir <empty> {}",
            args.join(" ")
        ));
        let out = Command::new("ip")
            .args(["netns", "exec", &node])
            .arg(&multusctl)
            .arg("--bpffs-dir")
            .arg(&bpffs)
            .arg("--conf-dir")
            .arg(no_multus.path())
            .arg("--cni-dir")
            .arg(no_multus.path())
            .args(&args)
            .output()?;
        print!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    pod.del();
    println!("DEL: no pins, carrier, routes or neighbours left");
    ensure!(
        ok,
        "part 3 failed: cli2 got {got}/3 replies through ebpf-sbr"
    );
    Ok(())
}
