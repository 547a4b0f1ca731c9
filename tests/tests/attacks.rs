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

/// A file planted outside the product's directories, with the content it must keep.
struct Victim {
    path: PathBuf,
    content: &'static str,
}

impl Victim {
    fn new(dir: &Path, name: &str, content: &'static str) -> Victim {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Victim { path, content }
    }

    /// The file is still there, unchanged, mode 0644.
    fn assert_untouched(&self, case: &str) {
        let meta = std::fs::symlink_metadata(&self.path)
            .unwrap_or_else(|e| panic!("{case}: {} is gone: {e}", self.path.display()));
        assert!(meta.is_file(), "{case}: still a file");
        assert_eq!(
            std::fs::read_to_string(&self.path).unwrap(),
            self.content,
            "{case}: {} was written through a symlink",
            self.path.display()
        );
        assert_eq!(meta.mode() & 0o777, 0o644, "{case}: mode changed");
    }
}

/// Symlinks planted where a thin ADD writes: the cache entry, the node-wide lock, the device
/// plugin's device-info file and the attachment's device-info file. The product never writes
/// (nor reads) through them: it replaces the link atomically or refuses the call, and the file
/// the link points at is unchanged.
#[test]
fn planted_symlinks_in_the_cache_lock_and_device_info_are_not_followed() {
    let b = Bench::new();
    let victims = b.node.root().join("victims");
    std::fs::create_dir_all(&victims).unwrap();
    let kubelet_dir = b.node.root().join("kubelet");
    std::fs::create_dir_all(&kubelet_dir).unwrap();
    let kubelet = PodResourcesServer::start(&kubelet_dir.join("kubelet.sock"));
    let devinfo = b.node.root().join("devinfo");
    std::fs::create_dir_all(devinfo.join("dp")).unwrap();
    std::fs::create_dir_all(devinfo.join("cni")).unwrap();
    let vf = json!({"cniVersion": "1.0.0", "name": "vf-net", "type": "cni-recorder",
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}});
    b.api
        .create_nad(NadSeed::new("ns1", "vf-net", vf.to_string()).resource_name("example.com/vf"))
        .unwrap();
    let mut conf = b.conf();
    conf["podResourcesSocket"] = json!(kubelet.socket());
    conf["deviceCheckpointFile"] = json!(b.node.root().join("no-checkpoint"));
    conf["deviceInfoDir"] = json!(devinfo);
    let cache = b.node.cache_dir();

    // 1. The cache entry: replaced by a regular file; DEL removes the entry, not the target.
    let v = Victim::new(&victims, "cache-target", "precious cache target\n");
    std::os::unix::fs::symlink(&v.path, cache.join("sl-cache")).unwrap();
    let (pod, uid) = b.pod("ns1", "sl-cache", &[]);
    let out = b
        .call("ADD", "sl-cache", &pod, "ns1", "sl-cache", &uid)
        .run(&b.node, &b.multus, &conf);
    v.assert_untouched("cache entry");
    if out.status.success() {
        let meta = std::fs::symlink_metadata(cache.join("sl-cache")).unwrap();
        assert!(meta.is_file(), "the planted link is replaced by the entry");
        b.call("DEL", "sl-cache", &pod, "ns1", "sl-cache", &uid)
            .run(&b.node, &b.multus, &conf)
            .assert_ok();
    }
    v.assert_untouched("cache entry after DEL");
    let _ = std::fs::remove_file(cache.join("sl-cache"));
    b.node.assert_pod_clean(&pod);

    // 2. The lock: a link to an existing file and a dangling link; never opened through.
    for dangling in [false, true] {
        let case = if dangling { "dangling lock" } else { "lock" };
        let target = victims.join(format!("lock-target-{dangling}"));
        let v = (!dangling).then(|| {
            Victim::new(
                &victims,
                &format!("lock-target-{dangling}"),
                "lock target\n",
            )
        });
        let lock = cache.join(".lock");
        let _ = std::fs::remove_file(&lock);
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let (pod, uid) = b.pod("ns1", &format!("sl-lock{}", dangling as u8), &[]);
        let name = format!("sl-lock{}", dangling as u8);
        let out = b
            .call("ADD", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf);
        refused(case, &out, 5, &[".lock", "symlink"]);
        if let Some(v) = &v {
            v.assert_untouched(case);
        } else {
            assert!(!target.exists(), "{case}: the link's target was created");
        }
        let del = b
            .call("DEL", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf);
        refused(&format!("{case} DEL"), &del, 5, &[".lock", "symlink"]);
        b.node.assert_pod_clean(&pod);
        std::fs::remove_file(&lock).unwrap();
    }

    // 3. The device plugin's file is a link to a JSON file it may not show: not read.
    let secret = Victim::new(
        &victims,
        "secret.json",
        "{\"type\": \"pci\", \"secret\": \"NOT-FOR-THE-POD\"}",
    );
    kubelet.set_pods(vec![FakePod::with_devices(
        "ns1",
        "sl-dp",
        &[("example.com/vf", &["0000:03:02.1"])],
    )]);
    let dp_file = devinfo.join("dp/example.com-vf-0000:03:02.1-device.json");
    std::os::unix::fs::symlink(&secret.path, &dp_file).unwrap();
    let (pod, uid) = b.pod("ns1", "sl-dp", &[(NETWORKS, "vf-net")]);
    let out = b
        .call("ADD", "sl-dp", &pod, "ns1", "sl-dp", &uid)
        .run(&b.node, &b.multus, &conf);
    refused("device plugin file", &out, 5, &["device-info", "symlink"]);
    secret.assert_untouched("device plugin file");
    let status = b
        .api
        .pod_annotation("ns1", "sl-dp", STATUS)
        .unwrap_or_default();
    assert!(!status.contains("NOT-FOR-THE-POD"), "{status}");
    b.node.assert_pod_clean(&pod);
    std::fs::remove_file(&dp_file).unwrap();

    // 4. The attachment's device-info file, with and without a device plugin's file to copy:
    //    replaced or refused, never written or read through.
    for with_dp in [true, false] {
        let case = format!("attachment device-info file (device plugin file: {with_dp})");
        let name = format!("sl-cni{}", with_dp as u8);
        kubelet.set_pods(vec![FakePod::with_devices(
            "ns1",
            &name,
            &[("example.com/vf", &["0000:03:02.2"])],
        )]);
        let dp = devinfo.join("dp/example.com-vf-0000:03:02.2-device.json");
        if with_dp {
            std::fs::write(
                &dp,
                r#"{"type": "pci", "pci": {"pci-address": "0000:03:02.2"}}"#,
            )
            .unwrap();
        }
        let v = Victim::new(
            &victims,
            &format!("cni-target-{with_dp}"),
            "{\"type\": \"pci\", \"secret\": \"NOT-FOR-THE-POD\"}",
        );
        let cni_file = devinfo.join(format!("cni/ns1-vf-net-{name}_net1"));
        std::os::unix::fs::symlink(&v.path, &cni_file).unwrap();
        let (pod, uid) = b.pod("ns1", &name, &[(NETWORKS, "vf-net")]);
        let out = b
            .call("ADD", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf);
        v.assert_untouched(&case);
        let status = b
            .api
            .pod_annotation("ns1", &name, STATUS)
            .unwrap_or_default();
        assert!(!status.contains("NOT-FOR-THE-POD"), "{case}: {status}");
        // Copying the device plugin's file replaces the link; without one, the link is left
        // unread (no device-info in the status) and DEL removes the link itself.
        out.assert_ok();
        assert_eq!(
            std::fs::symlink_metadata(&cni_file).unwrap().is_file(),
            with_dp,
            "{case}: replaced by the copy"
        );
        b.call("DEL", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf)
            .assert_ok();
        assert!(
            std::fs::symlink_metadata(&cni_file).is_err(),
            "{case}: DEL removes it"
        );
        v.assert_untouched(&case);
        b.node.assert_pod_clean(&pod);
        let _ = std::fs::remove_file(&cni_file);
        let _ = std::fs::remove_file(&dp);
    }
}

