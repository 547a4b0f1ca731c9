//! The manifests in deploy/: every document parses into its Kubernetes type and serialises back
//! to exactly what is written (a misspelt field is not silently dropped); the kustomizations
//! (thick, the default, and thin) list every manifest and `kubectl kustomize` builds them; every
//! path the daemon's configuration and code use is mounted from the host path it means; images
//! and commands agree with the workspace version and the image's binaries; the probes tell a
//! ready daemon from one that is only alive; and the ClusterRoles are least privilege, proven: a
//! pod lifecycle through the thick daemon and one through thin `multus` against the API
//! stand-in, each request checked against the role and each granted verb used by a request.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::DaemonSet,
        core::v1::{ConfigMap, Container, PodSpec, ServiceAccount, Volume, VolumeMount},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::api::resource::Quantity,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use testkit::{
    bins, confs,
    kube_api::{
        rbac::{self, Rule},
        KubeApiServer, NadSeed, PodSeed, RecordedRequest,
    },
    thick::{self, Daemon},
    CniCall, Netns, Node,
};

// ---- The image contract (issue 11), in one place ----
//
// The image's binaries and the commands the pod templates run, as the contract between the
// image, installer and thin-agent work and these manifests states them. `install`, `thin` and
// the daemon's `-install-*` flags are written on other branches: once they are merged, the
// commands can also be run (as the probes are below) instead of compared.

/// Every binary in the image (deploy/image/Containerfile).
const IMAGE_BINARIES: &[&str] = &[
    "/usr/bin/multus-daemon",
    "/usr/bin/multus",
    "/usr/bin/multusctl",
    "/usr/bin/ebpf-sbr",
    "/usr/bin/multus-shim",
];
/// The image's name, tagged with the workspace version.
const IMAGE_NAME: &str = "localhost/multus-rs";
const THICK_INSTALL: &[&str] = &[
    "/usr/bin/multus-daemon",
    "install",
    "--mode",
    "thick",
    "--cni-bin-dir",
    "/host/opt/cni/bin",
];
const THICK_DAEMON: &[&str] = &[
    "/usr/bin/multus-daemon",
    "-config",
    "/etc/cni/net.d/multus.d/daemon-config.json",
    "-install-cni-bin-dir",
    "/host/opt/cni/bin",
    "-install-mode",
    "thick",
];
const THIN_INSTALL: &[&str] = &[
    "/usr/bin/multus-daemon",
    "install",
    "--mode",
    "thin",
    "--cni-bin-dir",
    "/host/opt/cni/bin",
];
const THIN_AGENT: &[&str] = &[
    "/usr/bin/multus-daemon",
    "thin",
    "--cni-conf-dir",
    "/host/etc/cni/net.d",
];
/// Where the thin agent reads the ServiceAccount's token and CA (its default).
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

// ---- Reading deploy/ ----

fn deploy_dir() -> PathBuf {
    bins::workspace_root().join("deploy")
}

/// The YAML documents of one file (or of `kubectl kustomize` output), as JSON values.
fn documents(text: &str, what: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn read_documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    documents(&text, &file.display().to_string())
}

/// Every manifest file under deploy/ (YAML, not a kustomization; deploy/image/ holds the image's
/// build, not manifests).
fn manifest_files() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "image" {
                    walk(&path, out);
                }
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) && path.file_name().unwrap() != "kustomization.yaml"
            {
                out.insert(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&deploy_dir(), &mut out);
    out
}

