//! Finding networks by reference: NetworkAttachmentDefinitions (spec.config, or the on-disk conf
//! of the same name when empty, with the NAD name injected), and `clusterNetwork` /
//! `defaultNetworks` values, resolved in the reference's order: a NAD in `multusNamespace`, a conf
//! with that name in `confDir`, a directory (its alphabetically first conf), a file.

use std::{
    cell::OnceCell,
    path::{Path, PathBuf},
    time::Instant,
};

use serde_json::Value;

use kube::api::DynamicObject;

use super::client::{KubeClient, KubeError};
use crate::{
    config::{ConfigError, MultusConf, NetworkConfig},
    explain::quote,
};

/// The NAD annotation naming the device-plugin resource of an attachment.
pub const RESOURCE_NAME: &str = "k8s.v1.cni.cncf.io/resourceName";

/// A network ready to attach.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedNetwork {
    /// Name for network-status (`namespace/name` for a NAD).
    pub status_name: String,
    /// The configuration.
    pub network: NetworkConfig,
    /// Device-plugin resource of the NAD, if any.
    pub resource_name: Option<String>,
}

/// Why a network could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The API failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// No such NAD.
    #[error("network-attachment-definition {0}/{1} not found")]
    NadNotFound(String, String),
    /// A NAD whose config is unusable.
    #[error("network-attachment-definition {namespace}/{name}: {reason}")]
    BadNad {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A NAD was needed but there is no API access.
    #[error("network {} is a NetworkAttachmentDefinition, but multus has no Kubernetes API access (set \"kubeconfig\")", quote(.0))]
    NoApi(String),
    /// A clusterNetwork/defaultNetworks reference matched nothing.
    #[error("network {} not found: no NetworkAttachmentDefinition {namespace}/{reference}, no network of that name in {}, and no such file or directory", quote(.reference), .conf_dir.display())]
    NotFound {
        /// The reference.
        reference: String,
        /// Namespace searched.
        namespace: String,
        /// confDir searched.
        conf_dir: PathBuf,
    },
    /// Namespace isolation forbids the reference.
    #[error("namespace isolation: pods in namespace {pod_namespace:?} may only use networks of their own namespace or of {allowed:?}, not {namespace}/{name}")]
    Isolation {
        /// The pod's namespace.
        pod_namespace: String,
        /// The NAD's namespace.
        namespace: String,
        /// The NAD's name.
        name: String,
        /// Global namespaces.
        allowed: Vec<String>,
    },
    /// A configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Resolves networks for one call.
pub struct Resolver<'a> {
    /// The multus configuration.
    pub conf: &'a MultusConf,
    /// API access, if any.
    pub kube: Option<&'a KubeClient>,
    /// Deadline for API calls.
    pub deadline: Instant,
    /// The readable networks of `confDir`, read at the first lookup by name (one call may look up
    /// several: clusterNetwork, defaultNetworks, NADs with an empty config).
    conf_dir_networks: OnceCell<Vec<NetworkConfig>>,
}

impl<'a> Resolver<'a> {
    /// A resolver for one call.
    pub fn new(conf: &'a MultusConf, kube: Option<&'a KubeClient>, deadline: Instant) -> Self {
        Self {
            conf,
            kube,
            deadline,
            conf_dir_networks: OnceCell::new(),
        }
    }

    /// A NAD by namespace and name.
    pub fn nad(&self, namespace: &str, name: &str) -> Result<ResolvedNetwork, ResolveError> {
        let kube = self
            .kube
            .ok_or_else(|| ResolveError::NoApi(format!("{namespace}/{name}")))?;
        let nad = kube
            .get_nad(namespace, name, self.deadline)?
            .ok_or_else(|| ResolveError::NadNotFound(namespace.to_string(), name.to_string()))?;
        self.network_of_nad(namespace, name, &nad)
    }