/// Oversized and deeply nested inputs: a 10 MB configuration on stdin, 100 000 nested `[` on
/// stdin, in the pod's annotation and in a NAD's config, and a 10 MB annotation. Each is refused
/// with a clear message in bounded time; nothing is made, and the API is not flooded.
#[test]
fn oversized_and_deeply_nested_inputs_are_refused_in_bounded_time() {
    let b = Bench::new();
    let conf = b.conf();
    let nested = "[".repeat(100_000);
    let mut big = conf.clone();
    big["padding"] = json!("x".repeat(10 << 20));
    let big = serde_json::to_vec(&big).unwrap();
    let stdin_cases: Vec<(&str, Vec<u8>, u64, Vec<&str>)> = vec![
        ("10 MB stdin", big, 6, vec!["stdin", "larger than"]),
        (
            "100k nested [ on stdin",
            nested.clone().into_bytes(),
            6,
            vec!["found a list, expected an object"],
        ),
        (
            "100k nested { in a delegate",
            format!(
                r#"{{"cniVersion":"1.0.0","type":"multus","delegates":[{}"#,
                "{\"a\":".repeat(100_000)
            )
            .into_bytes(),
            6,
            vec!["nested too deeply"],
        ),
    ];
    for (case, stdin, code, needles) in stdin_cases {
        let pod = Netns::new("at");
        let started = Instant::now();
        let out = CniCall::new(&b.node, "ADD", "big0", Some(&pod), "eth0")
            .args(&cni::k8s_args("ns1", "big0", None, None))
            .run_bytes(&b.node, &b.multus, &stdin);
        let took = started.elapsed();
        refused(case, &out, code, &needles);
        assert!(took < Duration::from_secs(5), "{case}: took {took:?}");
        b.node.assert_pod_clean(&pod);
    }
    b.api
        .create_nad(NadSeed::new("ns1", "deep", nested.clone()))
        .unwrap();
    let annotation_cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "100k nested [ in the annotation",
            nested.clone(),
            vec![NETWORKS, "nested too deeply"],
        ),
        (
            "a NAD config of 100k nested [",
            "deep".into(),
            vec!["ns1/deep", "nested too deeply"],
        ),
        (
            "a 250 KiB network name (the most the API allows)",
            format!(r#"[{{"name":"{}"}}]"#, "n".repeat(250 << 10)),
            vec![NETWORKS, "nnnn"],
        ),
        (
            "a 250 KiB interface name",
            format!("good@{}", "i".repeat(250 << 10)),
            vec![NETWORKS, "15 bytes"],
        ),
    ];
    // A 10 MB annotation never reaches the product: the API server refuses any object whose
    // annotations exceed 256 KiB (the stand-in as a real one); the product's own bound for a
    // larger value is kube::annotations::MAX_ANNOTATION (its unit test).
    let seeded = b
        .api
        .create_pod(PodSeed::new("ns1", "big-10mb").annotation(NETWORKS, &"good,".repeat(2 << 20)));
    let err = seeded
        .expect_err("a 10 MB annotation is refused by the API")
        .to_string();
    assert!(err.contains("Too long"), "{err}");
    for (i, (case, annotation, needles)) in annotation_cases.iter().enumerate() {
        let name = format!("big{i}");
        let (pod, uid) = b.pod("ns1", &name, &[(NETWORKS, annotation)]);
        b.api.reset_requests();
        let started = Instant::now();
        let out = b
            .call("ADD", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf);
        let took = started.elapsed();
        refused(case, &out, 7, needles);
        assert!(took < Duration::from_secs(10), "{case}: took {took:?}");
        let requests = b.api.requests().len();
        assert!(requests < 10, "{case}: {requests} API requests");
        b.node.assert_pod_clean(&pod);
    }
}

