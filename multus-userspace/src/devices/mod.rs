//! Kubelet devices: what a NetworkAttachmentDefinition annotated with
//! `k8s.v1.cni.cncf.io/resourceName` turns into for its delegate.
//!
//! - [`DeviceSource`] finds the device IDs allocated to a pod, per resource name, from two
//!   sources in this order: the kubelet's PodResources API v1 ([`podresources`], gRPC over HTTP/2
//!   on a unix socket, messages in [`proto`]), then the kubelet device manager's checkpoint file
//!   ([`checkpoint`]) when the socket is absent or the kubelet does not answer within
//!   [`DeviceSource::timeout`];
//! - [`inject`] gives each attachment its device: `deviceID`/`pciBusID` in its configuration and
//!   runtimeConfig `deviceID`;
//! - [`devinfo`] handles the NPWG device-info files a device plugin and a delegate fill.

pub mod checkpoint;
pub mod devinfo;
pub mod inject;
pub mod podresources;
pub mod proto;

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

pub use checkpoint::{CheckpointError, DEFAULT_CHECKPOINT};
pub use podresources::{KubeletError, DEFAULT_SOCKET};

/// The pod whose devices are wanted: namespace and name for the kubelet API, UID for the
/// checkpoint file (an empty UID cannot match the checkpoint).
pub use crate::kube::PodIdentity;

/// The default bound on the whole kubelet exchange (the reference uses the same).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which source answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The kubelet PodResources API.
    Kubelet,
    /// The device manager's checkpoint file.
    Checkpoint,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Kubelet => "kubelet PodResources API",
            Source::Checkpoint => "device-manager checkpoint",
        })
    }
}

/// Failures of [`DeviceSource`].
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The pod identity is unusable (empty namespace or name, or characters kubelet never uses).
    #[error("invalid pod identity: {0}")]
    InvalidPod(String),
    /// The resource name is empty.
    #[error("invalid resource name {0:?}")]
    InvalidResource(String),
    /// Neither source could answer.
    #[error(transparent)]
    Unavailable(Box<Unanswered>),
    /// A source answered, and the pod has no device of the resource.
    #[error(
        "pod {pod} has no device of resource {resource:?} allocated (according to the {from})"
    )]
    NotAllocated {
        /// The pod.
        pod: String,
        /// The resource name asked for.
        resource: String,
        /// The source that answered.
        from: Source,
    },
}

/// Why neither the kubelet nor the checkpoint answered (boxed in [`DeviceError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "no source of device IDs answered for pod {pod}: kubelet PodResources API ({}): {kubelet}; \
     device-manager checkpoint ({}): {checkpoint}",
    socket.display(),
    checkpoint_path.display()
)]
pub struct Unanswered {
    /// The pod.
    pub pod: String,
    /// The kubelet socket tried.
    pub socket: PathBuf,
    /// Why the kubelet did not answer.
    pub kubelet: KubeletError,
    /// The checkpoint file tried.
    pub checkpoint_path: PathBuf,
    /// Why the checkpoint did not answer.
    pub checkpoint: CheckpointError,
}

/// All device IDs allocated to one pod (every container), per resource name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDevices {
    /// The source that answered.
    pub source: Source,
    /// Resource name → device IDs, in the order the source listed them, without duplicates.
    pub resources: BTreeMap<String, Vec<String>>,
}

impl PodDevices {
    /// The device IDs of `resource` (empty when none).
    pub fn ids(&self, resource: &str) -> &[String] {
        self.resources
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Hands out the next unused device ID of `resource`: several networks of one pod that name
    /// the same resource get distinct devices, in order, as in the reference.
    pub fn take_next(&mut self, resource: &str) -> Option<String> {
        let ids = self.resources.get_mut(resource)?;
        if ids.is_empty() {
            None
        } else {
            Some(ids.remove(0))
        }
    }

    fn add(&mut self, resource: &str, ids: impl IntoIterator<Item = String>) {
        let entry = self.resources.entry(resource.to_string()).or_default();
        for id in ids {
            if !entry.contains(&id) {
                entry.push(id);
            }
        }
    }

    /// No devices yet, from `source`.
    pub fn new(source: Source) -> PodDevices {
        PodDevices {
            source,
            resources: BTreeMap::new(),
        }
    }
}

/// Where device IDs come from; paths are configurable so tests can use temporary directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSource {
    /// The kubelet PodResources socket.
    pub socket: PathBuf,
    /// The device manager's checkpoint file.
    pub checkpoint: PathBuf,
    /// Bound on the whole kubelet exchange (connect, `Get`, `List`).
    pub timeout: Duration,
}

