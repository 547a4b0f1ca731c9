//! What the Kubernetes API says of the pods, when a kubeconfig is configured: never required, and
//! bounded by one deadline for the whole command (`--api-timeout`). Without a kubeconfig nothing
//! here runs and every `api` field is `null`.

use std::{collections::HashMap, time::Instant};

use serde::Serialize;

use crate::kube::client::KubeClient;

use super::{model::PodView, Node};

/// What the API says of a pod.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiPod {
    /// `found`, `notFound` or `error`.
    pub status: &'static str,
    /// The pod's UID now.
    pub uid: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// Whether this sandbox belongs to the pod that exists now (its recorded UID is the pod's; `null`
    /// when no UID was recorded or the pod was not found).
    pub current: Option<bool>,
    /// Why the API could not answer.
    pub error: Option<String>,
}

/// A Kubernetes client for one multusctl command, with answers remembered per pod.
pub struct Api {
    client: KubeClient,
    deadline: Instant,
    seen: HashMap<(String, String), ApiPod>,
}

impl Api {
    /// Connects when the node has a kubeconfig; on failure warns and returns `None`.
    pub fn connect(node: &Node) -> Option<Api> {
        let path = node.kubeconfig.as_deref()?;
        match KubeClient::connect(Some(path)) {
            Ok(Some(client)) => Some(Api {
                client,
                deadline: Instant::now() + node.api_timeout,
                seen: HashMap::new(),
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("not using the Kubernetes API: {e}");
                eprintln!("multusctl: warning: not using the Kubernetes API: {e}");
                None
            }
        }
    }

    /// What the API says of `namespace/name`, compared with the UID recorded at ADD.
    pub fn pod(&mut self, pod: &PodView) -> ApiPod {
        let key = (pod.namespace.clone(), pod.name.clone());
        let mut answer = match self.seen.get(&key) {
            Some(a) => a.clone(),
            None => {
                let a = self.fetch(&pod.namespace, &pod.name);
                self.seen.insert(key, a.clone());
                a
            }
        };
        answer.current = match (&answer.uid, &pod.uid) {
            (Some(now), Some(recorded)) if answer.status == "found" => Some(now == recorded),
            _ => None,
        };
        answer
    }

    fn fetch(&self, namespace: &str, name: &str) -> ApiPod {
        let none = |status, error| ApiPod {
            status,
            uid: None,
            phase: None,
            node_name: None,
            current: None,
            error,
        };
        match self.client.get_pod(namespace, name, self.deadline) {
            Ok(None) => none("notFound", None),
            Err(e) => none("error", Some(e.to_string())),
            Ok(Some(p)) => ApiPod {
                status: "found",
                uid: p.metadata.uid.clone(),
                phase: p.status.as_ref().and_then(|s| s.phase.clone()),
                node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
                current: None,
                error: None,
            },
        }
    }
}