/// A delegate `type` is a plugin name looked up in binDir/CNI_PATH, never a path: in the
/// configuration's delegates, in a NAD (single plugin and list) and in a chained plugin.
#[test]
fn delegate_types_that_are_paths_are_refused() {
    let b = Bench::new();
    for (i, t) in ["/bin/sh", "../../bin/sh", "sub/dir", ".", ".."]
        .iter()
        .enumerate()
    {
        let mut conf = b.conf();
        conf["delegates"] = json!([{"cniVersion": "1.0.0", "name": "x", "type": t}]);
        let pod = Netns::new("at");
        let out = CniCall::new(&b.node, "ADD", &format!("dt{i}"), Some(&pod), "eth0")
            .run(&b.node, &b.multus, &conf);
        refused(&format!("delegate type {t}"), &out, 7, &["delegates[0]", t]);
        b.node.assert_pod_clean(&pod);
        let nad = format!("path{i}");
        b.api
            .create_nad(NadSeed::new(
                "ns1",
                &nad,
                json!({"cniVersion": "1.0.0", "type": t}).to_string(),
            ))
            .unwrap();
        let list = format!("list{i}");
        b.api
            .create_nad(NadSeed::new(
                "ns1",
                &list,
                json!({"cniVersion": "1.0.0", "name": "l", "plugins": [{"type": "cni-recorder"}, {"type": t}]}).to_string(),
            ))
            .unwrap();
        for network in [&nad, &list] {
            let name = format!("dt{i}-{network}");
            let (pod, uid) = b.pod("ns1", &name, &[(NETWORKS, network)]);
            let out =
                b.call("ADD", &name, &pod, "ns1", &name, &uid)
                    .run(&b.node, &b.multus, &b.conf());
            refused(
                &format!("NAD {network} type {t}"),
                &out,
                7,
                &[&format!("ns1/{network}"), t],
            );
            b.node.assert_pod_clean(&pod);
        }
    }
}

/// The secrets the credential test plants, and every place they must not appear.
struct Secrets {
    needles: Vec<String>,
}

impl Secrets {
    /// The bearer token, the client key (a line of its PEM and the base64 the kubeconfig
    /// carries) and a NAD's `password`.
    fn of(api: &KubeApiServer) -> Secrets {
        let key = api.client_key_pem();
        let key_line = key
            .lines()
            .find(|l| !l.starts_with("-----") && l.len() > 32)
            .expect("a PEM body line")
            .to_string();
        let key_b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        };
        Secrets {
            needles: vec![
                api.token().to_string(),
                key_line,
                key_b64[40..100].to_string(),
                NAD_PASSWORD.to_string(),
            ],
        }
    }

    fn assert_absent(&self, place: &str, text: &str) {
        for n in &self.needles {
            assert!(
                !text.contains(n.as_str()),
                "a credential ({n:.12}…) in {place}"
            );
        }
    }
}