/// The manifest files a kustomization directory builds from, following directories it names.
fn kustomization_files(dir: &Path) -> Vec<PathBuf> {
    let k = read_documents(&dir.join("kustomization.yaml"));
    assert_eq!(k.len(), 1, "{dir:?}");
    let k = &k[0];
    assert_eq!(k["kind"], "Kustomization", "{dir:?}");
    let mut out = Vec::new();
    for r in k["resources"].as_array().expect("resources") {
        let path = dir.join(r.as_str().expect("a path"));
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
        if path.is_dir() {
            out.extend(kustomization_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The documents one variant (`deploy` or `deploy/thin`) creates.
fn variant(dir: &Path) -> Vec<Value> {
    kustomization_files(dir)
        .iter()
        .flat_map(|f| read_documents(f))
        .collect()
}

fn thick() -> Vec<Value> {
    variant(&deploy_dir())
}

fn thin() -> Vec<Value> {
    variant(&deploy_dir().join("thin"))
}

/// `value` as the Kubernetes type `T`, asserting it serialises back to exactly `value`.
fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> T {
    let what = format!("{} {}", value["kind"], value["metadata"]["name"]);
    let t: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&t).unwrap();
    assert_eq!(
        &back, value,
        "{what}: fields the Kubernetes type does not have (misspelt?) or a value of another form"
    );
    t
}

/// One manifest object, by kind; any other kind is refused.
enum Object {
    DaemonSet(Box<DaemonSet>),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Crd(Box<CustomResourceDefinition>),
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
}

fn object(v: &Value) -> Object {
    let kind = (v["apiVersion"].as_str(), v["kind"].as_str());
    match kind {
        (Some("apps/v1"), Some("DaemonSet")) => Object::DaemonSet(Box::new(typed(v))),
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
            Object::ClusterRole(typed(v))
        }
        (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
            Object::ClusterRoleBinding(typed(v))
        }
        (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")) => {
            Object::Crd(Box::new(typed(v)))
        }
        (Some("v1"), Some("ConfigMap")) => Object::ConfigMap(typed(v)),
        (Some("v1"), Some("ServiceAccount")) => Object::ServiceAccount(typed(v)),
        other => panic!("a manifest of a kind not expected in deploy/: {other:?}"),
    }
}

fn daemonset(docs: &[Value]) -> DaemonSet {
    let mut found = docs.iter().filter_map(|d| match object(d) {
        Object::DaemonSet(ds) => Some(*ds),
        _ => None,
    });
    let ds = found.next().expect("a DaemonSet");
    assert!(found.next().is_none(), "one DaemonSet per variant");
    ds
}

fn cluster_role(docs: &[Value]) -> Vec<Rule> {
    let roles: Vec<ClusterRole> = docs
        .iter()
        .filter_map(|d| match object(d) {
            Object::ClusterRole(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(roles.len(), 1, "one ClusterRole per variant");
    roles[0]
        .rules
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|r| Rule {
            api_groups: r.api_groups.unwrap_or_default(),
            resources: r.resources.unwrap_or_default(),
            verbs: r.verbs,
            resource_names: r.resource_names.unwrap_or_default(),
        })
        .collect()
}

fn daemon_config(docs: &[Value]) -> (multus::daemon::config::DaemonConfig, ConfigMap) {
    let cm = docs
        .iter()
        .find_map(|d| match object(d) {
            Object::ConfigMap(c) => Some(c),
            _ => None,
        })
        .expect("the daemon ConfigMap");
    let text = cm.data.as_ref().unwrap()["daemon-config.json"].clone();
    let conf = multus::daemon::config::DaemonConfig::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("daemon-config.json: {e}"));
    (conf, cm)
}

fn pod_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec.template.spec.clone().unwrap()
}

fn container<'a>(spec: &'a PodSpec, name: &str, init: bool) -> &'a Container {
    let list = if init {
        spec.init_containers.as_ref().unwrap()
    } else {
        &spec.containers
    };
    list.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

/// The value following `flag` in `command`.
fn flag<'a>(command: &'a [String], flag: &str) -> &'a str {
    let i = command
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in {command:?}"));
    &command[i + 1]
}

// ---- Mounts ----

/// Where a path inside a container comes from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// A host path, with the mount's propagation (`None`: private).
    Host(PathBuf, Option<String>),
    /// A ConfigMap's item (name, key).
    ConfigMap(String, String),
}

/// `/var/run/...` on a host is `/run/...` (a symlink on every distribution a kubelet runs on).
fn host_canonical(p: &Path) -> PathBuf {
    match p.strip_prefix("/var/run") {
        Ok(rest) => Path::new("/run").join(rest),
        Err(_) => p.to_path_buf(),
    }
}

/// Where `path` in `container` comes from, through the deepest mount that holds it.
fn source(spec: &PodSpec, container: &Container, path: &Path) -> Source {
    let mounts: Vec<&VolumeMount> = container.volume_mounts.iter().flatten().collect();
    let mount = mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| panic!("{} is not mounted in {}", path.display(), container.name));
    let volume: &Volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("volume {}", mount.name));
    let rest = path.strip_prefix(&mount.mount_path).unwrap();
    if let Some(h) = &volume.host_path {
        let host = Path::new(&h.path).join(rest);
        return Source::Host(host_canonical(&host), mount.mount_propagation.clone());
    }
    if let Some(cm) = &volume.config_map {
        let file = rest.to_str().unwrap();
        let item = cm
            .items
            .iter()
            .flatten()
            .find(|i| i.path == file)
            .unwrap_or_else(|| panic!("{} has no item {file}", cm.name));
        return Source::ConfigMap(cm.name.clone(), item.key.clone());
    }
    panic!(
        "{}: volume {} is neither a host path nor a ConfigMap",
        path.display(),
        volume.name
    )
}

