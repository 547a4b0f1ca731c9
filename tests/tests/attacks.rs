//! Attacks tried (issue 12, item 4): hostile inputs run through the real binaries, each with the
//! refusal it must get (the CNI code, a message naming the problem, no panic, nothing left
//! behind): names that would become paths or interface names, symlinks planted where the product
//! writes, oversized and deeply nested inputs, delegate types that are paths, credentials that
//! must never reach a log, a result, the metrics or an event, and the owner and mode of every
//! file the product writes. docs/reliability.md ("Attacks tried") lists them with their tests.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use testkit::{
    bins,
    bpffs::Bpffs,
    cni, confs,
    kube_api::{KubeApiServer, KubeconfigAuth, KubeconfigOptions, NadSeed, PodSeed, ServerOptions},
    kubelet_podresources::{FakePod, PodResourcesServer},
    CniCall, CniOutput, Netns, Node,
};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// A node with the multus binary, the recorder plugin and the API stand-in on its loopback.
struct Bench {
    node: Node,
    multus: PathBuf,
    api: KubeApiServer,
    kubeconfig: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        Bench::with_api(ServerOptions::default(), KubeconfigOptions::default())
    }

    fn with_api(options: ServerOptions, kubeconfig: KubeconfigOptions) -> Bench {
        let node = Node::new();
        let multus = bins::product("multus");
        node.install("multus", &multus);
        node.install(
            "cni-recorder",
            Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
        );
        let api = KubeApiServer::start_with(ServerOptions {
            netns: Some(node.ns.path().to_path_buf()),
            ..options
        })
        .expect("stand-in");
        let kubeconfig = api
            .write_kubeconfig_with(node.root(), &kubeconfig)
            .expect("kubeconfig");
        api.create_nad(NadSeed::new("ns1", "good", recorder().to_string()))
            .expect("nad");
        Bench {
            node,
            multus,
            api,
            kubeconfig,
        }
    }

    /// A multus configuration with API access and one recorder delegate.
    fn conf(&self) -> Value {
        let mut c = confs::multus(
            "1.0.0",
            &self.node.cache_dir(),
            &self.node.bin_dir(),
            vec![recorder()],
        );
        c["kubeconfig"] = json!(self.kubeconfig);
        c["apiDeadlineSeconds"] = json!(3);
        c
    }

    /// A pod object in the stand-in; returns its namespace and uid.
    fn pod(&self, namespace: &str, name: &str, annotations: &[(&str, &str)]) -> (Netns, String) {
        let mut seed = PodSeed::new(namespace, name);
        for (k, v) in annotations {
            seed = seed.annotation(k, v);
        }
        let obj = self.api.create_pod(seed).expect("pod");
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        (Netns::new("at"), uid.to_string())
    }

    fn call(
        &self,
        command: &str,
        id: &str,
        pod: &Netns,
        ns: &str,
        name: &str,
        uid: &str,
    ) -> CniCall {
        CniCall::new(&self.node, command, id, Some(pod), "eth0").args(&cni::k8s_args(
            ns,
            name,
            Some(id),
            Some(uid),
        ))
    }
}

fn recorder() -> Value {
    json!({"cniVersion": "1.0.0", "name": "rec", "type": "cni-recorder"})
}