const TOKEN: &str = "sEcReT-bearer-token-0f9e8d7c6b5a";
const NAD_PASSWORD: &str = "sEcReT-nad-password-1a2b3c";

/// Everything readable under `dir`, as text, with the file names (the log files, rotated ones).
fn texts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}

/// Credentials never reach a log, a result, the pod's annotations or an event, in thin mode and
/// in thick mode (its log and /metrics too), on success and on failure paths (an API that
/// answers 500, then 401; a delegate that fails), at the most verbose log level.
#[test]
fn credentials_never_reach_logs_results_metrics_or_events() {
    let b = Bench::with_api(
        ServerOptions {
            token: Some(TOKEN.into()),
            ..Default::default()
        },
        KubeconfigOptions {
            auth: KubeconfigAuth::TokenAndClientCert,
            ..Default::default()
        },
    );
    let secrets = Secrets::of(&b.api);
    let nad = json!({"cniVersion": "1.0.0", "name": "secret-net", "type": "cni-recorder",
        "password": NAD_PASSWORD, "credentials": {"token": NAD_PASSWORD}});
    b.api
        .create_nad(NadSeed::new("ns1", "secret-net", nad.to_string()))
        .unwrap();
    let failing = json!({"cniVersion": "1.0.0", "name": "failing", "type": "cni-recorder",
        "password": NAD_PASSWORD, "failOn": "ADD"});
    b.api
        .create_nad(NadSeed::new("ns1", "failing", failing.to_string()))
        .unwrap();
    let logs = b.node.root().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut conf = b.conf();
    conf["logFile"] = json!(logs.join("multus.log"));
    conf["logLevel"] = json!("debug");
    let mut outputs = Vec::new();
    let mut run = |command: &str, name: &str, pod: &Netns, uid: &str| {
        let out = b
            .call(command, name, pod, "ns1", name, uid)
            .run(&b.node, &b.multus, &conf);
        outputs.push((format!("{command} {name} stdout"), out.stdout.clone()));
        outputs.push((format!("{command} {name} stderr"), out.stderr.clone()));
        out
    };
    // Success, then DEL.
    let (pod, uid) = b.pod("ns1", "cred-ok", &[(NETWORKS, "secret-net")]);
    run("ADD", "cred-ok", &pod, &uid).ok();
    run("CHECK", "cred-ok", &pod, &uid);
    run("DEL", "cred-ok", &pod, &uid).assert_ok();
    // A delegate that fails: rolled back.
    let (pod2, uid2) = b.pod("ns1", "cred-fail", &[(NETWORKS, "failing")]);
    assert!(!run("ADD", "cred-fail", &pod2, &uid2).status.success());
    // The API answers 500, then refuses the credentials.
    b.api.inject(
        testkit::kube_api::Fault::status(500)
            .path("/api/v1/namespaces/ns1/pods/*")
            .always(),
    );
    let (pod3, uid3) = b.pod("ns1", "cred-500", &[(NETWORKS, "secret-net")]);
    assert!(!run("ADD", "cred-500", &pod3, &uid3).status.success());
    b.api.clear_faults();
    // The token is refused (the client certificate may still be accepted), then DEL.
    b.api.rotate_token("another-token");
    run("ADD", "cred-500", &pod3, &uid3);
    run("DEL", "cred-500", &pod3, &uid3).assert_ok();
    for (place, text) in &outputs {
        secrets.assert_absent(place, text);
    }
    let logged = texts_under(&logs);
    assert!(
        logged.iter().any(|(_, t)| t.contains("secret-net")),
        "the debug log was written and names the network"
    );
    for (path, text) in logged {
        secrets.assert_absent(&path.display().to_string(), &text);
    }
    for name in ["cred-ok", "cred-fail", "cred-500"] {
        let annotations = b.api.pod_annotations("ns1", name).unwrap_or_default();
        secrets.assert_absent(
            &format!("{name}'s annotations"),
            &format!("{annotations:?}"),
        );
    }
    let events = b
        .api
        .list_objects(testkit::kube_api::Resource::Events, None);
    assert!(!events.is_empty(), "events were recorded");
    secrets.assert_absent("events", &serde_json::to_string(&events).unwrap());
    for p in [&pod, &pod2, &pod3] {
        b.node.assert_pod_clean(p);
    }
}