/// Asserts `path` in `container` is the host's `host`; `follow`: with a propagation that shows
/// mounts the host makes later (network namespaces, bpffs).
fn assert_host(spec: &PodSpec, c: &Container, path: &Path, host: &Path, follow: bool) {
    match source(spec, c, path) {
        Source::Host(h, propagation) => {
            assert_eq!(
                h,
                host_canonical(host),
                "{} in {} must be the host's {}",
                path.display(),
                c.name,
                host.display()
            );
            if follow {
                assert!(
                    matches!(
                        propagation.as_deref(),
                        Some("HostToContainer" | "Bidirectional")
                    ),
                    "{} in {} must see mounts the host makes later: {propagation:?}",
                    path.display(),
                    c.name
                );
            }
        }
        other => panic!("{} in {}: {other:?}", path.display(), c.name),
    }
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type_exactly() {
    let files = manifest_files();
    assert!(!files.is_empty());
    let mut kinds = BTreeMap::new();
    for f in &files {
        let docs = read_documents(f);
        assert!(!docs.is_empty(), "{f:?} is empty");
        for d in &docs {
            let _ = object(d);
            *kinds
                .entry(d["kind"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            // Objects in kube-system are placed there by the manifest (`kubectl apply -k` into
            // another current namespace must not move them); cluster-scoped ones have none.
            let cluster_scoped = matches!(
                d["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition")
            );
            assert_eq!(
                d["metadata"].get("namespace").is_some(),
                !cluster_scoped,
                "{f:?}: {}",
                d["kind"]
            );
            if !cluster_scoped {
                assert_eq!(d["metadata"]["namespace"], "kube-system", "{f:?}");
            }
        }
    }
    assert_eq!(kinds["DaemonSet"], 2, "thick and thin: {kinds:?}");
    assert_eq!(kinds["ClusterRole"], 2, "thick and thin: {kinds:?}");
    for kind in [
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "ConfigMap",
        "ServiceAccount",
    ] {
        assert_eq!(kinds.get(kind), Some(&1), "{kind}: {kinds:?}");
    }
    // The CRD is the reference's, with a schema.
    let crd = thick()
        .iter()
        .find_map(|d| match object(d) {
            Object::Crd(c) => Some(c),
            _ => None,
        })
        .expect("the CRD");
    let meta_name = crd.metadata.name.clone().unwrap();
    assert_eq!(meta_name, "network-attachment-definitions.k8s.cni.cncf.io");
    let spec = &crd.spec;
    assert_eq!(spec.group, "k8s.cni.cncf.io");
    assert_eq!(spec.scope, "Namespaced");
    assert_eq!(spec.names.plural, "network-attachment-definitions");
    assert_eq!(spec.names.kind, "NetworkAttachmentDefinition");
    assert_eq!(
        spec.names.short_names.clone().unwrap(),
        vec!["nad".to_string(), "net-attach-def".to_string()]
    );
    assert_eq!(spec.versions.len(), 1);
    let v1 = &spec.versions[0];
    assert!(v1.name == "v1" && v1.served && v1.storage);
    let schema = v1
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    let config = &schema.properties.as_ref().unwrap()["spec"]
        .properties
        .as_ref()
        .unwrap()["config"];
    assert_eq!(config.type_.as_deref(), Some("string"));
    // The binding names the ServiceAccount the DaemonSets run as, and the role both variants name.
    let binding = thick()
        .iter()
        .find_map(|d| match object(d) {
            Object::ClusterRoleBinding(b) => Some(b),
            _ => None,
        })
        .unwrap();
    for docs in [thick(), thin()] {
        let ds = daemonset(&docs);
        let spec = pod_spec(&ds);
        let sa = spec.service_account_name.clone().unwrap();
        let account = docs
            .iter()
            .find_map(|d| match object(d) {
                Object::ServiceAccount(a) => Some(a),
                _ => None,
            })
            .expect("the ServiceAccount");
        assert_eq!(account.metadata.name.as_deref(), Some(sa.as_str()));
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (subject.kind.as_str(), subject.name.as_str()),
            ("ServiceAccount", sa.as_str())
        );
        assert_eq!(
            subject.namespace.as_deref(),
            ds.metadata.namespace.as_deref()
        );
        let role = docs
            .iter()
            .find_map(|d| match object(d) {
                Object::ClusterRole(r) => r.metadata.name,
                _ => None,
            })
            .unwrap();
        assert_eq!(binding.role_ref.name, role);
        assert_ne!(spec.automount_service_account_token, Some(false));
    }
}

/// Runs `kubectl kustomize dir` (the build `kubectl apply -k` does, offline).
fn kubectl_kustomize(dir: &Path) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl (the tests need it: kube.rs reads events with it too)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8_lossy(&out.stdout), "kubectl kustomize")
}