    /// The network of a NAD already read from the API (or a watch cache).
    pub fn network_of_nad(
        &self,
        namespace: &str,
        name: &str,
        nad: &DynamicObject,
    ) -> Result<ResolvedNetwork, ResolveError> {
        let bad = |reason: String| ResolveError::BadNad {
            namespace: namespace.into(),
            name: name.into(),
            reason,
        };
        let config = match nad.data.get("spec").and_then(|s| s.get("config")) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(bad(format!("spec.config must be a string, not {other}"))),
        };
        let mut network = if config.trim().is_empty() {
            self.conf_by_name(name)?.ok_or_else(|| {
                bad(format!(
                    "spec.config is empty and {} has no network named {}",
                    self.conf.conf_dir.display(),
                    quote(name)
                ))
            })?
        } else {
            NetworkConfig::from_bytes(
                config.as_bytes(),
                &format!("network-attachment-definition {namespace}/{name}"),
            )
            .map_err(|e| bad(e.to_string()))?
        };
        if network.name().is_none_or(str::is_empty) {
            network.set_name(name);
        }
        let resource_name = nad
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_NAME))
            .filter(|r| !r.is_empty())
            .cloned();
        Ok(ResolvedNetwork {
            status_name: format!("{namespace}/{name}"),
            network,
            resource_name,
        })
    }

    /// A `clusterNetwork` / `defaultNetworks` / default-network reference.
    pub fn reference(&self, reference: &str) -> Result<ResolvedNetwork, ResolveError> {
        let path = Path::new(reference);
        if path.is_absolute() {
            return self.by_path(reference, path);
        }
        let (namespace, name) = match reference.split_once('/') {
            Some((ns, n)) => (ns.to_string(), n.to_string()),
            None => (self.conf.multus_namespace.clone(), reference.to_string()),
        };
        if let Some(kube) = self.kube {
            if let Some(nad) = kube.get_nad(&namespace, &name, self.deadline)? {
                return self.network_of_nad(&namespace, &name, &nad);
            }
        }
        if let Some(network) = self.conf_by_name(&name)? {
            let status_name = network.name().unwrap_or(&name).to_string();
            return Ok(ResolvedNetwork {
                status_name,
                network,
                resource_name: None,
            });
        }
        Err(ResolveError::NotFound {
            reference: reference.into(),
            namespace,
            conf_dir: self.conf.conf_dir.clone(),
        })
    }

    fn by_path(&self, reference: &str, path: &Path) -> Result<ResolvedNetwork, ResolveError> {
        let file = if path.is_dir() {
            conf_files(path)?
                .into_iter()
                .next()
                .ok_or_else(|| ResolveError::NotFound {
                    reference: reference.into(),
                    namespace: self.conf.multus_namespace.clone(),
                    conf_dir: path.to_path_buf(),
                })?
        } else if path.is_file() {
            path.to_path_buf()
        } else {
            return Err(ResolveError::NotFound {
                reference: reference.into(),
                namespace: self.conf.multus_namespace.clone(),
                conf_dir: self.conf.conf_dir.clone(),
            });
        };
        let network = load_file(&file)?;
        let status_name = network
            .name()
            .map(String::from)
            .unwrap_or_else(|| reference.to_string());
        Ok(ResolvedNetwork {
            status_name,
            network,
            resource_name: None,
        })
    }

    /// The conf in `confDir` whose `name` is `name` (the alphabetically first file, if several).
    pub fn conf_by_name(&self, name: &str) -> Result<Option<NetworkConfig>, ResolveError> {
        let networks = match self.conf_dir_networks.get() {
            Some(networks) => networks,
            None => {
                let mut networks = Vec::new();
                for file in conf_files(&self.conf.conf_dir)? {
                    match load_file(&file) {
                        Ok(network) => networks.push(network),
                        Err(_) => tracing::warn!(
                            "skipping unreadable network configuration {}",
                            file.display()
                        ),
                    }
                }
                self.conf_dir_networks.get_or_init(|| networks)
            }
        };
        Ok(networks.iter().find(|n| n.name() == Some(name)).cloned())
    }
}

/// `*.conf`, `*.conflist` and `*.json` files of a directory, alphabetically.
fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, ResolveError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ResolveError::Io(dir.to_path_buf(), e)),
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist" | "json")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn load_file(path: &Path) -> Result<NetworkConfig, ResolveError> {
    let bytes = std::fs::read(path).map_err(|e| ResolveError::Io(path.to_path_buf(), e))?;
    Ok(NetworkConfig::from_bytes(
        &bytes,
        &path.display().to_string(),
    )?)
}

/// Checks namespace isolation for a pod in `pod_namespace` using a NAD in `namespace`.
pub fn check_isolation(
    conf: &MultusConf,
    pod_namespace: &str,
    namespace: &str,
    name: &str,
) -> Result<(), ResolveError> {
    if !conf.namespace_isolation || namespace == pod_namespace {
        return Ok(());
    }
    let allowed = conf.global_namespace_list();
    if allowed.iter().any(|g| g == namespace) {
        return Ok(());
    }
    Err(ResolveError::Isolation {
        pod_namespace: pod_namespace.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        allowed,
    })
}
