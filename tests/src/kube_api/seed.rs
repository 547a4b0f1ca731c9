//! Builders for the objects tests seed: pods and NetworkAttachmentDefinitions.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The NAD annotation that names a device-plugin resource.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// A pod to seed: namespace, name, uid, annotations, labels, node.
///
/// ```
/// use testkit::kube_api::PodSeed;
/// let pod = PodSeed::new("default", "web")
///     .uid("9b2a6e5c-0000-4000-8000-000000000001")
///     .annotation("k8s.v1.cni.cncf.io/networks", "macvlan-conf")
///     .node_name("node-1");
/// assert_eq!(pod.to_object()["spec"]["nodeName"], "node-1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PodSeed {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// metadata.uid; a random one when `None`.
    pub uid: Option<String>,
    /// metadata.annotations.
    pub annotations: BTreeMap<String, String>,
    /// metadata.labels.
    pub labels: BTreeMap<String, String>,
    /// spec.nodeName.
    pub node_name: Option<String>,
    /// status.phase (default "Running").
    pub phase: String,
    /// status.podIP, if any.
    pub pod_ip: Option<String>,
}

impl PodSeed {
    /// A running pod with one container and no annotations.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: None,
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            node_name: None,
            phase: "Running".to_string(),
            pod_ip: None,
        }
    }

    /// Sets metadata.uid (what CNI_ARGS K8S_POD_UID must match).
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_string());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets spec.nodeName.
    pub fn node_name(mut self, node: &str) -> Self {
        self.node_name = Some(node.to_string());
        self
    }

    /// Sets status.phase.
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.to_string();
        self
    }

    /// Sets status.podIP (and status.podIPs).
    pub fn pod_ip(mut self, ip: &str) -> Self {
        self.pod_ip = Some(ip.to_string());
        self
    }

    /// The pod as Kubernetes JSON (system fields other than a given uid are filled in by the store).
    pub fn to_object(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(self.name));
        metadata.insert("namespace".into(), json!(self.namespace));
        if let Some(uid) = &self.uid {
            metadata.insert("uid".into(), json!(uid));
        }
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), json!(self.labels));
        }
        if !self.annotations.is_empty() {
            metadata.insert("annotations".into(), json!(self.annotations));
        }
        let mut spec = json!({
            "containers": [{ "name": "app", "image": "registry.invalid/app:latest" }],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
        });
        if let Some(node) = &self.node_name {
            spec["nodeName"] = json!(node);
        }
        let mut status = json!({ "phase": self.phase, "qosClass": "BestEffort" });
        if self.phase == "Running" {
            status["containerStatuses"] = json!([{
                "name": "app",
                "image": "registry.invalid/app:latest",
                "imageID": "",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "state": { "running": {} },
            }]);
        }
        if let Some(ip) = &self.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{ "ip": ip }]);
        }
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status })
    }
}

/// A NetworkAttachmentDefinition to seed.
///
/// ```
/// use testkit::kube_api::NadSeed;
/// let nad = NadSeed::new("default", "macvlan-conf", r#"{"cniVersion":"1.0.0","type":"macvlan"}"#)
///     .resource_name("intel.com/sriov");
/// assert_eq!(nad.to_object()["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"], "intel.com/sriov");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NadSeed {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// spec.config: the CNI configuration as a JSON string (may be empty).
    pub config: String,
    /// metadata.annotations.
    pub annotations: BTreeMap<String, String>,
}

impl NadSeed {
    /// A NAD whose spec.config is `config`.
    pub fn new(namespace: &str, name: &str, config: impl Into<String>) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            config: config.into(),
            annotations: BTreeMap::new(),
        }
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets `k8s.v1.cni.cncf.io/resourceName`.
    pub fn resource_name(self, resource: &str) -> Self {
        self.annotation(RESOURCE_NAME_ANNOTATION, resource)
    }

    /// The NAD as Kubernetes JSON. An empty config is stored as an absent spec.config, as
    /// `kubectl create` of a NAD without config would.
    pub fn to_object(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(self.name));
        metadata.insert("namespace".into(), json!(self.namespace));
        if !self.annotations.is_empty() {
            metadata.insert("annotations".into(), json!(self.annotations));
        }
        let spec = if self.config.is_empty() {
            json!({})
        } else {
            json!({ "config": self.config })
        };
        json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": metadata,
            "spec": spec,
        })
    }
}