fn by_kind_and_name(docs: Vec<Value>) -> BTreeMap<(String, String), Value> {
    docs.into_iter()
        .map(|d| {
            let key = (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            );
            (key, d)
        })
        .collect()
}

#[test]
fn the_kustomizations_cover_every_manifest_and_kubectl_builds_them() {
    let thick_files = kustomization_files(&deploy_dir());
    let thin_files = kustomization_files(&deploy_dir().join("thin"));
    let listed: BTreeSet<PathBuf> = thick_files.iter().chain(&thin_files).cloned().collect();
    let on_disk: BTreeSet<PathBuf> = manifest_files()
        .iter()
        .map(|p| p.canonicalize().unwrap())
        .collect();
    assert_eq!(
        listed, on_disk,
        "a manifest no kustomization lists, or a listed file missing"
    );
    // Thick is the default: deploy/ itself builds it (its DaemonSet runs the daemon).
    let ds = daemonset(&thick());
    assert_eq!(
        pod_spec(&ds).containers[0].command.clone().unwrap(),
        THICK_DAEMON
    );
    for (dir, docs) in [(deploy_dir(), thick()), (deploy_dir().join("thin"), thin())] {
        let built = by_kind_and_name(kubectl_kustomize(&dir));
        let written = by_kind_and_name(docs);
        assert_eq!(
            built.keys().collect::<Vec<_>>(),
            written.keys().collect::<Vec<_>>(),
            "{}",
            dir.display()
        );
        assert_eq!(
            built,
            written,
            "kubectl kustomize {} changes the objects",
            dir.display()
        );
    }
}

#[test]
fn every_path_the_daemon_uses_is_mounted_from_the_host_path_it_means() {
    use multus::{
        config::netconf::{DEFAULT_BIN_DIR, DEFAULT_CNI_DIR, DEFAULT_CONF_DIR},
        daemon::config::{DEFAULT_CNI_CONFIG_DIR, DEFAULT_SOCKET_DIR},
        devices::{devinfo::DEFAULT_DEVINFO_DIR, DEFAULT_CHECKPOINT, DEFAULT_SOCKET},
        sbr::DEFAULT_BPFFS_DIR,
    };
    let docs = thick();
    let (conf, cm) = daemon_config(&docs);
    let spec = pod_spec(&daemonset(&docs));
    let daemon = container(&spec, "kube-multus", false);
    let install = container(&spec, "install-multus-binary", true);
    let command = daemon.command.clone().unwrap();
    let s = |p: &str| PathBuf::from(p);
    let raw = |key: &str, default: &str| {
        PathBuf::from(conf.raw.get(key).and_then(Value::as_str).unwrap_or(default))
    };
    // The configuration file is the ConfigMap's.
    assert_eq!(
        source(&spec, daemon, Path::new(flag(&command, "-config"))),
        Source::ConfigMap(
            cm.metadata.name.clone().unwrap(),
            "daemon-config.json".into()
        )
    );
    // (path in the container, the host's path it must be, whether later host mounts must show)
    let chroot = conf
        .chroot_dir
        .clone()
        .expect("chrootDir: delegates run on the host's /");
    let mut expected = vec![
        // multus-shim connects to its default socket directory on the host.
        (conf.socket_dir.clone(), s(DEFAULT_SOCKET_DIR), false),
        // 00-multus.conf goes where the runtime reads; the primary is found there.
        (
            conf.cni_config_dir.clone(),
            s(DEFAULT_CNI_CONFIG_DIR),
            false,
        ),
        (
            conf.multus_autoconfig_dir
                .clone()
                .expect("multusAutoconfigDir"),
            s(DEFAULT_CNI_CONFIG_DIR),
            false,
        ),
        (chroot.clone(), s("/"), true),
        // The delegate cache and the NAD files, where the thin mode and the reference keep them.
        (raw("cniDir", DEFAULT_CNI_DIR), s(DEFAULT_CNI_DIR), false),
        (raw("confDir", DEFAULT_CONF_DIR), s(DEFAULT_CONF_DIR), false),
        // The binaries installed again at start.
        (
            s(flag(&command, "-install-cni-bin-dir")),
            s(DEFAULT_BIN_DIR),
            false,
        ),
        // CNI_NETNS as runtimes pass it, opened by the daemon itself.
        (s("/run/netns"), s("/run/netns"), true),
        (s("/var/run/netns"), s("/run/netns"), true),
        // bpffs and the ebpf-sbr pins.
        (s("/sys/fs/bpf"), s("/sys/fs/bpf"), true),
        (s(DEFAULT_BPFFS_DIR), s(DEFAULT_BPFFS_DIR), true),
        // Device IDs and device-info files.
        (s(DEFAULT_DEVINFO_DIR), s(DEFAULT_DEVINFO_DIR), false),
        (s(DEFAULT_SOCKET), s(DEFAULT_SOCKET), false),
        (s(DEFAULT_CHECKPOINT), s(DEFAULT_CHECKPOINT), false),
    ];
    // Network namespaces the delegates open through the chroot.
    expected.push((chroot.join("run/netns"), s("/run/netns"), true));
    for (path, host, follow) in &expected {
        assert_host(&spec, daemon, path, host, *follow);
    }
    // Keys naming paths that are not listed above would go unmounted: none may be set.
    for key in [
        "logFile",
        "kubeconfig",
        "podResourcesSocket",
        "deviceCheckpointFile",
        "binDir",
    ] {
        assert!(
            conf.raw.get(key).is_none(),
            "{key} is set: mount it and list it here"
        );
    }
    // The init container installs into the host's bin directory.
    let install_cmd = install.command.clone().unwrap();
    assert_host(
        &spec,
        install,
        Path::new(flag(&install_cmd, "--cni-bin-dir")),
        Path::new(DEFAULT_BIN_DIR),
        false,
    );
    // Nothing else: each mount serves a path above (least privilege applies to the host too).
    for m in daemon.volume_mounts.iter().flatten() {
        assert!(
            expected
                .iter()
                .any(|(p, _, _)| p.starts_with(&m.mount_path))
                || m.mount_path
                    == Path::new(flag(&command, "-config"))
                        .parent()
                        .unwrap()
                        .to_str()
                        .unwrap(),
            "{} is mounted but no path the daemon uses is under it",
            m.mount_path
        );
    }
}

