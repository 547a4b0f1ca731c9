//! The Kubernetes API stand-in against the real clients: the `kube` crate and `kubectl`.
//!
//! Every test starts its own server (own CA, own port), so they run in parallel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, NotUsed, Object, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use testkit::kube_api::{
    Fault, FaultAction, KubeApiServer, KubeconfigAuth, KubeconfigOptions, NadSeed, PodSeed,
    Resource, NETWORK_STATUS_ANNOTATION,
};

const POD_UID: &str = "6a4a8b9e-1f1e-4c1b-9d51-1b2c3d4e5f60";
const MACVLAN: &str = r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.1.1.0/24"}}"#;
const NETWORK_STATUS: &str = r#"[{"name":"cbr0","interface":"eth0","ips":["10.244.1.5"],"mac":"0a:58:0a:f4:01:05","default":true,"dns":{}},{"name":"default/macvlan-conf","interface":"net1","ips":["10.1.1.101"],"mac":"86:1d:96:ff:55:0d","dns":{}}]"#;

/// A server, a temp dir holding its kubeconfig, and the path of that kubeconfig.
struct Fixture {
    server: KubeApiServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

fn fixture() -> Fixture {
    let server = KubeApiServer::start().expect("start the stand-in");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = server
        .write_kubeconfig(dir.path())
        .expect("write kubeconfig");
    server
        .create_pod(
            PodSeed::new("default", "web")
                .uid(POD_UID)
                .node_name("node-1")
                .label("app", "web")
                .annotation("k8s.v1.cni.cncf.io/networks", "macvlan-conf"),
        )
        .expect("seed pod");
    server
        .create_nad(
            NadSeed::new("default", "macvlan-conf", MACVLAN)
                .resource_name("intel.com/sriov_netdevice"),
        )
        .expect("seed nad");
    Fixture {
        server,
        dir,
        kubeconfig,
    }
}

async fn config_for(kubeconfig: &Path) -> Config {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config")
}

/// A client as `kube` builds it by default (which retries 429/503/504 by itself).
async fn client_for(kubeconfig: &Path) -> Client {
    Client::try_from(config_for(kubeconfig).await).expect("kube client")
}

/// A client without kube's built-in retries, so every injected error reaches the caller.
async fn client_no_retry(kubeconfig: &Path) -> Client {
    let mut config = config_for(kubeconfig).await;
    config.default_retry = false;
    Client::try_from(config).expect("kube client")
}

fn nad_resource() -> ApiResource {
    ApiResource {
        group: "k8s.cni.cncf.io".into(),
        version: "v1".into(),
        api_version: "k8s.cni.cncf.io/v1".into(),
        kind: "NetworkAttachmentDefinition".into(),
        plural: "network-attachment-definitions".into(),
    }
}

/// The NAD spec as a typed custom resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct NadSpec {
    #[serde(default)]
    config: String,
}

type Nad = Object<NadSpec, NotUsed>;

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn kubectl(fx: &Fixture, args: &[&str]) -> std::process::Output {
    let cache = fx.dir.path().join("kube-cache");
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&fx.kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--request-timeout=30s")
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", fx.dir.path())
        .output()
        .expect("run kubectl (the Debian/Kubernetes `kubectl` must be installed)")
}