impl Default for DeviceSource {
    fn default() -> Self {
        DeviceSource {
            socket: PathBuf::from(DEFAULT_SOCKET),
            checkpoint: PathBuf::from(DEFAULT_CHECKPOINT),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl DeviceSource {
    /// The device IDs of `resource` allocated to `pod`; [`DeviceError::NotAllocated`] when a
    /// source answered and there are none.
    ///
    /// Synchronous: runs its own current-thread runtime (on a scoped thread when called from
    /// inside a tokio runtime). Async callers use [`DeviceSource::pod_devices_async`].
    pub fn device_ids(
        &self,
        pod: &PodIdentity,
        resource: &str,
    ) -> Result<Vec<String>, DeviceError> {
        if resource.is_empty() {
            return Err(DeviceError::InvalidResource(resource.to_string()));
        }
        let devices = self.pod_devices(pod)?;
        let ids = devices.ids(resource);
        if ids.is_empty() {
            return Err(DeviceError::NotAllocated {
                pod: pod.to_string(),
                resource: resource.to_string(),
                from: devices.source,
            });
        }
        Ok(ids.to_vec())
    }

    /// Every device allocated to `pod`, per resource: one kubelet round trip for all the
    /// networks of an ADD. Synchronous, like [`DeviceSource::device_ids`].
    pub fn pod_devices(&self, pod: &PodIdentity) -> Result<PodDevices, DeviceError> {
        validate_pod(pod)?;
        let kubelet = if tokio::runtime::Handle::try_current().is_ok() {
            // block_on inside a runtime panics: run ours on a thread of its own.
            std::thread::scope(|s| {
                s.spawn(|| self.kubelet_blocking(pod))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(KubeletError::Protocol {
                            method: "Get",
                            reason: "the client thread panicked".into(),
                        })
                    })
            })
        } else {
            self.kubelet_blocking(pod)
        };
        self.finish(pod, kubelet)
    }

    /// [`DeviceSource::pod_devices`] for async callers (any tokio runtime with IO and time).
    pub async fn pod_devices_async(&self, pod: &PodIdentity) -> Result<PodDevices, DeviceError> {
        validate_pod(pod)?;
        let kubelet = self.kubelet(pod).await;
        self.finish(pod, kubelet)
    }

    /// Asks the kubelet only (no fallback), within the deadline: for diagnostics and tests.
    pub async fn kubelet(&self, pod: &PodIdentity) -> Result<PodDevices, KubeletError> {
        if !self.socket.exists() {
            return Err(KubeletError::SocketMissing);
        }
        match tokio::time::timeout(
            self.timeout,
            podresources::query(&self.socket, pod, self.timeout),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(KubeletError::Timeout(self.timeout)),
        }
    }

    /// Reads the checkpoint file only: for diagnostics and tests.
    pub fn checkpoint(&self, pod: &PodIdentity) -> Result<PodDevices, CheckpointError> {
        checkpoint::read(&self.checkpoint, &pod.uid)
    }

    fn kubelet_blocking(&self, pod: &PodIdentity) -> Result<PodDevices, KubeletError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(KubeletError::Connect)?;
        rt.block_on(self.kubelet(pod))
    }

    fn finish(
        &self,
        pod: &PodIdentity,
        kubelet: Result<PodDevices, KubeletError>,
    ) -> Result<PodDevices, DeviceError> {
        let kubelet = match kubelet {
            Ok(devices) => return Ok(devices),
            Err(e) => e,
        };
        if !matches!(kubelet, KubeletError::SocketMissing) {
            tracing::warn!(
                "kubelet PodResources API at {} failed ({kubelet}); trying the checkpoint {}",
                self.socket.display(),
                self.checkpoint.display()
            );
        }
        self.checkpoint(pod).map_err(|checkpoint| {
            DeviceError::Unavailable(Box::new(Unanswered {
                pod: pod.to_string(),
                socket: self.socket.clone(),
                kubelet,
                checkpoint_path: self.checkpoint.clone(),
                checkpoint,
            }))
        })
    }
}