#[test]
fn thin_mounts_the_directories_its_commands_name() {
    let spec = pod_spec(&daemonset(&thin()));
    let agent = container(&spec, "kube-multus", false);
    let install = container(&spec, "install-multus-binary", true);
    let cmd = agent.command.clone().unwrap();
    assert_host(
        &spec,
        agent,
        Path::new(flag(&cmd, "--cni-conf-dir")),
        Path::new(multus::daemon::config::DEFAULT_CNI_CONFIG_DIR),
        false,
    );
    let install_cmd = install.command.clone().unwrap();
    assert_host(
        &spec,
        install,
        Path::new(flag(&install_cmd, "--cni-bin-dir")),
        Path::new(multus::config::netconf::DEFAULT_BIN_DIR),
        false,
    );
    // The token and CA come from the ServiceAccount volume the kubelet mounts (not a host path).
    assert!(!agent
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| Path::new(SERVICE_ACCOUNT_DIR).starts_with(&m.mount_path)));
    assert_ne!(spec.automount_service_account_token, Some(false));
    // No daemon: no hostPID, no host root, no netns, no bpffs.
    assert_ne!(spec.host_pid, Some(true));
    assert_eq!(
        spec.volumes.as_ref().unwrap().len(),
        2,
        "{:?}",
        spec.volumes
    );
}

#[test]
fn every_container_runs_the_workspace_version_image_and_the_contract_commands() {
    let image = format!("{IMAGE_NAME}:{}", env!("CARGO_PKG_VERSION"));
    for (docs, install, main) in [
        (thick(), THICK_INSTALL, THICK_DAEMON),
        (thin(), THIN_INSTALL, THIN_AGENT),
    ] {
        let spec = pod_spec(&daemonset(&docs));
        let all: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .collect();
        assert_eq!(all.len(), 2);
        for c in &all {
            assert_eq!(c.image.as_deref(), Some(image.as_str()), "{}", c.name);
            let mut argvs = vec![c.command.clone().unwrap()];
            for probe in [&c.readiness_probe, &c.liveness_probe]
                .into_iter()
                .flatten()
            {
                argvs.push(probe.exec.as_ref().unwrap().command.clone().unwrap());
            }
            for argv in argvs {
                assert!(IMAGE_BINARIES.contains(&argv[0].as_str()), "{argv:?}");
            }
            assert!(
                c.args.is_none(),
                "{}: the command alone says what runs",
                c.name
            );
        }
        assert_eq!(
            container(&spec, "install-multus-binary", true)
                .command
                .clone()
                .unwrap(),
            install
        );
        assert_eq!(
            container(&spec, "kube-multus", false)
                .command
                .clone()
                .unwrap(),
            main
        );
    }
    // Each binary the image holds is one the workspace builds.
    for b in IMAGE_BINARIES {
        let name = Path::new(b).file_name().unwrap().to_str().unwrap();
        bins::product(name);
    }
    // The daemon takes `-config` (its file is read, not refused as an unknown argument).
    let missing = tempfile::tempdir()
        .unwrap()
        .path()
        .join("daemon-config.json");
    let out = std::process::Command::new(bins::product("multus-daemon"))
        .arg("-config")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read the daemon configuration"),
        "{stderr}"
    );
}