fn kubectl_ok(fx: &Fixture, args: &[&str]) -> String {
    let out = kubectl(fx, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

// ---------------------------------------------------------------------------------------------
// kube crate
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn kube_gets_a_pod_and_patches_it_with_every_patch_type() {
    let fx = fixture();
    let pods: Api<Pod> = Api::namespaced(client_for(&fx.kubeconfig).await, "default");

    let pod = pods.get("web").await.expect("get pod");
    assert_eq!(pod.metadata.uid.as_deref(), Some(POD_UID));
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-1")
    );
    let rv0: u64 = pod
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();

    // Merge patch.
    let merge =
        json!({ "metadata": { "annotations": { NETWORK_STATUS_ANNOTATION: NETWORK_STATUS } } });
    let patched = pods
        .patch("web", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("merge patch");
    let rv1: u64 = patched
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv1 > rv0, "a write bumps resourceVersion");
    assert_eq!(
        fx.server
            .pod_annotation("default", "web", NETWORK_STATUS_ANNOTATION)
            .as_deref(),
        Some(NETWORK_STATUS)
    );
    assert_eq!(
        fx.server
            .pod_annotation("default", "web", "k8s.v1.cni.cncf.io/networks")
            .as_deref(),
        Some("macvlan-conf"),
        "a merge patch keeps the other annotations"
    );

    // Strategic merge patch: map semantics, null deletes one key.
    let strategic = json!({ "metadata": { "annotations": { "example.com/a": "1", "k8s.v1.cni.cncf.io/networks": null } } });
    pods.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(&strategic),
    )
    .await
    .expect("strategic patch");
    let annotations = fx.server.pod_annotations("default", "web").unwrap();
    assert_eq!(
        annotations.get("example.com/a").map(String::as_str),
        Some("1")
    );
    assert!(!annotations.contains_key("k8s.v1.cni.cncf.io/networks"));
    assert!(annotations.contains_key(NETWORK_STATUS_ANNOTATION));

    // JSON patch with an escaped '/' in the key, guarded by a test op.
    let ops: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/metadata/annotations/example.com~1a", "value": "1" },
        { "op": "replace", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1network-status", "value": "[]" },
        { "op": "remove", "path": "/metadata/annotations/example.com~1a" },
    ]))
    .unwrap();
    pods.patch("web", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .expect("json patch");
    let annotations = fx.server.pod_annotations("default", "web").unwrap();
    assert_eq!(
        annotations
            .get(NETWORK_STATUS_ANNOTATION)
            .map(String::as_str),
        Some("[]")
    );
    assert!(!annotations.contains_key("example.com/a"));

    // A failed test op is 422 Invalid and changes nothing.
    let rv_before = fx.server.resource_version();
    let failing: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1network-status", "value": "nope" },
        { "op": "remove", "path": "/metadata/annotations" },
    ]))
    .unwrap();
    let status = api_error(
        pods.patch("web", &PatchParams::default(), &Patch::Json::<()>(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(fx.server.resource_version(), rv_before);
    assert!(fx
        .server
        .pod_annotations("default", "web")
        .unwrap()
        .contains_key(NETWORK_STATUS_ANNOTATION));

    // Server-side apply is not implemented and says so the way a server does.
    let status = api_error(
        pods.patch(
            "web",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({"metadata": {}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 415);
}

#[tokio::test]
async fn kube_replace_and_patch_with_a_stale_resource_version_conflict() {
    let fx = fixture();
    let pods: Api<Pod> = Api::namespaced(client_for(&fx.kubeconfig).await, "default");
    let stale = pods.get("web").await.unwrap();
    let stale_rv = stale.metadata.resource_version.clone().unwrap();

    // Someone else writes the pod meanwhile.
    fx.server
        .set_pod_annotation("default", "web", "example.com/other-writer", Some("yes"))
        .unwrap();

    let mut update = stale.clone();
    update
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(NETWORK_STATUS_ANNOTATION.into(), "[]".into());
    let status = api_error(
        pods.replace("web", &PostParams::default(), &update)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Failure)
    );
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    assert_eq!(
        status.details.as_ref().map(|d| d.name.as_str()),
        Some("web")
    );

    // PATCH carrying the stale resourceVersion conflicts too.
    let patch = json!({ "metadata": { "resourceVersion": stale_rv, "annotations": { "a": "b" } } });
    let status = api_error(
        pods.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409);

    // The usual retry: read again, write again.
    let fresh = pods.get("web").await.unwrap();
    let mut update = fresh.clone();
    update
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(NETWORK_STATUS_ANNOTATION.into(), "[]".into());
    let replaced = pods
        .replace("web", &PostParams::default(), &update)
        .await
        .expect("replace with fresh rv");
    assert_ne!(
        replaced.metadata.resource_version,
        fresh.metadata.resource_version
    );
    let annotations = fx.server.pod_annotations("default", "web").unwrap();
    assert_eq!(
        annotations
            .get("example.com/other-writer")
            .map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        annotations
            .get(NETWORK_STATUS_ANNOTATION)
            .map(String::as_str),
        Some("[]")
    );

    // PUT without a resourceVersion is refused for pods, as by kube-apiserver.
    let mut unconditional = replaced.clone();
    unconditional.metadata.resource_version = None;
    let status = api_error(
        pods.replace("web", &PostParams::default(), &unconditional)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn kube_errors_are_status_objects() {
    let fx = fixture();
    let client = client_for(&fx.kubeconfig).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let status = api_error(pods.get("missing").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, r#"pods "missing" not found"#);
    assert_eq!(pods.get_opt("missing").await.unwrap(), None);

    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &nad_resource());
    let status = api_error(nads.get("missing").await.unwrap_err());
    assert_eq!(
        status.message,
        r#"network-attachment-definitions.k8s.cni.cncf.io "missing" not found"#
    );

    // Creating what exists.
    let existing = pods.get("web").await.unwrap();
    let mut again = existing.clone();
    again.metadata.resource_version = None;
    again.metadata.uid = None;
    let status = api_error(
        pods.create(&PostParams::default(), &again)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    // Bad input is a 4xx Status, never a crash.
    let status = api_error(
        pods.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": 1}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 400);
    let status = api_error(
        pods.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"name": "other"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 400);
    let status = api_error(
        pods.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeName": "elsewhere"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let req = http::Request::get("/api/v1/namespaces/default/secrets")
        .body(Vec::new())
        .unwrap();
    let status = api_error(client.request_text(req).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    let req = http::Request::patch("/api/v1/namespaces/default/pods/web")
        .header("content-type", "application/merge-patch+json")
        .body(b"{not json".to_vec())
        .unwrap();
    assert_eq!(
        api_error(client.request_text(req).await.unwrap_err()).code,
        400
    );

    // /version is served.
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );
}

#[tokio::test]
async fn kube_creates_lists_and_deletes_pods() {
    let fx = fixture();
    fx.server
        .create_pod(
            PodSeed::new("other", "db")
                .node_name("node-2")
                .label("app", "db"),
        )
        .unwrap();
    let client = client_for(&fx.kubeconfig).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let new: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "created", "labels": { "app": "web" }, "uid": "ignored-by-the-server" },
        "spec": { "nodeName": "node-1", "containers": [{ "name": "c", "image": "img" }] },
    }))
    .unwrap();
    let created = pods
        .create(&PostParams::default(), &new)
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().unwrap();
    assert_eq!(uid.len(), 36);
    assert_ne!(
        uid, "ignored-by-the-server",
        "the server sets uid on create"
    );
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(
        created.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );

    let all: Api<Pod> = Api::all(client.clone());
    let names = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect()
    };
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()),
        ["created", "web", "db"]
    );
    assert_eq!(
        names(pods.list(&ListParams::default()).await.unwrap()),
        ["created", "web"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["created", "web"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app in (db)"))
                .await
                .unwrap()
        ),
        ["db"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("spec.nodeName=node-2"))
                .await
                .unwrap()
        ),
        ["db"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("metadata.name=web"))
                .await
                .unwrap()
        ),
        ["web"]
    );
    let page = pods.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let token = page.metadata.continue_.clone().expect("continue token");
    let rest = pods
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest), ["web"]);
    let status = api_error(
        all.list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 400);

    // Delete with a wrong uid precondition conflicts; a plain delete removes the pod.
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        api_error(pods.delete("created", &dp).await.unwrap_err()).code,
        409
    );
    pods.delete("created", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(fx.server.pod("default", "created").is_none());
    assert_eq!(api_error(pods.get("created").await.unwrap_err()).code, 404);

    // dryRun=All validates and answers without storing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut again = new.clone();
    again.metadata.name = Some("dry".into());
    pods.create(&dry, &again).await.expect("dry-run create");
    assert!(fx.server.pod("default", "dry").is_none());

    // Delete a collection by label.
    let other: Api<Pod> = Api::namespaced(client.clone(), "other");
    other
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=db"),
        )
        .await
        .unwrap();
    assert!(fx
        .server
        .list_objects(Resource::Pods, Some("other"))
        .is_empty());
    assert!(fx.server.pod("default", "web").is_some());
}