/// Thick mode: the daemon with the same kubeconfig; its log, /metrics and the shim's output
/// carry no credential.
#[test]
fn credentials_never_reach_the_daemon_log_or_metrics() {
    let b = Bench::with_api(
        ServerOptions {
            token: Some(TOKEN.into()),
            ..Default::default()
        },
        KubeconfigOptions {
            auth: KubeconfigAuth::TokenAndClientCert,
            ..Default::default()
        },
    );
    let secrets = Secrets::of(&b.api);
    let nad = json!({"cniVersion": "1.0.0", "name": "secret-net", "type": "cni-recorder",
        "password": NAD_PASSWORD});
    b.api
        .create_nad(NadSeed::new("ns1", "secret-net", nad.to_string()))
        .unwrap();
    let daemon = testkit::thick::Daemon::start(
        &b.node,
        json!({"kubeconfig": b.kubeconfig, "apiDeadlineSeconds": 3, "metricsPort": 9109}),
    );
    let conf = daemon.shim_conf("1.0.0", vec![recorder()]);
    let shim = testkit::thick::shim();
    let mut outputs = Vec::new();
    let (pod, uid) = b.pod("ns1", "cred-thick", &[(NETWORKS, "secret-net")]);
    for command in ["ADD", "CHECK", "DEL"] {
        let out = b
            .call(command, "cred-thick", &pod, "ns1", "cred-thick", &uid)
            .run(&b.node, &shim, &conf);
        if command != "CHECK" {
            out.assert_ok();
        }
        outputs.push((
            format!("shim {command}"),
            format!("{}{}", out.stdout, out.stderr),
        ));
    }
    let scrape = b
        .node
        .ns
        .command("curl")
        .args(["-s", "http://127.0.0.1:9109/metrics"])
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&scrape.stdout).to_string();
    assert!(metrics.contains("multus"), "metrics scraped: {metrics}");
    outputs.push(("/metrics".into(), metrics));
    for path in ["/healthz", "/readyz", "/status"] {
        outputs.push((path.into(), daemon.get(path).1));
    }
    let log = daemon.log();
    assert!(log.contains("cred-thick"), "the daemon logged the call");
    outputs.push(("the daemon's log".into(), log));
    for (place, text) in &outputs {
        secrets.assert_absent(place, text);
    }
    let events = b
        .api
        .list_objects(testkit::kube_api::Resource::Events, None);
    secrets.assert_absent("events", &serde_json::to_string(&events).unwrap());
    b.node.assert_pod_clean(&pod);
}

