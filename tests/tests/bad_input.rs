//! The bad-input corpus: malformed multus configurations, CNI environment variables, delegate
//! results, pod annotations (both syntaxes), NetworkAttachmentDefinition configs and `ebpf-sbr`
//! configurations, each run through the real binary. Every answer must carry the right CNI code,
//! name the key (and the value) in the user's words, and contain none of Rust's internals
//! (serde's `invalid type:`, `untagged enum`, `` at `?` ``, Debug output such as `Some(` or
//! `Os {`, doubly quoted paths, panics). Nothing may be left behind.

use serde_json::{json, Value};
use testkit::{
    bins, cni, confs,
    kube_api::{NadSeed, PodSeed},
    CniCall, CniOutput, Netns, Node,
};

/// Fragments that only Rust internals produce.
const FORBIDDEN: &[&str] = &[
    "untagged enum",
    "variant",
    "at `",
    "` at",
    "\"\\\"",
    "\\\"",
    "Error(",
    "Os {",
    "Some(",
    "None",
    "invalid type: ",
    "invalid value: ",
    "expected struct",
    "a sequence",
    "expected a map",
    "expected u32",
    "expected f64",
    "::",
    "panicked",
];

/// Asserts the failure's code, that its message names every `needle`, and that neither the
/// message nor the details contain internals.
fn check(case: &str, out: &CniOutput, code: u64, needles: &[&str]) {
    assert!(
        !out.status.success(),
        "{case}: expected a failure, got {}",
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
        assert!(
            msg.contains(needle),
            "{case}: expected {needle:?} in the message {msg:?}"
        );
    }
    let details = out
        .json
        .as_ref()
        .and_then(|j| j["details"].as_str())
        .unwrap_or_default();
    for text in [msg.as_str(), details] {
        for fragment in FORBIDDEN {
            assert!(
                !text.contains(fragment),
                "{case}: {fragment:?} (a Rust internal) in {text:?}"
            );
        }
    }
    assert!(
        !out.stderr.contains("panicked"),
        "{case}: panic: {}",
        out.stderr
    );
}

struct Bench {
    node: Node,
    multus: std::path::PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let node = Node::new();
        let multus = bins::product("multus");
        node.install("multus", &multus);
        node.install(
            "cni-recorder",
            std::path::Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
        );
        Bench { node, multus }
    }

    /// A valid configuration: one recorder delegate.
    fn conf(&self) -> Value {
        let recorder = json!({"cniVersion": "1.0.0", "name": "rec", "type": "cni-recorder"});
        confs::multus(
            "1.0.0",
            &self.node.cache_dir(),
            &self.node.bin_dir(),
            vec![recorder],
        )
    }

    fn add_raw(&self, id: &str, pod: &Netns, stdin: &[u8]) -> CniOutput {
        CniCall::new(&self.node, "ADD", id, Some(pod), "eth0").run_bytes(
            &self.node,
            &self.multus,
            stdin,
        )
    }
}

/// A copy of `base` with `key` set to `value` (a `null` value removes the key).
fn with(base: &Value, key: &str, value: Value) -> Vec<u8> {
    let mut c = base.clone();
    if value.is_null() {
        c.as_object_mut().unwrap().remove(key);
    } else {
        c[key] = value;
    }
    serde_json::to_vec(&c).unwrap()
}

