//! `cargo xtask bench kube`: ADD and DEL of multus for an annotated pod (pod GET, NAD GET,
//! network-status PATCH over HTTPS to the API stand-in on the node's loopback) against the same
//! two delegates called directly, in one run.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use testkit::{
    bins, cni, confs,
    kube_api::{KubeApiServer, NadSeed, PodSeed, ServerOptions},
    CniCall, Netns, Node,
};

use super::{
    direct_pair, report,
    stats::{ms, Samples},
};

pub fn run(bins_dir: &Path, cycles: usize) -> Result<()> {
    let node = Node::new();
    let multus = bins_dir.join("multus");
    node.install("multus", &multus);
    let api = KubeApiServer::start_with(ServerOptions {
        netns: Some(node.ns.path().to_path_buf()),
        ..Default::default()
    })?;
    let kubeconfig = api.write_kubeconfig(node.root())?;
    let cluster = confs::bridge(
        "cluster-net",
        "br-c",
        "10.10.0.0/24",
        "1.0.0",
        &node.ipam_dir(),
    );
    let blue = confs::bridge("blue", "br-b", "10.20.0.0/24", "1.0.0", &node.ipam_dir());
    api.create_nad(NadSeed::new("bench", "blue", blue.to_string()))?;
    let mut conf = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![cluster.clone()],
    );
    conf["kubeconfig"] = json!(kubeconfig);
    conf["logLevel"] = Value::from("error");
    let bridge = bins::reference("bridge");
    let (mut d_add, mut d_del, mut m_add, mut m_del) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let call = |cmd: &str, id: &str, pod: &Netns, name: &str, uid: &str| {
        CniCall::new(&node, cmd, id, Some(pod), "eth0").args(&cni::k8s_args(
            "bench",
            name,
            Some(id),
            Some(uid),
        ))
    };
    // One pod namespace per path, reused (DEL leaves it empty), so no namespace cleanup runs
    // during the timed calls.
    let (direct_pod, multus_pod) = (Netns::new("bk"), Netns::new("bk"));
    for i in 0..(cycles + 3) {
        let warm = i < 3;
        let direct_first = i % 2 == 0;
        for round in 0..2 {
            if (round == 0) == direct_first {
                let (add, del) = direct_pair(
                    &node,
                    &bridge,
                    &direct_pod,
                    &format!("d{i}"),
                    &cluster,
                    &blue,
                );
                if !warm {
                    d_add.push(add);
                    d_del.push(del);
                }
            } else {
                let name = format!("pod{i}");
                let obj = api.create_pod(
                    PodSeed::new("bench", &name).annotation("k8s.v1.cni.cncf.io/networks", "blue"),
                )?;
                let uid = obj["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let id = format!("m{i}");
                let add = call("ADD", &id, &multus_pod, &name, &uid).run(&node, &multus, &conf);
                add.assert_ok();
                anyhow::ensure!(
                    api.pod_annotation("bench", &name, "k8s.v1.cni.cncf.io/network-status")
                        .is_some(),
                    "no status"
                );
                let del = call("DEL", &id, &multus_pod, &name, &uid).run(&node, &multus, &conf);
                del.assert_ok();
                if !warm {
                    m_add.push(add.elapsed);
                    m_del.push(del.elapsed);
                }
            }
        }
    }
    let add_over = m_add.minus(&d_add);
    let del_over = m_del.minus(&d_del);
    let row = |name: &str, s: &Samples| format!("| {name} | {} | {} |", ms(s.p50()), ms(s.p90()));
    let body = format!(
        "## kube: ADD with the Kubernetes API round trips\n\n\
         Command: `cargo xtask bench kube --cycles {cycles}` (release build) · {}\n\n\
         A pod annotated `k8s.v1.cni.cncf.io/networks: blue`; multus reads the pod and the NAD and patches \
         network-status over HTTPS (the in-tree API stand-in on the node's loopback, the real `kube` client), then \
         runs the cluster network and `blue` (both `bridge` + `host-local`). Compared, alternately first, with the same \
         two delegates called directly.\n\n\
         | measurement | p50 | p90 |\n|---|---|---|\n{}\n{}\n{}\n{}\n{}\n{}\n\n\
         | ratio | p50 |\n|---|---|\n| multus ADD / direct ADD | {:.3} |\n| multus DEL / direct DEL | {:.3} |\n\n\
         Goal: ADD overhead including the API round trips ≤ 3 ms p50. DEL reads the cache and makes no API call.\n",
        report::machine(),
        row("direct ADD (2 delegates)", &d_add),
        row("multus ADD (pod GET + NAD GET + status PATCH)", &m_add),
        row("overhead ADD (paired)", &add_over),
        row("direct DEL (2 delegates)", &d_del),
        row("multus DEL", &m_del),
        row("overhead DEL (paired)", &del_over),
        m_add.p50() / d_add.p50(),
        m_del.p50() / d_del.p50(),
    );
    println!("{body}");
    report::write_section("kube", &body)
}