fn mib(q: &Quantity) -> f64 {
    let s = q.0.as_str();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: f64 = n.parse().unwrap();
    match unit {
        "Mi" => n,
        "Gi" => n * 1024.0,
        other => panic!("memory in Mi or Gi, not {other:?}"),
    }
}

#[test]
fn the_daemonsets_run_on_every_node_with_resources_from_the_measured_figures() {
    let benchmarks =
        std::fs::read_to_string(bins::workspace_root().join("docs/benchmarks.md")).unwrap();
    let manifest = std::fs::read_to_string(deploy_dir().join("daemonset.yaml")).unwrap();
    // The figure the thick manifest quotes is the benchmark's (the thick section's RSS row).
    let row = "| RSS with 1000 pods on the node and 500 NADs in the caches | ";
    let rss = benchmarks
        .split_once(row)
        .and_then(|(_, rest)| rest.split_once(" |"))
        .map(|(figure, _)| figure.to_string())
        .expect("docs/benchmarks.md has the thick section's RSS row");
    assert!(
        manifest.contains(&rss),
        "deploy/daemonset.yaml quotes {rss} (docs/benchmarks.md)"
    );
    let (conf, _) = daemon_config(&thick());
    for (docs, host_pid) in [(thick(), true), (thin(), false)] {
        let ds = daemonset(&docs);
        let spec = pod_spec(&ds);
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(spec.host_pid.unwrap_or(false), host_pid);
        let tolerations = spec.tolerations.clone().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists")
                    && t.key.is_none()
                    && t.effect.is_none()),
            "tolerates every taint: {tolerations:?}"
        );
        assert_eq!(
            spec.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            let r = c.resources.as_ref().unwrap();
            let requests = r.requests.as_ref().unwrap();
            let limits = r.limits.as_ref().unwrap();
            assert!(
                mib(&requests["memory"]) <= mib(&limits["memory"]),
                "{}",
                c.name
            );
            assert!(requests.contains_key("cpu"), "{}", c.name);
        }
        for c in spec.init_containers.iter().flatten() {
            // An init container without limits makes the pod Burstable (reference #1160).
            assert_eq!(
                c.resources.as_ref().unwrap().requests,
                c.resources.as_ref().unwrap().limits
            );
        }
    }
    // The daemon's memory: its own RSS, under the request; with maxConcurrentCalls delegate
    // chains (8.6 MiB each measured, docs/install.md), under the limit with headroom.
    let spec = pod_spec(&daemonset(&thick()));
    let r = container(&spec, "kube-multus", false)
        .resources
        .clone()
        .unwrap();
    let request = mib(&r.requests.unwrap()["memory"]);
    let limit = mib(&r.limits.unwrap()["memory"]);
    let rss_mib: f64 = rss
        .strip_suffix(" MiB")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the RSS row reads \"<n> MiB\": {rss}"));
    let worst = rss_mib + conf.max_concurrent_calls as f64 * 8.6;
    assert!(request >= 2.0 * rss_mib, "{request}");
    assert!(limit >= 2.0 * worst, "{limit} vs {worst}");
    let install_md =
        std::fs::read_to_string(bins::workspace_root().join("docs/install.md")).unwrap();
    assert!(
        install_md.contains("8.6 MiB"),
        "docs/install.md states the delegates' figure"
    );
}

// ---- Probes ----

/// A stand-in daemon socket answering `GET /status` with `status` (the daemon's own wire type).
fn fake_daemon(
    dir: &Path,
    status: multus::daemon::api::DaemonStatus,
) -> std::thread::JoinHandle<()> {
    let listener =
        std::os::unix::net::UnixListener::bind(dir.join(multus::daemon::api::SOCKET_NAME)).unwrap();
    let body = serde_json::to_vec(&status).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            assert!(
                seen.starts_with(b"GET /status "),
                "{}",
                String::from_utf8_lossy(&seen)
            );
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    })
}