/// Asserts a refusal: `code`, every needle in the message, one line, no panic.
fn refused(case: &str, out: &CniOutput, code: u64, needles: &[&str]) {
    assert!(
        !out.status.success(),
        "{case}: expected a refusal, got {}",
        out.stdout
    );
    assert_eq!(
        out.err_code(),
        code,
        "{case}: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    let msg = out.err_msg();
    for needle in needles {
        assert!(msg.contains(needle), "{case}: {needle:?} not in {msg:?}");
    }
    assert!(!msg.contains('\n'), "{case}: one line: {msg:?}");
    assert!(!out.stderr.contains("panicked"), "{case}: {}", out.stderr);
}

/// Names that would become paths, URLs or interface names, from the runtime's environment:
/// refused with code 4 before anything is read or made, and never sent to the API.
#[test]
fn hostile_names_from_the_runtime_are_refused() {
    let b = Bench::new();
    let conf = b.conf();
    let long = "a".repeat(256);
    let pod = Netns::new("at");
    let base = || CniCall::new(&b.node, "ADD", "hn0", Some(&pod), "eth0");
    let args = |ns: &str, name: &str| cni::k8s_args(ns, name, None, Some("u1"));
    let cases: Vec<(&str, CniCall, Vec<&str>)> = vec![
        (
            "container id ..",
            CniCall {
                container_id: "..".into(),
                ..base()
            },
            vec!["CNI_CONTAINERID", ".."],
        ),
        (
            "container id ../etc",
            CniCall {
                container_id: "../etc".into(),
                ..base()
            },
            vec!["CNI_CONTAINERID", "../etc"],
        ),
        (
            "container id a/b",
            CniCall {
                container_id: "a/b".into(),
                ..base()
            },
            vec!["CNI_CONTAINERID", "a/b"],
        ),
        (
            "container id newline",
            CniCall {
                container_id: "a\nb".into(),
                ..base()
            },
            vec!["CNI_CONTAINERID", "a\\x0ab"],
        ),
        (
            "container id 256 bytes",
            CniCall {
                container_id: long.clone(),
                ..base()
            },
            vec!["CNI_CONTAINERID", "255 bytes"],
        ),
        (
            "ifname ..",
            CniCall {
                ifname: "..".into(),
                ..base()
            },
            vec!["CNI_IFNAME", ".."],
        ),
        (
            "ifname a/b",
            CniCall {
                ifname: "a/b".into(),
                ..base()
            },
            vec!["CNI_IFNAME", "a/b"],
        ),
        (
            "ifname newline",
            CniCall {
                ifname: "et\nh0".into(),
                ..base()
            },
            vec!["CNI_IFNAME"],
        ),
        (
            "ifname 16 bytes",
            CniCall {
                ifname: "a".repeat(16),
                ..base()
            },
            vec!["CNI_IFNAME", "15 bytes"],
        ),
        (
            "pod name ../..",
            base().args(&args("ns1", "../../secrets/x")),
            vec!["K8S_POD_NAME", "../../secrets/x"],
        ),
        (
            "pod name a/b",
            base().args(&args("ns1", "a/b")),
            vec!["K8S_POD_NAME", "a/b"],
        ),
        (
            "pod name ..",
            base().args(&args("ns1", "..")),
            vec!["K8S_POD_NAME", ".."],
        ),
        (
            "pod name ?query",
            base().args(&args("ns1", "p?watch=1")),
            vec!["K8S_POD_NAME", "p?watch=1"],
        ),
        (
            "pod name newline",
            base().args(&args("ns1", "p\nq")),
            vec!["K8S_POD_NAME"],
        ),
        (
            "pod name 254 bytes",
            base().args(&args("ns1", &"p".repeat(254))),
            vec!["K8S_POD_NAME", "253"],
        ),
        (
            "namespace ..",
            base().args(&args("..", "p")),
            vec!["K8S_POD_NAMESPACE", ".."],
        ),
        (
            "namespace a/b",
            base().args(&args("a/b", "p")),
            vec!["K8S_POD_NAMESPACE", "a/b"],
        ),
        (
            "namespace %2F",
            base().args(&args("a%2Fb", "p")),
            vec!["K8S_POD_NAMESPACE", "a%2Fb"],
        ),
        (
            "namespace 64 bytes",
            base().args(&args(&"n".repeat(64), "p")),
            vec!["K8S_POD_NAMESPACE", "63"],
        ),
        (
            "pod uid a/b",
            base().args(&cni::k8s_args("ns1", "p", None, Some("../u"))),
            vec!["K8S_POD_UID", "../u"],
        ),
    ];
    for (case, call, needles) in cases {
        for command in ["ADD", "CHECK"] {
            let out = CniCall {
                command: command.into(),
                ..call.clone()
            }
            .run(&b.node, &b.multus, &conf);
            refused(&format!("{command} {case}"), &out, 4, &needles);
        }
    }
    b.node.assert_pod_clean(&pod);
    let sent: Vec<String> = b.api.requests().into_iter().map(|r| r.path).collect();
    assert!(sent.is_empty(), "nothing reaches the API: {sent:?}");
}

/// Names that would become paths or interface names, from the pod's annotation and from NADs:
/// refused with code 7 naming the annotation or the NAD, nothing made.
#[test]
fn hostile_names_from_the_cluster_are_refused() {
    let b = Bench::new();
    let conf = b.conf();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "interface ..",
            r#"[{"name":"good","interface":".."}]"#.into(),
            vec![NETWORKS, "interface", ".."],
        ),
        (
            "interface ../x",
            r#"[{"name":"good","interface":"../x"}]"#.into(),
            vec![NETWORKS, "interface", "../x"],
        ),
        (
            "interface NUL",
            r#"[{"name":"good","interface":"a\u0000b"}]"#.into(),
            vec![NETWORKS, "interface"],
        ),
        (
            "interface newline",
            r#"[{"name":"good","interface":"a\nb"}]"#.into(),
            vec![NETWORKS, "interface"],
        ),
        (
            "interface 16 bytes",
            format!(r#"[{{"name":"good","interface":"{}"}}]"#, "i".repeat(16)),
            vec![NETWORKS, "interface", "15 bytes"],
        ),
        ("short interface ..", "good@..".into(), vec![NETWORKS, ".."]),
        (
            "network ../good",
            r#"[{"name":"../good"}]"#.into(),
            vec![NETWORKS, "../good"],
        ),
        (
            "network a/b",
            r#"[{"name":"a/b"}]"#.into(),
            vec![NETWORKS, "a/b"],
        ),
        (
            "network NUL",
            r#"[{"name":"go\u0000od"}]"#.into(),
            vec![NETWORKS],
        ),
        (
            "network 254 bytes",
            format!(r#"[{{"name":"{}"}}]"#, "n".repeat(254)),
            vec![NETWORKS],
        ),
        (
            "namespace ..",
            r#"[{"name":"good","namespace":".."}]"#.into(),
            vec![NETWORKS, ".."],
        ),
        (
            "namespace ../ns1",
            r#"[{"name":"good","namespace":"../ns1"}]"#.into(),
            vec![NETWORKS, "../ns1"],
        ),
        (
            "short namespace ../ns1",
            "../ns1/good".into(),
            vec![NETWORKS],
        ),
    ];
    for (i, (case, annotation, needles)) in cases.iter().enumerate() {
        let name = format!("hc{i}");
        let (pod, uid) = b.pod("ns1", &name, &[(NETWORKS, annotation)]);
        let out = b
            .call("ADD", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf);
        refused(case, &out, 7, needles);
        b.node.assert_pod_clean(&pod);
    }
}