#[test]
fn bad_multus_configurations() {
    let b = Bench::new();
    let base = b.conf();
    let text = base.to_string();
    let cases: Vec<(&str, Vec<u8>, u64, Vec<&str>)> = vec![
        (
            "delegates a string",
            with(&base, "delegates", json!("a")),
            6,
            vec!["delegates", "\"a\"", "a list"],
        ),
        (
            "apiDeadlineSeconds a string",
            with(&base, "apiDeadlineSeconds", json!("3")),
            6,
            vec!["apiDeadlineSeconds", "\"3\"", "a number"],
        ),
        (
            "negative logOptions.maxAge",
            with(&base, "logOptions", json!({"maxAge": -1})),
            6,
            vec!["logOptions.maxAge", "-1", "a whole number"],
        ),
        (
            "logOptions a string",
            with(&base, "logOptions", json!("big")),
            6,
            vec!["logOptions", "\"big\"", "an object"],
        ),
        (
            "logToStderr a string",
            with(&base, "logToStderr", json!("yes")),
            6,
            vec!["logToStderr", "\"yes\"", "true or false"],
        ),
        (
            "kubeconfig a number",
            with(&base, "kubeconfig", json!(5)),
            6,
            vec!["kubeconfig", "5", "a path"],
        ),
        (
            "systemNamespaces a string",
            with(&base, "systemNamespaces", json!("kube-system")),
            6,
            vec!["systemNamespaces", "\"kube-system\"", "a list"],
        ),
        (
            "valid-attachments without containerID",
            with(
                &base,
                "cni.dev/valid-attachments",
                json!([{"ifname": "eth0"}]),
            ),
            6,
            vec!["cni.dev/valid-attachments[0]", "\"containerID\"", "missing"],
        ),
        (
            "truncated JSON",
            text.as_bytes()[..text.len() - 1].to_vec(),
            6,
            vec!["line 1 column", "'}'"],
        ),
        (
            "not JSON",
            b"cniVersion: 1.0.0".to_vec(),
            6,
            vec!["line 1 column 1", "expected a JSON value"],
        ),
        (
            "trailing text",
            format!("{text} x").into_bytes(),
            6,
            vec!["line 1 column", "more text after the JSON value"],
        ),
        (
            "a trailing comma",
            format!("{},}}", &text[..text.len() - 1]).into_bytes(),
            6,
            vec!["line 1 column", "','"],
        ),
        (
            "a duplicate key",
            format!(r#"{{"cniVersion": "1.0.0", {}"#, &text[1..]).into_bytes(),
            6,
            vec!["\"cniVersion\"", "more than once"],
        ),
        ("empty stdin", Vec::new(), 6, vec!["stdin is empty"]),
        (
            "unsupported cniVersion",
            with(&base, "cniVersion", json!("9.9.9")),
            1,
            vec!["9.9.9"],
        ),
        (
            "a delegate without type",
            with(&base, "delegates", json!([{"name": "x"}])),
            7,
            vec!["delegates[0]", "\"type\""],
        ),
        (
            "a delegate that is a number",
            with(&base, "delegates", json!([5])),
            7,
            vec!["delegates[0]", "a JSON object"],
        ),
        (
            "a delegate plugin type that is a path",
            with(&base, "delegates", json!([{"type": "../bin/sh"}])),
            7,
            vec!["delegates[0]", "../bin/sh"],
        ),
        (
            "a relative cniDir with quotes",
            with(&base, "cniDir", json!("rel\"ative")),
            7,
            vec!["cniDir", "rel"],
        ),
        (
            "readinessindicatorfile a number",
            with(&base, "readinessindicatorfile", json!(3)),
            6,
            vec!["readinessindicatorfile", "3", "a path"],
        ),
    ];
    for (i, (case, stdin, code, needles)) in cases.iter().enumerate() {
        let pod = Netns::new("bi");
        let out = b.add_raw(&format!("conf{i}"), &pod, stdin);
        check(case, &out, *code, needles);
        b.node.assert_pod_clean(&pod);
    }
}

#[test]
fn bad_kubeconfigs() {
    let b = Bench::new();
    let dir = b.node.root().join("kubeconfigs");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let missing = dir.join("with\"quote");
    let cases = [
        (
            "a missing file",
            missing.clone(),
            vec!["with\"quote", "cannot read it"],
        ),
        (
            "not YAML",
            write("garbage", "clusters: [\n"),
            vec!["garbage", "line 1 column", "YAML"],
        ),
        (
            "YAML of the wrong shape",
            write("shape", "apiVersion: v1\nclusters: 5\n"),
            vec!["shape", "line 2 column"],
        ),
        (
            "no such context",
            write(
                "context",
                "apiVersion: v1\nkind: Config\ncurrent-context: x\n",
            ),
            vec!["context", "x"],
        ),
    ];
    for (i, (case, kubeconfig, needles)) in cases.iter().enumerate() {
        let mut conf = b.conf();
        conf["kubeconfig"] = json!(kubeconfig);
        let pod = Netns::new("bi");
        let out = CniCall::new(&b.node, "ADD", &format!("kc{i}"), Some(&pod), "eth0")
            .args(&cni::k8s_args("ns1", "p", None, None))
            .run(&b.node, &b.multus, &conf);
        check(case, &out, 7, needles);
        assert!(
            !out.err_msg().contains('\n'),
            "{case}: one line: {}",
            out.err_msg()
        );
        b.node.assert_pod_clean(&pod);
    }
}

#[test]
fn bad_cni_environment_variables() {
    let b = Bench::new();
    let conf = serde_json::to_vec(&b.conf()).unwrap();
    let pod = Netns::new("bi");
    let call = || CniCall::new(&b.node, "ADD", "env0", Some(&pod), "eth0");
    let cases: Vec<(&str, CniCall, Vec<&str>)> = vec![
        (
            "unknown command",
            CniCall {
                command: "FOO".into(),
                ..call()
            },
            vec!["CNI_COMMAND", "FOO"],
        ),
        (
            "container id with a quote",
            CniCall {
                container_id: "\"x/../y".into(),
                ..call()
            },
            vec!["CNI_CONTAINERID", "x/../y"],
        ),
        (
            "no interface name",
            CniCall {
                unset: vec!["CNI_IFNAME".into()],
                ..call()
            },
            vec!["CNI_IFNAME"],
        ),
        (
            "interface name with a slash",
            CniCall {
                ifname: "a/b".into(),
                ..call()
            },
            vec!["CNI_IFNAME", "a/b"],
        ),
        (
            "no namespace for ADD",
            CniCall {
                unset: vec!["CNI_NETNS".into()],
                ..call()
            },
            vec!["CNI_NETNS"],
        ),
        (
            "CNI_ARGS without a value",
            call().args("IgnoreUnknown=1;K8S_POD_NAMESPACE"),
            vec!["CNI_ARGS", "K8S_POD_NAMESPACE"],
        ),
        (
            "CNI_ARGS with an empty key",
            call().args("=x"),
            vec!["CNI_ARGS", "=x"],
        ),
    ];
    for (case, c, needles) in cases {
        let out = c.run_bytes(&b.node, &b.multus, &conf);
        check(case, &out, 4, &needles);
    }
    b.node.assert_pod_clean(&pod);
}

#[test]
fn bad_delegate_results() {
    let b = Bench::new();
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "an address that is not one",
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.300/24"}]}),
            vec!["ips[0].address", "\"10.0.0.300/24\""],
        ),
        (
            "interfaces a string",
            json!({"cniVersion": "1.0.0", "interfaces": "eth0"}),
            vec!["interfaces", "\"eth0\"", "a list"],
        ),
        (
            "a route gateway that is a number",
            json!({"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "gw": 3}]}),
            vec!["routes[0].gw", "3", "an IP address"],
        ),
        (
            "a route without dst",
            json!({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}),
            vec!["routes[0]", "\"dst\"", "missing"],
        ),
        (
            "a legacy result with a bad ip4",
            json!({"cniVersion": "0.2.0", "ip4": {"ip": 5}}),
            vec!["ip4.ip", "5"],
        ),
    ];
    for (i, (case, result, needles)) in cases.iter().enumerate() {
        let mut conf = b.conf();
        conf["delegates"][0]["result"] = result.clone();
        conf["delegates"][0]["cniVersion"] = result["cniVersion"].clone();
        let pod = Netns::new("bi");
        let out = b.add_raw(
            &format!("res{i}"),
            &pod,
            &serde_json::to_vec(&conf).unwrap(),
        );
        let code = out.err_code();
        check(case, &out, code, needles);
        assert!(
            code == 100 || code == 6,
            "{case}: a delegate's bad output is the delegate's failure: {}",
            out.stdout
        );
        b.node.assert_pod_clean(&pod);
        assert!(
            std::fs::read_dir(b.node.cache_dir())
                .map(|d| d.count() <= 1)
                .unwrap_or(true),
            "{case}: the cache entry is removed"
        );
    }
}

#[test]
fn bad_annotations_and_network_attachment_definitions() {
    let b = Bench::new();
    let api = b.node.api_server();
    let kubeconfig = api.write_kubeconfig(b.node.root()).expect("kubeconfig");
    let mut conf = b.conf();
    conf["kubeconfig"] = json!(kubeconfig);
    conf["apiDeadlineSeconds"] = json!(3);
    let recorder = json!({"cniVersion": "1.0.0", "type": "cni-recorder"});
    api.create_nad(NadSeed::new("ns1", "good", recorder.to_string()))
        .unwrap();
    let bad_nads: &[(&str, &str)] = &[
        (
            "truncated",
            r#"{"cniVersion": "1.0.0", "type": "cni-recorder""#,
        ),
        ("no-type", r#"{"cniVersion": "1.0.0", "name": "x"}"#),
        (
            "plugins-string",
            r#"{"cniVersion": "1.0.0", "plugins": "x"}"#,
        ),
        (
            "version-number",
            r#"{"cniVersion": 1, "type": "cni-recorder"}"#,
        ),
        ("a-list", r#"[{"type": "cni-recorder"}]"#),
    ];
    for (name, config) in bad_nads {
        api.create_nad(NadSeed::new("ns1", name, config.to_string()))
            .unwrap();
    }
    const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
    const DEFAULT: &str = "v1.multus-cni.io/default-network";
    let cases: Vec<(&str, &str, &str, u64, Vec<&str>)> = vec![
        (
            "JSON syntax: trailing comma",
            NETWORKS,
            r#"[{"name": "good",}]"#,
            7,
            vec![NETWORKS, "line 1 column", "','"],
        ),
        (
            "JSON syntax: unclosed list",
            NETWORKS,
            r#"[{"name": "good"}"#,
            7,
            vec![NETWORKS, "line 1 column", "']'"],
        ),
        (
            "JSON: name a number",
            NETWORKS,
            r#"[{"name": 5}]"#,
            7,
            vec![NETWORKS, "name"],
        ),
        (
            "JSON: ips a string",
            NETWORKS,
            r#"[{"name": "good", "ips": "10.0.0.1/24"}]"#,
            7,
            vec![NETWORKS, "ips"],
        ),
        (
            "JSON: a bad default-route",
            NETWORKS,
            r#"[{"name": "good", "default-route": ["x\"y"]}]"#,
            7,
            vec![NETWORKS, "default-route", "x"],
        ),
        (
            "JSON: a number",
            NETWORKS,
            "[5]",
            7,
            vec![NETWORKS, "element 0"],
        ),
        (
            "short: empty element",
            NETWORKS,
            "good,,good",
            7,
            vec![NETWORKS, "element 1"],
        ),
        (
            "short: bad name",
            NETWORKS,
            "ns1/Bad_Name",
            7,
            vec![NETWORKS, "Bad_Name"],
        ),
        (
            "short: bad interface",
            NETWORKS,
            "good@a/b",
            7,
            vec![NETWORKS, "a/b"],
        ),
        (
            "default-network: two",
            DEFAULT,
            "good,good",
            7,
            vec![DEFAULT, "exactly one"],
        ),
        (
            "NAD: truncated config",
            NETWORKS,
            "truncated",
            7,
            vec!["ns1/truncated", "line 1 column"],
        ),
        (
            "NAD: no type",
            NETWORKS,
            "no-type",
            7,
            vec!["ns1/no-type", "\"type\""],
        ),
        (
            "NAD: plugins a string",
            NETWORKS,
            "plugins-string",
            7,
            vec!["ns1/plugins-string", "\"plugins\""],
        ),
        (
            "NAD: cniVersion a number",
            NETWORKS,
            "version-number",
            7,
            vec!["ns1/version-number", "\"cniVersion\""],
        ),
        (
            "NAD: a list",
            NETWORKS,
            "a-list",
            7,
            vec!["ns1/a-list", "a JSON object"],
        ),
    ];
    for (i, (case, annotation, value, code, needles)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        let pod_obj = api
            .create_pod(PodSeed::new("ns1", &name).annotation(annotation, value))
            .unwrap();
        let uid = pod_obj["metadata"]["uid"].as_str().unwrap().to_string();
        let pod = Netns::new("bi");
        let out = CniCall::new(&b.node, "ADD", &name, Some(&pod), "eth0")
            .args(&cni::k8s_args("ns1", &name, Some(&name), Some(&uid)))
            .run(&b.node, &b.multus, &conf);
        check(case, &out, *code, needles);
        b.node.assert_pod_clean(&pod);
    }
}

#[test]
fn bad_ebpf_sbr_configurations() {
    let node = Node::new();
    let sbr = bins::product("ebpf-sbr");
    let pod = Netns::new("bi");
    pod.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    let bpffs = node.root().join("bpf");
    let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "ebpf-sbr", "bpffsDir": bpffs,
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod.path()}],
                       "ips": [{"address": "10.9.0.2/24", "gateway": "10.9.0.1", "interface": 0}]}});
    let cases: Vec<(&str, Vec<u8>, u64, Vec<&str>)> = vec![
        (
            "gateway a number",
            with(&base, "gateway", json!(5)),
            6,
            vec!["gateway", "5", "an IP address"],
        ),
        (
            "gateway an object",
            with(&base, "gateway", json!({"v4": "10.0.0.1"})),
            6,
            vec!["gateway", "an object", "an IP address"],
        ),
        (
            "attachMode a number",
            with(&base, "attachMode", json!(3)),
            6,
            vec!["attachMode", "3", "a string"],
        ),
        (
            "debug a string",
            with(&base, "debug", json!("yes")),
            6,
            vec!["debug", "\"yes\"", "true or false"],
        ),
        (
            "a relative bpffsDir",
            with(&base, "bpffsDir", json!("rel\"dir")),
            7,
            vec!["bpffsDir", "rel"],
        ),
        (
            "prevResult with a bad address",
            with(
                &base,
                "prevResult",
                json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod.path()}],
                       "ips": [{"address": "10.9.0.300/24", "interface": 0}]}),
            ),
            6,
            vec!["prevResult", "ips[0].address", "\"10.9.0.300/24\""],
        ),
        (
            "truncated JSON",
            br#"{"cniVersion": "1.0.0", "type": "ebpf-sbr""#.to_vec(),
            6,
            vec!["line 1 column", "'}'"],
        ),
    ];
    for (case, stdin, code, needles) in cases {
        let out =
            CniCall::new(&node, "ADD", "sbr0", Some(&pod), "eth0").run_bytes(&node, &sbr, &stdin);
        check(case, &out, code, &needles);
    }
}