/// Runs a probe's command with the product binary and `socket_dir`; its exit code.
fn run_probe(argv: &[String], socket_dir: &Path) -> i32 {
    let binary = bins::product(Path::new(&argv[0]).file_name().unwrap().to_str().unwrap());
    let mut args: Vec<String> = argv[1..].to_vec();
    let i = args.iter().position(|a| a == "--socket-dir").unwrap();
    args[i + 1] = socket_dir.display().to_string();
    let out = std::process::Command::new(binary)
        .args(&args)
        .output()
        .unwrap();
    out.status.code().expect("exit code")
}

#[test]
fn the_probes_tell_a_ready_daemon_from_one_that_is_only_alive() {
    let docs = thick();
    let (conf, _) = daemon_config(&docs);
    let spec = pod_spec(&daemonset(&docs));
    let daemon = container(&spec, "kube-multus", false);
    let exec = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap()
            .command
            .clone()
            .unwrap()
    };
    let (readiness, liveness) = (exec(&daemon.readiness_probe), exec(&daemon.liveness_probe));
    // Both ask the daemon's own socket.
    for argv in [&readiness, &liveness] {
        assert_eq!(Path::new(flag(argv, "--socket-dir")), conf.socket_dir);
    }
    let status = |ready: bool, draining: bool| multus::daemon::api::DaemonStatus {
        version: "test".into(),
        ready,
        draining,
        in_flight: 1,
        waiting: 0,
        kubernetes: true,
        caches: Vec::new(),
        calls: Vec::new(),
        not_ready: Vec::new(),
        degraded: Vec::new(),
    };
    for (ready, draining, want_ready, want_live) in [
        (true, false, 0, 0),
        // Starting (waiting for the primary network, say) or draining after SIGTERM: not ready,
        // but a restart would only make it worse.
        (false, false, 1, 0),
        (false, true, 1, 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_daemon(dir.path(), status(ready, draining));
        assert_eq!(
            run_probe(&readiness, dir.path()),
            want_ready,
            "ready={ready} draining={draining}"
        );
        assert_eq!(
            run_probe(&liveness, dir.path()),
            want_live,
            "ready={ready} draining={draining}"
        );
        server.join().unwrap();
    }
    // Nothing at the socket: neither.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_probe(&readiness, dir.path()), 1);
    assert_eq!(run_probe(&liveness, dir.path()), 1);
}

// ---- Least privilege, proven ----

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const NODE_NAME: &str = "node-1";

fn pod_args(name: &str, uid: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=lp;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID=lp-{name};K8S_POD_UID={uid}"
    )
}

fn create_pod(api: &KubeApiServer, name: &str, node: &str, networks: &str) -> String {
    let obj = api
        .create_pod(
            PodSeed::new("lp", name)
                .node_name(node)
                .annotation(NETWORKS, networks),
        )
        .expect("pod");
    obj["metadata"]["uid"].as_str().unwrap().to_string()
}

fn create_nad(api: &KubeApiServer, node: &Node, name: &str, bridge: &str, subnet: &str) {
    let config = json!({"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": node.ipam_dir()}});
    api.create_nad(NadSeed::new("lp", name, config.to_string()))
        .expect("nad");
}

/// Asserts every request is allowed by `rules` and every verb the rules grant was used; prints
/// which requests justify each grant.
fn assert_least_privilege(mode: &str, rules: &[Rule], requests: &[RecordedRequest]) {
    let mut denied = Vec::new();
    let mut accesses = Vec::new();
    for r in requests {
        match rbac::access_of(r) {
            Some(a) => {
                if !rbac::allowed(rules, &a) {
                    denied.push(format!("{} {}?{} → {a}", r.method, r.path, r.query));
                }
                accesses.push(a);
            }
            None => {
                // Discovery: granted to every authenticated client by system:discovery.
                assert!(r.method == "GET", "{mode}: {r:?}");
            }
        }
    }
    assert!(
        denied.is_empty(),
        "{mode}: requests the ClusterRole does not allow:\n{}",
        denied.join("\n")
    );
    let mut unused = Vec::new();
    for rule in rules {
        for (group, resource, verb) in rule.grants() {
            let narrow = Rule {
                api_groups: vec![group.clone()],
                resources: vec![resource.clone()],
                verbs: vec![verb.clone()],
                resource_names: rule.resource_names.clone(),
            };
            let users: BTreeSet<String> = accesses
                .iter()
                .filter(|a| narrow.allows(a))
                .map(|a| a.to_string())
                .collect();
            if users.is_empty() {
                unused.push(format!("{verb} {group}/{resource}"));
            } else {
                println!("{mode}: {verb} {group:?}/{resource} ← {users:?}");
            }
        }
    }
    assert!(
        unused.is_empty(),
        "{mode}: granted but never used: {unused:?}"
    );
}