/// One entry of the file-mode audit.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Every file, directory, socket and symlink under `root`, with its owner and mode.
fn walk(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let t = meta.file_type();
        let kind = if t.is_dir() {
            "dir"
        } else if t.is_symlink() {
            "symlink"
        } else if t.is_file() {
            "file"
        } else {
            "other"
        };
        if t.is_dir() {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
        out.push(Entry {
            path: p,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    out
}

/// Asserts every entry under `root` is root's, never world-writable, and has the mode `want`
/// gives for it (`None`: only the general rules). Returns how many entries were audited.
fn audit(root: &Path, want: impl Fn(&Entry) -> Option<u32>) -> usize {
    audit_entries(walk(root), want)
}

fn audit_entries(entries: Vec<Entry>, want: impl Fn(&Entry) -> Option<u32>) -> usize {
    for e in &entries {
        assert_eq!((e.uid, e.gid), (0, 0), "owner of {e:?}");
        assert_eq!(e.mode & 0o002, 0, "world-writable: {e:?}");
        assert_eq!(e.mode & 0o7000, 0, "setuid/setgid/sticky: {e:?}");
        if let Some(mode) = want(e) {
            assert_eq!(e.mode, mode, "mode of {e:?} (want {mode:o})");
        }
    }
    entries.len()
}

/// The owner and mode of every file and directory a full thin ADD (two networks, one with SBR,
/// one with a device and its device-info file, a log file) makes, as docs/configuration.md,
/// docs/sbr-design.md and devices/devinfo.rs document them: cache directory 0700, its entries
/// and lock 0600, log 0600, SBR directories 0700 and pins 0600, device-info 0755/0644 (the NPWG
/// spec's readers are other plugins). Then DEL, and the same again.
#[test]
fn every_file_a_thin_add_writes_is_root_owned_with_the_documented_mode() {
    let b = Bench::new();
    b.node.install("ebpf-sbr", &bins::product("ebpf-sbr"));
    let bpffs = Bpffs::new();
    let kubelet_dir = b.node.root().join("kubelet");
    std::fs::create_dir_all(&kubelet_dir).unwrap();
    let kubelet = PodResourcesServer::start(&kubelet_dir.join("kubelet.sock"));
    // The product's roots, none of which exists before the call (the device plugin's dp/
    // directory and the log's directory are the operator's).
    let cache = b.node.root().join("p-cache");
    let devinfo = b.node.root().join("p-devinfo");
    let logs = b.node.root().join("p-logs");
    std::fs::create_dir_all(devinfo.join("dp")).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        devinfo.join("dp/example.com-vf-0000:03:02.1-device.json"),
        r#"{"type": "pci", "pci": {"pci-address": "0000:03:02.1"}}"#,
    )
    .unwrap();
    let vf = json!({"cniVersion": "1.0.0", "name": "vf-net", "type": "cni-recorder",
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}});
    b.api
        .create_nad(NadSeed::new("ns1", "vf-net", vf.to_string()).resource_name("example.com/vf"))
        .unwrap();
    kubelet.set_pods(vec![FakePod::with_devices(
        "ns1",
        "audit",
        &[("example.com/vf", &["0000:03:02.1"])],
    )]);
    let ipam = b.node.ipam_dir();
    let cluster = confs::bridge("cluster", "aub0", "10.141.0.0/24", "1.0.0", &ipam);
    let sbr_net = json!({"cniVersion": "1.0.0", "name": "net-sbr", "plugins": [
        {"type": "bridge", "bridge": "aub1", "isGateway": true,
         "ipam": {"type": "host-local", "subnet": "10.142.0.0/24", "dataDir": ipam}},
        {"type": "sbr"}]});
    let mut conf = b.conf();
    conf["delegates"] = json!([cluster, sbr_net]);
    conf["cniDir"] = json!(cache);
    conf["binDir"] = json!(format!(
        "{}:{}",
        b.node.bin_dir().display(),
        bins::REFERENCE_PLUGINS
    ));
    conf["logFile"] = json!(logs.join("multus.log"));
    conf["ebpfSbr"] = json!({"replaceSbr": true, "bpffsDir": bpffs.path()});
    conf["podResourcesSocket"] = json!(kubelet.socket());
    conf["deviceCheckpointFile"] = json!(b.node.root().join("no-checkpoint"));
    conf["deviceInfoDir"] = json!(devinfo);
    let (pod, uid) = b.pod("ns1", "audit", &[(NETWORKS, "vf-net")]);
    b.call("ADD", "audit", &pod, "ns1", "audit", &uid)
        .run(&b.node, &b.multus, &conf)
        .ok();
    let in_dir = |e: &Entry, dir: &Path| e.path.parent() == Some(dir);
    let n = audit(&cache, |e| match e.kind {
        "dir" => Some(0o700),
        "file" => Some(0o600),
        _ => panic!("unexpected in the cache: {e:?}"),
    });
    assert!(n >= 3, "the cache, its entry and the lock: {n}");
    assert!(cache.join(".lock").exists() && cache.join("audit").exists());
    audit(&logs, |e| (e.kind == "file").then_some(0o600));
    let cni_dir = devinfo.join("cni");
    let n = audit(&cni_dir, |e| match e.kind {
        "dir" => Some(0o755),
        "file" if in_dir(e, &cni_dir) => Some(0o644),
        _ => panic!("unexpected in device-info: {e:?}"),
    });
    assert_eq!(n, 2, "the directory and the attachment's file");
    let pins = bpffs.pod_dir("audit");
    assert!(pins.exists(), "the pod's SBR pins: {:?}", bpffs.entries());
    // The mount point is the test's (a bpffs root is 1777) and `maps.debug`/`progs.debug` the
    // kernel's (bpf_preload, 0400); everything else below it is the product's.
    let kernel = [
        bpffs.path().to_path_buf(),
        bpffs.path().join("maps.debug"),
        bpffs.path().join("progs.debug"),
    ];
    let below: Vec<Entry> = walk(bpffs.path())
        .into_iter()
        .filter(|e| !kernel.contains(&e.path))
        .collect();
    let n = audit_entries(below, |e| match e.kind {
        "dir" => Some(0o700),
        // the anchor namespace's bind mount shows the kernel's namespace file (nsfs, 0444)
        "file" if e.path.ends_with("anchor") => Some(0o444),
        "file" => Some(0o600),
        _ => panic!("unexpected on the bpffs: {e:?}"),
    });
    assert!(n > 3, "pins audited: {n}");
    b.call("DEL", "audit", &pod, "ns1", "audit", &uid)
        .run(&b.node, &b.multus, &conf)
        .assert_ok();
    assert!(!pins.exists() && !cache.join("audit").exists());
    audit(&cache, |e| {
        Some(if e.kind == "dir" { 0o700 } else { 0o600 })
    });
    b.node.assert_pod_clean(&pod);
}

/// Thick mode: the socket directory 0700, the socket 0600, the generated configuration and the
/// daemon's own files 0600, all root's (docs/daemon-api.md, docs/configuration.md).
#[test]
fn every_file_the_daemon_writes_is_root_owned_with_the_documented_mode() {
    let b = Bench::new();
    let daemon = testkit::thick::Daemon::start(&b.node, json!({"kubeconfig": b.kubeconfig}));
    let run = daemon.socket_dir();
    let n = audit(&run, |e| match e.kind {
        "dir" => Some(0o700),
        "other" => Some(0o600),
        _ => None,
    });
    assert!(n >= 2, "the directory and the socket");
    let net_d = daemon.cni_config_dir();
    let generated: Vec<Entry> = walk(&net_d)
        .into_iter()
        .filter(|e| e.kind != "dir" && !e.path.ends_with(testkit::thick::DEFAULT_PRIMARY))
        .collect();
    assert!(
        !generated.is_empty(),
        "the generated configuration in {}",
        net_d.display()
    );
    for e in &generated {
        assert_eq!((e.uid, e.gid, e.mode), (0, 0, 0o600), "{e:?}");
    }
    for e in walk(&net_d)
        .iter()
        .filter(|e| e.kind == "dir" && e.path != net_d)
    {
        assert_eq!((e.uid, e.mode), (0, 0o700), "{e:?}");
    }
}

/// A symlink planted where a pod's SBR pin directory goes (on the bpffs, to another directory
/// of the bpffs, and to one outside it): nothing is pinned, mounted, created or removed through
/// it. The ADD replaces the link by the pod's own directory (it takes it for a half-made pod's
/// and removes the link itself); DEL leaves the link's target alone.
#[test]
fn a_symlink_in_place_of_the_sbr_pin_directory_is_not_followed() {
    let b = Bench::new();
    b.node.install("ebpf-sbr", &bins::product("ebpf-sbr"));
    let bpffs = Bpffs::new();
    let ipam = b.node.ipam_dir();
    let outside = b.node.root().join("outside");
    std::fs::create_dir_all(outside.join("keep")).unwrap();
    let inside = bpffs.path().join("victim");
    std::fs::create_dir_all(inside.join("keep")).unwrap();
    let listing = |d: &Path| testkit::bpffs::entries(d);
    for (i, target) in [&inside, &outside].iter().enumerate() {
        let before = listing(target);
        let id = format!("slpin{i}");
        let cluster = confs::bridge(
            "cluster",
            &format!("spc{i}"),
            &format!("10.15{i}.0.0/24"),
            "1.0.0",
            &ipam,
        );
        let sbr_net = json!({"cniVersion": "1.0.0", "name": "net-sbr", "plugins": [
            {"type": "bridge", "bridge": format!("sps{i}"), "isGateway": true,
             "ipam": {"type": "host-local", "subnet": format!("10.16{i}.0.0/24"), "dataDir": ipam}},
            {"type": "sbr"}]});
        let mut conf = b.conf();
        conf["delegates"] = json!([cluster, sbr_net]);
        conf["binDir"] = json!(format!(
            "{}:{}",
            b.node.bin_dir().display(),
            bins::REFERENCE_PLUGINS
        ));
        conf["ebpfSbr"] = json!({"replaceSbr": true, "bpffsDir": bpffs.path()});
        let link = bpffs.pod_dir(&id);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let pod = Netns::new("at");
        let call = CniCall::new(&b.node, "ADD", &id, Some(&pod), "eth0");
        let case = format!("pin directory linked to {}", target.display());
        call.run(&b.node, &b.multus, &conf).ok();
        assert_eq!(
            listing(target),
            before,
            "{case}: nothing made or removed through the link"
        );
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(
            meta.is_dir(),
            "{case}: the pod's own directory replaced the link"
        );
        let del = CniCall {
            command: "DEL".into(),
            ..call.clone()
        }
        .run(&b.node, &b.multus, &conf);
        del.assert_ok();
        assert_eq!(listing(target), before, "{case}: after DEL");
        assert!(!link.exists(), "{case}: DEL removed the pod's directory");
        b.node.assert_pod_clean(&pod);
    }
}

/// The thin agent (`multus-daemon thin`) with symlinks planted where it writes: the generated
/// `00-multus.conflist` and `multus.d/multus.kubeconfig` (each replaced atomically by a regular
/// 0600 file; the targets unchanged), then `multus.d` itself (refused, nothing written into it).
#[test]
fn the_thin_agent_never_writes_through_planted_symlinks() {
    let node = Node::new();
    let api = node.api_server();
    let victims = node.root().join("victims");
    std::fs::create_dir_all(victims.join("dir")).unwrap();
    let sa = api.write_service_account(&node.root().join("sa")).unwrap();
    let primary =
        json!({"cniVersion": "1.0.0", "name": "primary", "plugins": [{"type": "loopback"}]});
    let start = |conf_dir: &Path, log: &Path| {
        std::process::Command::new(bins::product("multus-daemon"))
            .args(["thin", "--cni-conf-dir"])
            .arg(conf_dir)
            .arg("--node-cni-conf-dir")
            .arg(conf_dir)
            .arg("--service-account-dir")
            .arg(&sa)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", api.addr().port().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("multus-daemon thin")
    };
    let wait = |what: &str, log: &Path, done: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{what}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // 1. The two files.
    let conf_dir = node.root().join("net.d");
    std::fs::create_dir_all(conf_dir.join("multus.d")).unwrap();
    std::fs::write(conf_dir.join("10-primary.conflist"), primary.to_string()).unwrap();
    let conf_victim = Victim::new(&victims, "conf", "conf target\n");
    let kc_victim = Victim::new(&victims, "kubeconfig", "kubeconfig target\n");
    let conflist = conf_dir.join("00-multus.conflist");
    let kubeconfig = conf_dir.join("multus.d/multus.kubeconfig");
    std::os::unix::fs::symlink(&conf_victim.path, &conflist).unwrap();
    std::os::unix::fs::symlink(&kc_victim.path, &kubeconfig).unwrap();
    let log = node.root().join("agent1.log");
    let mut agent = start(&conf_dir, &log);
    let regular = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    wait("both files replaced", &log, &|| {
        regular(&conflist) && regular(&kubeconfig)
    });
    let _ = agent.kill();
    let _ = agent.wait();
    conf_victim.assert_untouched("00-multus.conflist");
    kc_victim.assert_untouched("multus.kubeconfig");
    for p in [&conflist, &kubeconfig] {
        let meta = std::fs::symlink_metadata(p).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (0, 0o600),
            "{}",
            p.display()
        );
    }
    let text = std::fs::read_to_string(&conflist).unwrap();
    assert!(text.contains("\"multus\""), "{text}");

    // 2. multus.d is a symlink to another directory: refused, nothing written there.
    let conf_dir = node.root().join("net2.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("10-primary.conflist"), primary.to_string()).unwrap();
    std::os::unix::fs::symlink(victims.join("dir"), conf_dir.join("multus.d")).unwrap();
    let log = node.root().join("agent2.log");
    let mut agent = start(&conf_dir, &log);
    wait("the refusal is logged", &log, &|| {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("symlink"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(
        std::fs::read_dir(victims.join("dir")).unwrap().count(),
        0,
        "nothing written through the multus.d link"
    );
}

/// Device IDs from the kubelet and a NAD's `resourceName` become the name of the device
/// plugin's device-info file (`dp/<resourceName>-<deviceID>-device.json`): a control character
/// is refused (code 7, naming the device ID or resource), `/` and `..` stay inside `dp/` (every
/// `/` becomes `-`, as in the reference), so nothing outside the device-info directory is read.
#[test]
fn hostile_device_ids_and_resource_names_stay_inside_the_device_info_directory() {
    let b = Bench::new();
    let kubelet_dir = b.node.root().join("kubelet");
    std::fs::create_dir_all(&kubelet_dir).unwrap();
    let kubelet = PodResourcesServer::start(&kubelet_dir.join("kubelet.sock"));
    let devinfo = b.node.root().join("devinfo");
    std::fs::create_dir_all(devinfo.join("dp")).unwrap();
    // What a traversal would reach: <devinfo>/<x>-device.json next to dp/, and the root's.
    let escaped = [
        devinfo.join("x-device.json"),
        b.node.root().join("x-device.json"),
    ];
    for p in &escaped {
        std::fs::write(p, r#"{"type": "pci", "secret": "NOT-FOR-THE-POD"}"#).unwrap();
    }
    let mut conf = b.conf();
    conf["podResourcesSocket"] = json!(kubelet.socket());
    conf["deviceCheckpointFile"] = json!(b.node.root().join("no-checkpoint"));
    conf["deviceInfoDir"] = json!(devinfo);
    let cases: Vec<(&str, &str, &str, Option<Vec<&str>>)> = vec![
        ("device ID ../../x", "example.com/vf", "../../x", None),
        ("device ID ../x", "example.com/vf", "../x", None),
        (
            "device ID with a newline",
            "example.com/vf",
            "0000:03\n",
            Some(vec!["device ID"]),
        ),
        (
            "device ID with NUL",
            "example.com/vf",
            "0000:03\0",
            Some(vec!["device ID"]),
        ),
        ("resourceName ../..", "../../x", "0000:03:02.1", None),
        (
            "resourceName with a newline",
            "example.com/v\nf",
            "0000:03:02.1",
            Some(vec!["resource"]),
        ),
    ];
    for (i, (case, resource, device, refusal)) in cases.into_iter().enumerate() {
        let nad = format!("dev{i}");
        let conf_json = json!({"cniVersion": "1.0.0", "name": nad, "type": "cni-recorder",
            "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}});
        b.api
            .create_nad(NadSeed::new("ns1", &nad, conf_json.to_string()).resource_name(resource))
            .unwrap();
        let name = format!("hd{i}");
        kubelet.set_pods(vec![FakePod::with_devices(
            "ns1",
            &name,
            &[(resource, &[device])],
        )]);
        let (pod, uid) = b.pod("ns1", &name, &[(NETWORKS, &nad)]);
        let out = b
            .call("ADD", &name, &pod, "ns1", &name, &uid)
            .run(&b.node, &b.multus, &conf);
        let status = b
            .api
            .pod_annotation("ns1", &name, STATUS)
            .unwrap_or_default();
        assert!(
            !status.contains("NOT-FOR-THE-POD"),
            "{case}: read outside dp/: {status}"
        );
        match refusal {
            Some(needles) => refused(case, &out, 7, &needles),
            None => {
                out.ok();
                b.call("DEL", &name, &pod, "ns1", &name, &uid)
                    .run(&b.node, &b.multus, &conf)
                    .assert_ok();
            }
        }
        b.node.assert_pod_clean(&pod);
    }
}
