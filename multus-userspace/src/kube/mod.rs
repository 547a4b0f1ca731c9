//! Kubernetes: pod identity from CNI_ARGS, the API client, the NPWG annotations, resolution of
//! NetworkAttachmentDefinitions and on-disk networks, the network-status annotation, pod events,
//! the daemon's per-node client certificate.
//! Kubelet devices are in [`crate::devices`].

pub mod annotations;
pub mod client;
pub mod events;
pub mod node_cert;
pub mod resolve;
pub mod status;

pub use crate::cni::PodIdentity;

/// Whether a pod is a static pod (its mirror pod's UID differs from the kubelet's).
pub fn is_static_pod(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    annotations.is_some_and(|a| {
        a.contains_key("kubernetes.io/config.mirror")
            || a.get("kubernetes.io/config.source")
                .is_some_and(|s| s != "api")
    })
}