#[test]
fn thick_least_privilege_the_daemon_asks_for_exactly_what_its_cluster_role_grants() {
    let rules = cluster_role(&thick());
    let node = Node::new();
    let api = node.api_server();
    let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
    create_nad(&api, &node, "blue", "lpb0", "10.87.1.0/24");
    let uid = create_pod(&api, "web", NODE_NAME, "blue");
    let mut daemon = Daemon::configure(
        &node,
        json!({"kubeconfig": kubeconfig, "apiDeadlineSeconds": 3}),
    );
    daemon
        .env
        .push(("MULTUS_NODE_NAME".into(), NODE_NAME.into()));
    daemon.spawn(&node);
    daemon.wait_ready(Duration::from_secs(10));
    daemon.wait_cache("network-attachment-definitions", 1, Duration::from_secs(15));
    daemon.wait_cache("pods", 1, Duration::from_secs(15));
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![confs::bridge(
            "cluster",
            "lpc0",
            "10.87.0.0/24",
            "1.0.0",
            &node.ipam_dir(),
        )],
    );
    // A pod of this node: ADD (network-status PATCH, AddedInterface events), CHECK, DEL.
    let netns = Netns::new("lpt");
    let add =
        CniCall::new(&node, "ADD", "lp-web", Some(&netns), "eth0").args(&pod_args("web", &uid));
    add.run(&node, &thick::shim(), &conf).ok();
    assert_eq!(
        netns.link_names(),
        vec!["eth0".to_string(), "net1".to_string()]
    );
    let mut check = add.clone();
    check.command = "CHECK".into();
    check.run(&node, &thick::shim(), &conf).assert_ok();
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&netns);
    // A pod the cache does not hold (a static pod bound to another node name) asking for a
    // NAD that does not exist: the pod GET, the NAD GET, the Warning event; then its DEL.
    let other = create_pod(&api, "static", "node-2", "absent");
    let netns = Netns::new("lpt");
    let add = CniCall::new(&node, "ADD", "lp-static", Some(&netns), "eth0")
        .args(&pod_args("static", &other));
    let out = add.run(&node, &thick::shim(), &conf);
    assert!(out.err_msg().contains("absent"), "{}", out.stdout);
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&netns);
    // The daemon sends pod events in the background: wait for them (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = api.list_objects(testkit::kube_api::Resource::Events, Some("lp"));
        let reasons: BTreeSet<String> = events
            .iter()
            .filter_map(|e| e["reason"].as_str().map(String::from))
            .collect();
        if reasons.contains("AddedInterface") && reasons.contains("NoNetworkFound") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{reasons:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_least_privilege("thick", &rules, &api.requests());
}

#[test]
fn thin_least_privilege_multus_asks_for_exactly_what_its_cluster_role_grants() {
    let rules = cluster_role(&thin());
    let node = Node::new();
    let multus = bins::product("multus");
    node.install("multus", &multus);
    let api = node.api_server();
    let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
    create_nad(&api, &node, "blue", "lpb1", "10.88.1.0/24");
    let uid = create_pod(&api, "web", NODE_NAME, "blue");
    let mut conf = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![confs::bridge(
            "cluster",
            "lpc1",
            "10.88.0.0/24",
            "1.0.0",
            &node.ipam_dir(),
        )],
    );
    conf["kubeconfig"] = json!(kubeconfig);
    conf["apiDeadlineSeconds"] = json!(3);
    let netns = Netns::new("lpn");
    let add =
        CniCall::new(&node, "ADD", "lp-web", Some(&netns), "eth0").args(&pod_args("web", &uid));
    add.run(&node, &multus, &conf).ok();
    assert_eq!(
        netns.link_names(),
        vec!["eth0".to_string(), "net1".to_string()]
    );
    let mut check = add.clone();
    check.command = "CHECK".into();
    check.run(&node, &multus, &conf).assert_ok();
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &multus, &conf).assert_ok();
    node.assert_pod_clean(&netns);
    // A NAD that does not exist: the Warning event; then the runtime's DEL.
    let other = create_pod(&api, "lost", NODE_NAME, "absent");
    let netns = Netns::new("lpn");
    let add =
        CniCall::new(&node, "ADD", "lp-lost", Some(&netns), "eth0").args(&pod_args("lost", &other));
    let out = add.run(&node, &multus, &conf);
    assert!(out.err_msg().contains("absent"), "{}", out.stdout);
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &multus, &conf).assert_ok();
    node.assert_pod_clean(&netns);
    assert_least_privilege("thin", &rules, &api.requests());
}
