//! Kubernetes: pod identity from CNI_ARGS, the API client, the NPWG annotations, resolution of
//! NetworkAttachmentDefinitions and on-disk networks, the network-status annotation, pod events.
//! Kubelet devices are in [`crate::devices`].

pub mod annotations;
pub mod client;
pub mod events;
pub mod resolve;
pub mod status;

use crate::cni::CniArgs;

/// The pod a CNI call is for, from CNI_ARGS: namespace and name (for the API and the kubelet), UID
/// (to detect a recreated pod, and to find its devices in the kubelet's checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`; empty when the runtime did not pass one.
    pub uid: String,
}

impl std::fmt::Display for PodIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.uid.is_empty() {
            write!(f, " (uid {})", self.uid)?;
        }
        Ok(())
    }
}

impl PodIdentity {
    /// The identity, when the runtime passed namespace and name.
    pub fn from_args(args: &CniArgs) -> Option<PodIdentity> {
        let namespace = args.get("K8S_POD_NAMESPACE").filter(|s| !s.is_empty())?;
        let name = args.get("K8S_POD_NAME").filter(|s| !s.is_empty())?;
        Some(PodIdentity {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: args.get("K8S_POD_UID").unwrap_or_default().to_string(),
        })
    }
}

/// Whether a pod is a static pod (its mirror pod's UID differs from the kubelet's).
pub fn is_static_pod(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    annotations.is_some_and(|a| {
        a.contains_key("kubernetes.io/config.mirror")
            || a.get("kubernetes.io/config.source")
                .is_some_and(|s| s != "api")
    })
}