#[tokio::test]
async fn kube_discovers_and_manages_network_attachment_definitions() {
    let fx = fixture();
    let client = client_for(&fx.kubeconfig).await;

    // Discovery as kube does it: /api, /apis, and each group version's resource list.
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let group = discovery
        .get("k8s.cni.cncf.io")
        .expect("the NAD group is discovered");
    let (ar, caps) = group
        .recommended_kind("NetworkAttachmentDefinition")
        .expect("NAD kind");
    assert_eq!(ar.plural, "network-attachment-definitions");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(discovery.get("").is_some(), "the core group is discovered");

    // DynamicObject.
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let nad = nads.get("macvlan-conf").await.expect("get nad");
    assert_eq!(nad.data["spec"]["config"], MACVLAN);
    assert_eq!(
        nad.metadata.annotations.as_ref().unwrap()["k8s.v1.cni.cncf.io/resourceName"],
        "intel.com/sriov_netdevice"
    );
    let list = nads.list(&ListParams::default()).await.expect("list nads");
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].types.as_ref().unwrap().kind,
        "NetworkAttachmentDefinition"
    );

    // A typed custom resource: create, replace, conflict, delete.
    let typed: Api<Nad> = Api::namespaced_with(client.clone(), "default", &nad_resource());
    let mut fresh = Nad::new(
        "bridge-conf",
        &nad_resource(),
        NadSpec {
            config: r#"{"type":"bridge"}"#.into(),
        },
    );
    fresh.metadata.namespace = Some("default".into());
    let created = typed
        .create(&PostParams::default(), &fresh)
        .await
        .expect("create nad");
    assert_eq!(created.metadata.generation, Some(1));
    let mut changed = created.clone();
    changed.spec.config = r#"{"type":"bridge","bridge":"br1"}"#.into();
    let replaced = typed
        .replace("bridge-conf", &PostParams::default(), &changed)
        .await
        .expect("replace nad");
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(
        api_error(
            typed
                .replace("bridge-conf", &PostParams::default(), &changed)
                .await
                .unwrap_err()
        )
        .code,
        409,
        "replacing with the old resourceVersion conflicts"
    );
    assert_eq!(
        fx.server.nad("default", "bridge-conf").unwrap()["spec"]["config"],
        r#"{"type":"bridge","bridge":"br1"}"#
    );
    // Custom resources take merge and JSON patches, not strategic ones (415 like a real server).
    let status = api_error(
        typed
            .patch(
                "bridge-conf",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    typed
        .patch(
            "bridge-conf",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("merge patch nad");
    // spec.config must be a string (CRD schema).
    let status = api_error(
        typed
            .patch(
                "bridge-conf",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"config": {"type": "x"}}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
    typed
        .delete("bridge-conf", &DeleteParams::default())
        .await
        .expect("delete nad");
    assert!(fx.server.nad("default", "bridge-conf").is_none());
    assert_eq!(
        typed
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn credentials_are_checked() {
    let fx = fixture();
    let wrong = KubeconfigOptions {
        file_name: "wrong".into(),
        auth: KubeconfigAuth::WrongToken,
        ..Default::default()
    };
    let path = fx
        .server
        .write_kubeconfig_with(fx.dir.path(), &wrong)
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client_for(&path).await, "default");
    let status = api_error(pods.get("web").await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));

    let cert = KubeconfigOptions {
        file_name: "cert".into(),
        auth: KubeconfigAuth::ClientCert,
        host: "localhost".into(),
        ..Default::default()
    };
    let path = fx
        .server
        .write_kubeconfig_with(fx.dir.path(), &cert)
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client_for(&path).await, "default");
    pods.get("web")
        .await
        .expect("client certificate auth over https://localhost");
}

/// The kubeconfig carries exactly the credentials asked for, base64-encoded as the `*-data`
/// fields require, and reads back (as `kube` reads it) with the same values.
#[test]
fn kubeconfig_carries_the_credentials_asked_for() {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let fx = fixture();
    let decode =
        |v: &Value| String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap();
    for (auth, keys) in [
        (KubeconfigAuth::Token, &["token"][..]),
        (KubeconfigAuth::WrongToken, &["token"]),
        (
            KubeconfigAuth::ClientCert,
            &["client-certificate-data", "client-key-data"],
        ),
        (
            KubeconfigAuth::TokenAndClientCert,
            &["client-certificate-data", "client-key-data", "token"],
        ),
        (KubeconfigAuth::None, &[]),
    ] {
        let options = KubeconfigOptions {
            auth,
            namespace: "ns1".into(),
            ..Default::default()
        };
        let doc = fx.server.kubeconfig(&options);
        let user = doc["users"][0]["user"].as_object().unwrap();
        let mut names: Vec<&str> = user.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, keys, "{auth:?}");
        if let Some(cert) = user.get("client-certificate-data") {
            assert_eq!(decode(cert), fx.server.client_cert_pem(), "{auth:?}");
            assert_eq!(decode(&user["client-key-data"]), fx.server.client_key_pem());
        }
        let ca = decode(&doc["clusters"][0]["cluster"]["certificate-authority-data"]);
        assert_eq!(ca, fx.server.ca_pem());
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "ns1");
        // what is written is what kube reads
        let path = fx
            .server
            .write_kubeconfig_with(fx.dir.path(), &options)
            .unwrap();
        let kc = Kubeconfig::read_from(&path).expect("kube reads the kubeconfig");
        let written = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            written.token.is_some(),
            user.contains_key("token"),
            "{auth:?}"
        );
        assert_eq!(
            written.client_certificate_data.as_deref(),
            user.get("client-certificate-data").and_then(Value::as_str),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// kubectl
// ---------------------------------------------------------------------------------------------

#[test]
fn kubectl_reads_pods_and_the_network_status_annotation() {
    let fx = fixture();
    fx.server
        .set_pod_annotation(
            "default",
            "web",
            NETWORK_STATUS_ANNOTATION,
            Some(NETWORK_STATUS),
        )
        .unwrap();

    let pod: Value =
        serde_json::from_str(&kubectl_ok(&fx, &["get", "pod", "web", "-o", "json"])).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["uid"], POD_UID);
    assert_eq!(
        pod["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION],
        NETWORK_STATUS
    );

    let status = kubectl_ok(
        &fx,
        &[
            "get",
            "pod",
            "web",
            "-o",
            r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}",
        ],
    );
    assert_eq!(status, NETWORK_STATUS);
    let parsed: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(parsed[1]["interface"], "net1");

    // Default (server-side Table) output and the wide columns.
    let table = kubectl_ok(&fx, &["get", "pods", "-o", "wide"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("STATUS") && header.contains("NODE"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("web")
            && row.contains("1/1")
            && row.contains("Running")
            && row.contains("node-1"),
        "{table}"
    );

    let list: Value =
        serde_json::from_str(&kubectl_ok(&fx, &["get", "pods", "-A", "-o", "json"])).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let name = kubectl_ok(
        &fx,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector",
            "spec.nodeName=node-1",
            "-o",
            "name",
        ],
    );
    assert_eq!(name.trim(), "pod/web");

    let missing = kubectl(&fx, &["get", "pod", "nope"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains(r#"pods "nope" not found"#), "{stderr}");
}

#[test]
fn kubectl_reads_network_attachment_definitions() {
    let fx = fixture();
    fx.server
        .create_nad(NadSeed::new(
            "default",
            "bridge-conf",
            r#"{"type":"bridge"}"#,
        ))
        .unwrap();
    fx.server
        .create_nad(NadSeed::new("kube-system", "cluster-net", ""))
        .unwrap();

    let table = kubectl_ok(&fx, &["get", "network-attachment-definitions"]);
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("NAME") && rows[0].contains("AGE"),
        "{table}"
    );
    assert!(
        rows[1].starts_with("bridge-conf") && rows[2].starts_with("macvlan-conf"),
        "{table}"
    );

    let names = kubectl_ok(&fx, &["get", "net-attach-def", "-A", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "networkattachmentdefinition.k8s.cni.cncf.io/bridge-conf",
            "networkattachmentdefinition.k8s.cni.cncf.io/macvlan-conf",
            "networkattachmentdefinition.k8s.cni.cncf.io/cluster-net",
        ]
    );
    let config = kubectl_ok(
        &fx,
        &[
            "get",
            "network-attachment-definition",
            "macvlan-conf",
            "-o",
            "jsonpath={.spec.config}",
        ],
    );
    assert_eq!(config, MACVLAN);
    let nad: Value = serde_json::from_str(&kubectl_ok(
        &fx,
        &[
            "get",
            "network-attachment-definitions.k8s.cni.cncf.io",
            "cluster-net",
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(nad["apiVersion"], "k8s.cni.cncf.io/v1");
    assert_eq!(nad["spec"], json!({}));

    // kubectl deletes through the same API.
    kubectl_ok(&fx, &["delete", "net-attach-def", "bridge-conf"]);
    assert!(fx.server.nad("default", "bridge-conf").is_none());
}

#[test]
fn kubectl_annotates_a_pod() {
    let fx = fixture();
    kubectl_ok(
        &fx,
        &[
            "annotate",
            "pod",
            "web",
            &format!("{NETWORK_STATUS_ANNOTATION}={NETWORK_STATUS}"),
        ],
    );
    assert_eq!(
        fx.server
            .pod_annotation("default", "web", NETWORK_STATUS_ANNOTATION)
            .as_deref(),
        Some(NETWORK_STATUS)
    );
    assert!(fx
        .server
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path == "/api/v1/namespaces/default/pods/web"));

    // Without --overwrite kubectl refuses to change an existing value (client side).
    assert!(!kubectl(
        &fx,
        &[
            "annotate",
            "pod",
            "web",
            &format!("{NETWORK_STATUS_ANNOTATION}=[]")
        ]
    )
    .status
    .success());
    kubectl_ok(
        &fx,
        &[
            "annotate",
            "--overwrite",
            "pod",
            "web",
            &format!("{NETWORK_STATUS_ANNOTATION}=[]"),
        ],
    );
    assert_eq!(
        fx.server
            .pod_annotation("default", "web", NETWORK_STATUS_ANNOTATION)
            .as_deref(),
        Some("[]")
    );

    // A stale --resource-version is a server-side conflict.
    let out = kubectl(
        &fx,
        &[
            "annotate",
            "--overwrite",
            "--resource-version=1",
            "pod",
            "web",
            "example.com/x=y",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the object has been modified"), "{stderr}");

    kubectl_ok(
        &fx,
        &[
            "annotate",
            "pod",
            "web",
            &format!("{NETWORK_STATUS_ANNOTATION}-"),
        ],
    );
    assert_eq!(
        fx.server
            .pod_annotation("default", "web", NETWORK_STATUS_ANNOTATION),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// faults
// ---------------------------------------------------------------------------------------------

const WEB: &str = "/api/v1/namespaces/default/pods/web";

#[tokio::test]
async fn injected_500s_then_success() {
    let fx = fixture();
    let pods: Api<Pod> = Api::namespaced(client_no_retry(&fx.kubeconfig).await, "default");
    let fault = fx.server.inject(
        Fault::status(500)
            .method("GET")
            .path("/api/v1/namespaces/*/pods/*")
            .times(2),
    );

    let mut failures = Vec::new();
    let pod = loop {
        match pods.get("web").await {
            Ok(pod) => break pod,
            Err(err) => {
                failures.push(api_error(err));
                assert!(
                    failures.len() < 5,
                    "the fault should stop after two requests"
                );
            }
        }
    };
    assert_eq!(pod.metadata.uid.as_deref(), Some(POD_UID));
    assert_eq!(failures.len(), 2);
    assert!(failures
        .iter()
        .all(|s| s.code == 500 && s.reason == "InternalError"));
    assert_eq!(fx.server.fault_hits(fault), 2);
    assert_eq!(fx.server.request_count("GET", WEB), 3);
    let statuses: Vec<u16> = fx
        .server
        .requests()
        .iter()
        .filter(|r| r.path == WEB)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    // Other paths were not affected.
    let nads: Api<DynamicObject> =
        Api::namespaced_with(pods.clone().into_client(), "default", &nad_resource());
    nads.get("macvlan-conf").await.expect("unaffected path");

    // 503 and injected 404/409 read like the real thing.
    fx.server.inject(Fault::status(503).method("GET").times(1));
    assert_eq!(
        api_error(pods.get("web").await.unwrap_err()).reason,
        "ServiceUnavailable"
    );
    fx.server.inject(Fault::status(404).path(WEB).times(1));
    let status = api_error(pods.get("web").await.unwrap_err());
    assert_eq!(
        (status.reason.as_str(), status.message.as_str()),
        ("NotFound", r#"pods "web" not found"#)
    );
    fx.server
        .inject(Fault::status(409).method("PATCH").times(1));
    let merge = json!({ "metadata": { "annotations": { "a": "b" } } });
    let status = api_error(
        pods.patch("web", &PatchParams::default(), &Patch::Merge(&merge))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        fx.server.pod_annotation("default", "web", "a"),
        None,
        "an injected error does not write"
    );
    pods.patch("web", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("then it works");
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let fx = fixture();
    let client = client_no_retry(&fx.kubeconfig).await;
    fx.server
        .inject(Fault::too_many_requests(2).path(WEB).times(1));
    let req = http::Request::get(WEB)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.expect("raw response");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );

    fx.server
        .inject(Fault::too_many_requests(1).path(WEB).times(1));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = api_error(pods.get("web").await.unwrap_err());
    assert_eq!(
        (status.code, status.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(status.details.map(|d| d.retry_after_seconds), Some(1));
    pods.get("web").await.expect("then it works");
}

/// kube's default client retries 429/503/504 by itself and waits out Retry-After: what a
/// plugin with a deadline has to know (or turn off with `Config::default_retry = false`).
#[tokio::test]
async fn kube_default_client_retries_429_and_503_by_itself() {
    let fx = fixture();
    let pods: Api<Pod> = Api::namespaced(client_for(&fx.kubeconfig).await, "default");
    fx.server
        .inject(Fault::too_many_requests(1).path(WEB).times(1));
    fx.server.inject(Fault::status(503).path(WEB).times(2));
    let start = Instant::now();
    pods.get("web")
        .await
        .expect("retried to success inside the client");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        start.elapsed()
    );
    assert_eq!(fx.server.request_count("GET", WEB), 4);
    // 500 is not retried by the client.
    fx.server.inject(Fault::status(500).path(WEB).times(1));
    assert_eq!(api_error(pods.get("web").await.unwrap_err()).code, 500);
    assert_eq!(fx.server.request_count("GET", WEB), 5);
}

#[tokio::test]
async fn outage_refuses_connections_then_recovers_on_the_same_port() {
    let fx = fixture();
    let addr = fx.server.addr();
    let pods: Api<Pod> = Api::namespaced(client_for(&fx.kubeconfig).await, "default");
    pods.get("web").await.expect("up");

    fx.server.begin_outage().unwrap();
    let err = std::net::TcpStream::connect(addr).expect_err("connection refused during the outage");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // The client's pooled connection was closed too: the next request fails, without a Status.
    match pods.get("web").await {
        Err(kube::Error::Api(status)) => panic!("expected a connection error, got {status:?}"),
        Err(_) => {}
        Ok(_) => panic!("a request during the outage succeeded"),
    }
    // The store can still be changed during the outage (a pod deleted meanwhile, say).
    fx.server
        .set_pod_annotation("default", "web", "example.com/during", Some("outage"))
        .unwrap();

    fx.server.end_outage().unwrap();
    assert_eq!(fx.server.addr(), addr);
    let pod = pods.get("web").await.expect("up again");
    assert_eq!(
        pod.metadata.annotations.unwrap()["example.com/during"],
        "outage"
    );

    // Repeatable.
    fx.server.begin_outage().unwrap();
    fx.server.begin_outage().unwrap();
    assert!(pods.get("web").await.is_err());
    fx.server.end_outage().unwrap();
    fx.server.end_outage().unwrap();
    pods.get("web").await.expect("up a second time");
}

#[tokio::test]
async fn latency_and_dropped_connections() {
    let fx = fixture();
    let pods: Api<Pod> = Api::namespaced(client_for(&fx.kubeconfig).await, "default");
    pods.get("web").await.unwrap();

    fx.server.set_latency(Duration::from_millis(300));
    let start = Instant::now();
    pods.get("web").await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    fx.server.set_latency(Duration::ZERO);

    let slow = fx
        .server
        .inject(Fault::delay(Duration::from_millis(250)).method("PATCH"));
    pods.get("web").await.unwrap();
    assert_eq!(fx.server.fault_hits(slow), 0, "GET is not delayed");
    let start = Instant::now();
    pods.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"l": "1"}}})),
    )
    .await
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert_eq!(fx.server.fault_hits(slow), 1);
    assert!(fx.server.remove_fault(slow));

    // A delay combines with a later error fault.
    fx.server
        .inject(Fault::delay(Duration::from_millis(100)).path(WEB).times(1));
    fx.server.inject(Fault::status(500).path(WEB).times(1));
    let start = Instant::now();
    assert_eq!(api_error(pods.get("web").await.unwrap_err()).code, 500);
    assert!(start.elapsed() >= Duration::from_millis(100));

    fx.server
        .inject(Fault::new(FaultAction::DropConnection).path(WEB).times(1));
    match pods.get("web").await {
        Err(kube::Error::Api(status)) => panic!("expected a transport error, got {status:?}"),
        Err(_) => {}
        Ok(_) => panic!("a dropped connection returned a pod"),
    }
    pods.get("web")
        .await
        .expect("the next request gets through");
    fx.server.clear_faults();
}

#[test]
fn starts_in_a_plain_test_and_stops_on_drop() {
    let fx = fixture();
    let addr = fx.server.addr();
    let out = kubectl_ok(&fx, &["get", "pods", "-o", "name"]);
    assert_eq!(out.trim(), "pod/web");
    assert!(
        fx.server
            .request_count("GET", "/api/v1/namespaces/default/pods")
            >= 1
    );
    drop(fx);
    let err = std::net::TcpStream::connect(addr).expect_err("stopped");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    // A stopped server is gone with its thread; a new one gets its own CA and port.
    let a = KubeApiServer::start().unwrap();
    let b = KubeApiServer::start().unwrap();
    assert_ne!(a.addr(), b.addr());
    assert_ne!(a.ca_pem(), b.ca_pem());
    a.stop();
    b.create_object(Resource::Events, json!({
        "metadata": { "name": "web.1", "namespace": "default" },
        "involvedObject": { "kind": "Pod", "name": "web", "namespace": "default" },
        "reason": "AddedInterface", "message": "Add net1 [10.1.1.101/24] from default/macvlan-conf",
    }))
    .unwrap();
    assert_eq!(b.list_objects(Resource::Events, None).len(), 1);
}

#[tokio::test]
async fn twenty_clients_patch_one_pod_with_conflict_retries() {
    let fx = fixture();
    let client = client_for(&fx.kubeconfig).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            loop {
                let mut pod = pods.get("web").await.unwrap();
                pod.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(format!("example.com/writer-{i}"), "done".into());
                match pods.replace("web", &PostParams::default(), &pod).await {
                    Ok(_) => return conflicts,
                    Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let annotations = fx.server.pod_annotations("default", "web").unwrap();
    for i in 0..20 {
        assert_eq!(
            annotations
                .get(&format!("example.com/writer-{i}"))
                .map(String::as_str),
            Some("done")
        );
    }
    assert_eq!(fx.server.request_count("PUT", WEB), 20 + conflicts);
}

#[tokio::test]
async fn faults_that_change_the_store_give_genuine_404_and_409() {
    let fx = fixture();
    let pods: Api<Pod> = Api::namespaced(client_no_retry(&fx.kubeconfig).await, "default");

    // Another writer slips in before our PUT: a real conflict, then the re-read succeeds.
    fx.server.inject(
        Fault::bump_resource_version()
            .method("PUT")
            .path(WEB)
            .times(1),
    );
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut pod = pods.get("web").await.unwrap();
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert(NETWORK_STATUS_ANNOTATION.into(), "[]".into());
        match pods.replace("web", &PostParams::default(), &pod).await {
            Ok(_) => break,
            Err(err) => assert_eq!(api_error(err).reason, "Conflict"),
        }
        assert!(attempts < 5);
    }
    assert_eq!(attempts, 2);
    assert_eq!(
        fx.server
            .pod_annotation("default", "web", NETWORK_STATUS_ANNOTATION)
            .as_deref(),
        Some("[]")
    );

    // The pod is deleted just before the network-status PATCH arrives.
    fx.server
        .inject(Fault::delete_target().method("PATCH").path(WEB).times(1));
    let patch =
        json!({ "metadata": { "annotations": { NETWORK_STATUS_ANNOTATION: NETWORK_STATUS } } });
    let status = api_error(
        pods.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.message.as_str()),
        (404, r#"pods "web" not found"#)
    );
    assert!(fx.server.pod("default", "web").is_none());
}

#[test]
fn the_request_log_is_capped_but_counts_stay_exact() {
    let server = KubeApiServer::start_with(testkit::kube_api::ServerOptions {
        max_recorded_requests: 3,
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture {
        kubeconfig: server.write_kubeconfig(dir.path()).unwrap(),
        server,
        dir,
    };
    for _ in 0..3 {
        kubectl_ok(&fx, &["get", "pods", "-o", "name"]);
    }
    let total = fx.server.request_count("*", "/**");
    assert!(total > 3, "{total}");
    assert_eq!(fx.server.requests().len(), 3);
    assert_eq!(
        fx.server
            .request_count("GET", "/api/v1/namespaces/default/pods"),
        3
    );
    assert_eq!(
        fx.server.request_counts()["GET /api/v1/namespaces/default/pods"],
        3
    );
    assert!(fx.server.requests().iter().all(|r| r.status == 200));
    fx.server.reset_requests();
    assert_eq!(fx.server.request_count("*", "/**"), 0);
    assert!(fx.server.requests().is_empty());
}

#[tokio::test]
async fn kube_watches_pods_with_kubernetes_semantics_and_410_after_compaction() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};
    let fx = fixture();
    let pods: Api<Pod> = Api::all(client_for(&fx.kubeconfig).await);
    let params = WatchParams::default()
        .fields("spec.nodeName=node-1")
        .timeout(10);
    // From "0": the current objects first, as ADDED.
    let mut stream = pods.watch(&params, "0").await.expect("watch").boxed();
    let first = stream.try_next().await.expect("event").expect("some");
    let WatchEvent::Added(pod) = first else {
        panic!("{first:?}")
    };
    assert_eq!(pod.metadata.name.as_deref(), Some("web"));
    let rv = pod.metadata.resource_version.clone().unwrap();
    // Then writes as they happen; another node's pod does not match the field selector.
    fx.server
        .create_pod(PodSeed::new("default", "other").node_name("node-2"))
        .unwrap();
    fx.server
        .create_pod(PodSeed::new("default", "mine").node_name("node-1"))
        .unwrap();
    fx.server.delete_pod("default", "mine");
    let next = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("in time")
        .expect("event")
        .expect("some");
    assert!(
        matches!(&next, WatchEvent::Added(p) if p.metadata.name.as_deref() == Some("mine")),
        "{next:?}"
    );
    let next = stream.try_next().await.expect("event").expect("some");
    assert!(
        matches!(&next, WatchEvent::Deleted(p) if p.metadata.name.as_deref() == Some("mine")),
        "{next:?}"
    );
    // Resuming from a resourceVersion the server no longer has: 410 Expired, then the end.
    fx.server.compact_watch_history();
    let mut stale = pods.watch(&params, &rv).await.expect("watch").boxed();
    let e = stale.try_next().await.expect("event").expect("some");
    assert!(matches!(&e, WatchEvent::Error(s) if s.code == 410), "{e:?}");
    assert!(
        stale.next().await.is_none(),
        "the stream ends after the error"
    );
}

/// A kube client that authenticates with `cert_pem`/`key_pem` alone, to `fx`'s server.
async fn client_with_cert(fx: &Fixture, cert_pem: &str, key_pem: &str) -> Client {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut config = config_for(&fx.kubeconfig).await;
    config.auth_info = kube::config::AuthInfo {
        client_certificate_data: Some(b64(cert_pem)),
        client_key_data: Some(b64(key_pem).into()),
        ..Default::default()
    };
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn certificate_signing_requests_are_watched_approved_signed_and_their_certificates_authenticate(
) {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestSpec,
    };
    use kube::api::{WatchEvent, WatchParams};
    let fx = fixture();
    fx.server.set_csr_auto_approve(false);
    fx.server
        .set_csr_signing_duration(Some(Duration::from_secs(2)));
    let client = client_for(&fx.kubeconfig).await;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:multus:n1");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:multus");
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some("csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: k8s_openapi::ByteString(request.into_bytes()),
            signer_name: "kubernetes.io/kube-apiserver-client".into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds: Some(600),
            ..Default::default()
        },
        status: None,
    };
    let made = csrs.create(&PostParams::default(), &csr).await.unwrap();
    let name = made.metadata.name.clone().unwrap();
    assert!(name.starts_with("csr-"), "{name}");
    assert_eq!(
        made.spec.username.as_deref(),
        Some("system:serviceaccount:standin:token")
    );
    let rv = made.metadata.resource_version.clone().unwrap();
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let mut events = csrs.watch(&params, &rv).await.unwrap().boxed();
    fx.server.approve_csr(&name).unwrap();
    let signed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Modified(c) = event {
                if let Some(cert) = c.status.and_then(|s| s.certificate) {
                    return String::from_utf8(cert.0).unwrap();
                }
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("a MODIFIED event with the certificate");
    assert!(signed.starts_with("-----BEGIN CERTIFICATE-----"));
    // The certificate authenticates as its CN with its O as groups, until it expires (2 s, the
    // cap), also on a connection opened while it was valid.
    let by_cert = client_with_cert(&fx, &signed, &key.serialize_pem()).await;
    let pods: Api<Pod> = Api::namespaced(by_cert, "default");
    pods.list(&ListParams::default())
        .await
        .expect("authenticated");
    let who = fx.server.authentications().pop().unwrap().who;
    assert_eq!(
        (who.user.as_str(), who.groups, who.via),
        (
            "system:multus:n1",
            vec!["system:multus".to_string()],
            "client-certificate"
        )
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // On the pooled connection the request is refused (401); a new connection would fail its
    // handshake instead, as kube-apiserver's would.
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401),
        Err(_) => {}
        Ok(_) => panic!("an expired client certificate was accepted"),
    }
    // Denied: the condition, and no certificate.
    let other = csrs.create(&PostParams::default(), &csr).await.unwrap();
    let other_name = other.metadata.name.unwrap();
    fx.server.deny_csr(&other_name, "not this one").unwrap();
    let denied = csrs.get(&other_name).await.unwrap().status.unwrap();
    assert!(denied.certificate.is_none());
    assert_eq!(denied.conditions.unwrap()[0].type_, "Denied");
}