fn validate_pod(pod: &PodIdentity) -> Result<(), DeviceError> {
    for (what, value) in [("namespace", &pod.namespace), ("name", &pod.name)] {
        if value.is_empty() {
            return Err(DeviceError::InvalidPod(format!("the pod {what} is empty")));
        }
    }
    for (what, value) in [
        ("namespace", &pod.namespace),
        ("name", &pod.name),
        ("uid", &pod.uid),
    ] {
        if value.len() > 253 || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DeviceError::InvalidPod(format!(
                "the pod {what} {value:?} is not a Kubernetes {what}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::checkpoint::tests::{NEW_FORMAT, OLD_FORMAT};
    use super::*;

    fn pod(namespace: &str, name: &str, uid: &str) -> PodIdentity {
        PodIdentity {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    #[test]
    fn take_next_hands_out_devices_in_order() {
        let mut d = checkpoint::parse(OLD_FORMAT, "uid-1").unwrap();
        assert_eq!(
            d.take_next("intel.com/sriov").as_deref(),
            Some("0000:18:02.5")
        );
        assert_eq!(
            d.take_next("intel.com/sriov").as_deref(),
            Some("0000:18:02.6")
        );
        assert_eq!(d.take_next("intel.com/sriov"), None);
        assert_eq!(d.take_next("other/x"), None);
    }

    #[test]
    fn pod_identity_is_validated() {
        let src = DeviceSource::default();
        for p in [
            pod("", "web", "u"),
            pod("default", "", "u"),
            pod("default", "we b", "u"),
            pod("default", "web", "u\n"),
        ] {
            let err = src.device_ids(&p, "r/x").unwrap_err();
            assert!(matches!(err, DeviceError::InvalidPod(_)), "{p:?}: {err}");
        }
        let err = src.device_ids(&pod("default", "web", "u"), "").unwrap_err();
        assert!(matches!(err, DeviceError::InvalidResource(_)), "{err}");
    }

    fn source_in(dir: &Path) -> DeviceSource {
        DeviceSource {
            socket: dir.join("kubelet.sock"),
            checkpoint: dir.join("kubelet_internal_checkpoint"),
            timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn no_socket_and_no_checkpoint_names_both() {
        let dir = tempfile::tempdir().unwrap();
        let err = source_in(dir.path())
            .device_ids(&pod("default", "web", "uid-1"), "intel.com/sriov")
            .unwrap_err();
        let DeviceError::Unavailable(u) = &err else {
            panic!("{err}")
        };
        assert!(
            matches!(u.kubelet, KubeletError::SocketMissing),
            "{}",
            u.kubelet
        );
        assert!(
            matches!(u.checkpoint, CheckpointError::Missing),
            "{}",
            u.checkpoint
        );
        let text = err.to_string();
        assert!(
            text.contains("kubelet.sock") && text.contains("kubelet_internal_checkpoint"),
            "{text}"
        );
        assert!(text.contains("default/web"), "{text}");
    }

    #[test]
    fn no_socket_falls_back_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let src = source_in(dir.path());
        fs::write(&src.checkpoint, NEW_FORMAT).unwrap();
        let p = pod("default", "web", "uid-1");
        assert_eq!(src.device_ids(&p, "nvidia.com/gpu").unwrap(), ["GPU-1"]);
        assert_eq!(src.pod_devices(&p).unwrap().source, Source::Checkpoint);
        let err = src.device_ids(&p, "example.com/none").unwrap_err();
        assert!(
            matches!(&err, DeviceError::NotAllocated { from: Source::Checkpoint, resource, .. } if resource == "example.com/none"),
            "{err}"
        );
        // without a UID the checkpoint cannot match
        let err = src
            .device_ids(&pod("default", "web", ""), "nvidia.com/gpu")
            .unwrap_err();
        assert!(
            matches!(&err, DeviceError::Unavailable(u) if matches!(u.checkpoint, CheckpointError::NoUid)),
            "{err}"
        );
    }

    #[test]
    fn a_stale_socket_falls_back_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let src = source_in(dir.path());
        // a socket file nobody listens on: connection refused
        drop(std::os::unix::net::UnixListener::bind(&src.socket).unwrap());
        let err = src
            .device_ids(&pod("default", "web", "uid-1"), "nvidia.com/gpu")
            .unwrap_err();
        assert!(
            matches!(&err, DeviceError::Unavailable(u) if matches!(u.kubelet, KubeletError::Connect(_))),
            "{err}"
        );
        fs::write(&src.checkpoint, NEW_FORMAT).unwrap();
        assert_eq!(
            src.device_ids(&pod("default", "web", "uid-1"), "nvidia.com/gpu")
                .unwrap(),
            ["GPU-1"]
        );
    }

    #[test]
    fn the_sync_api_works_inside_a_tokio_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let src = source_in(dir.path());
        fs::write(&src.checkpoint, OLD_FORMAT).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ids = rt
            .block_on(async { src.device_ids(&pod("default", "web", "uid-1"), "intel.com/sriov") })
            .unwrap();
        assert_eq!(ids, ["0000:18:02.5", "0000:18:02.6"]);
        let d = rt
            .block_on(src.pod_devices_async(&pod("default", "web", "uid-1")))
            .unwrap();
        assert_eq!(d.ids("intel.com/sriov").len(), 2);
    }
}
