//! Device IDs allocated to a pod, per resource name: what a NetworkAttachmentDefinition annotated
//! with `k8s.v1.cni.cncf.io/resourceName` turns into the `deviceID` / `pciBusID` of its delegate.
//!
//! Two sources, in this order:
//! 1. the kubelet's PodResources API v1 (`v1.PodResourcesLister`, gRPC over HTTP/2 on the unix
//!    socket `/var/lib/kubelet/pod-resources/kubelet.sock`): `Get` for the one pod, and `List` when
//!    `Get` is refused (kubelets before 1.27, or with the `KubeletPodResourcesGet` gate off);
//! 2. the kubelet device manager's checkpoint file
//!    (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`), matched by pod UID, when
//!    the socket is absent or the kubelet does not answer within the deadline.
//!
//! The gRPC client and the few protobuf messages it needs are written here by hand (module
//! [`proto`]): no code generation, no gRPC framework, only hyper's HTTP/2 client. The whole
//! kubelet exchange (connect, `Get`, `List`) is bounded by [`DeviceSource::timeout`].
//!
//! The checkpoint's `Checksum` is not verified: kubelet computes it over a Go-specific deep
//! hash of its in-memory structures that cannot be reproduced outside Go.

use std::{
    collections::BTreeMap,
    fmt, fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// Where the kubelet serves the PodResources API.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// The kubelet device manager's checkpoint file.
pub const DEFAULT_CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";
/// The default bound on the whole kubelet exchange (the reference uses the same).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest gRPC response accepted (the reference's limit: 16 MiB).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Largest checkpoint file read.
pub const MAX_CHECKPOINT: u64 = 64 * 1024 * 1024;

const SERVICE: &str = "v1.PodResourcesLister";

/// The pod whose devices are wanted: namespace and name for the kubelet API, UID for the
/// checkpoint file (an empty UID cannot match the checkpoint).
pub use super::PodIdentity;

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

/// Why the kubelet API gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// Nothing at the socket path (no kubelet, or not a Kubernetes node).
    #[error("the socket does not exist")]
    SocketMissing,
    /// The socket exists but the connection failed (a stale socket, permissions).
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// HTTP/2 failed (handshake, stream reset, connection closed).
    #[error("HTTP/2: {0}")]
    Http(#[source] hyper::Error),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The kubelet answered with a gRPC error status.
    #[error("{method} failed with gRPC status {code} ({}): {message}", status_name(*.code))]
    Status {
        /// The method (`Get`, `List`).
        method: &'static str,
        /// The gRPC status code.
        code: u32,
        /// The `grpc-message`, percent-decoded.
        message: String,
    },
    /// The answer broke the gRPC or protobuf rules.
    #[error("malformed answer to {method}: {reason}")]
    Protocol {
        /// The method (`Get`, `List`).
        method: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Why the checkpoint file gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The pod UID is unknown, and the checkpoint is keyed by UID.
    #[error("the pod UID is unknown (K8S_POD_UID was not passed)")]
    NoUid,
    /// The file does not exist.
    #[error("the file does not exist")]
    Missing,
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(#[source] io::Error),
    /// The file is not the JSON kubelet writes.
    #[error("malformed: {0}")]
    Malformed(String),
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

    fn new(source: Source) -> PodDevices {
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
        match tokio::time::timeout(self.timeout, query_kubelet(&self.socket, pod, self.timeout))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(KubeletError::Timeout(self.timeout)),
        }
    }

    /// Reads the checkpoint file only: for diagnostics and tests.
    pub fn checkpoint(&self, pod: &PodIdentity) -> Result<PodDevices, CheckpointError> {
        if pod.uid.is_empty() {
            return Err(CheckpointError::NoUid);
        }
        let text = read_capped(&self.checkpoint, MAX_CHECKPOINT)?;
        parse_checkpoint(&text, &pod.uid)
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

fn read_capped(path: &Path, cap: u64) -> Result<String, CheckpointError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CheckpointError::Missing,
        _ => CheckpointError::Read(e),
    })?;
    let mut text = String::new();
    file.take(cap + 1)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => CheckpointError::Malformed("not UTF-8".into()),
            _ => CheckpointError::Read(e),
        })?;
    if text.len() as u64 > cap {
        return Err(CheckpointError::Malformed(format!(
            "larger than {cap} bytes"
        )));
    }
    Ok(text)
}

/// Parses a device-manager checkpoint and collects the devices of the pod with UID `uid`.
///
/// Both formats kubelet has written are accepted: `DeviceIDs` as a map from NUMA node to IDs
/// (kubelet 1.20 and later) and as a plain list (earlier). Unknown keys (`AllocResp`,
/// `RegisteredDevices`, `Checksum`) are ignored.
pub fn parse_checkpoint(text: &str, uid: &str) -> Result<PodDevices, CheckpointError> {
    let root: Value = crate::explain::from_bytes(text.as_bytes())
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let entries = match root.get("Data").and_then(|d| d.get("PodDeviceEntries")) {
        Some(Value::Array(entries)) => entries.as_slice(),
        // kubelet writes null when no pod has devices
        Some(Value::Null) => &[],
        Some(_) => {
            return Err(CheckpointError::Malformed(
                "Data.PodDeviceEntries is not a list".into(),
            ))
        }
        None => {
            if root.get("Data").is_some_and(Value::is_object) {
                &[]
            } else {
                return Err(CheckpointError::Malformed("no Data object".into()));
            }
        }
    };
    let mut devices = PodDevices::new(Source::Checkpoint);
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        let (Some(pod_uid), Some(resource)) = (field("PodUID"), field("ResourceName")) else {
            return Err(CheckpointError::Malformed(format!(
                "entry {i} lacks PodUID or ResourceName"
            )));
        };
        if pod_uid != uid {
            continue;
        }
        let ids = checkpoint_ids(entry.get("DeviceIDs")).map_err(|reason| {
            CheckpointError::Malformed(format!("entry {i} ({resource}): {reason}"))
        })?;
        devices.add(resource, ids);
    }
    Ok(devices)
}

fn checkpoint_ids(value: Option<&Value>) -> Result<Vec<String>, String> {
    let strings = |list: &[Value]| -> Result<Vec<String>, String> {
        list.iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("device ID {v} is not a string"))
            })
            .collect()
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => strings(list),
        Some(Value::Object(per_numa)) => {
            let mut ids = Vec::new();
            for (numa, list) in per_numa {
                match list {
                    Value::Array(list) => ids.extend(strings(list)?),
                    Value::Null => {}
                    _ => return Err(format!("DeviceIDs[{numa:?}] is not a list")),
                }
            }
            Ok(ids)
        }
        Some(_) => Err("DeviceIDs is neither a list nor a map of lists".into()),
    }
}

/// One kubelet exchange: `Get`, then `List` when `Get` is refused with a gRPC status.
async fn query_kubelet(
    socket: &Path,
    pod: &PodIdentity,
    timeout: Duration,
) -> Result<PodDevices, KubeletError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => KubeletError::SocketMissing,
            _ => KubeletError::Connect(e),
        })?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_frame_size(1 << 20)
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(KubeletError::Http)?;
    // Ends with the runtime or when `sender` is dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("kubelet PodResources connection: {e}");
        }
    });

    let get = proto::GetPodResourcesRequest {
        pod_name: pod.name.clone(),
        pod_namespace: pod.namespace.clone(),
    };
    match unary(&mut sender, "Get", get.encode(), timeout).await {
        Ok(body) => {
            let resp = proto::GetPodResourcesResponse::decode(&body).map_err(|reason| {
                KubeletError::Protocol {
                    method: "Get",
                    reason,
                }
            })?;
            let mut devices = PodDevices::new(Source::Kubelet);
            if let Some(p) = resp.pod_resources {
                collect(&mut devices, &p);
            }
            return Ok(devices);
        }
        // Older kubelets (Unimplemented) and disabled or failing Get (Unknown): ask List.
        Err(KubeletError::Status { code, message, .. }) => {
            tracing::debug!("kubelet PodResources Get refused ({code}: {message}); using List");
        }
        Err(e) => return Err(e),
    }
    let body = unary(&mut sender, "List", Vec::new(), timeout).await?;
    let resp = proto::ListPodResourcesResponse::decode(&body).map_err(|reason| {
        KubeletError::Protocol {
            method: "List",
            reason,
        }
    })?;
    let mut devices = PodDevices::new(Source::Kubelet);
    for p in resp
        .pod_resources
        .iter()
        .filter(|p| p.name == pod.name && p.namespace == pod.namespace)
    {
        collect(&mut devices, p);
    }
    Ok(devices)
}

fn collect(devices: &mut PodDevices, pod: &proto::PodResources) {
    for container in &pod.containers {
        for d in &container.devices {
            devices.add(&d.resource_name, d.device_ids.iter().cloned());
        }
    }
}

/// One unary gRPC call: returns the one response message.
async fn unary(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    method: &'static str,
    message: Vec<u8>,
    timeout: Duration,
) -> Result<Bytes, KubeletError> {
    let protocol = |reason: String| KubeletError::Protocol { method, reason };
    let request = Request::post(format!("http://localhost/{SERVICE}/{method}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(
            header::USER_AGENT,
            concat!("multus-rs/", env!("CARGO_PKG_VERSION")),
        )
        .header("grpc-timeout", grpc_timeout(timeout))
        .body(Full::new(Bytes::from(frame(&message))))
        .map_err(|e| protocol(format!("cannot build the request: {e}")))?;
    sender.ready().await.map_err(KubeletError::Http)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(KubeletError::Http)?;
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        return Err(KubeletError::Status {
            method,
            code: http_to_grpc(parts.status),
            message: format!("HTTP status {}", parts.status),
        });
    }
    // A trailers-only answer carries the status in the headers.
    if let Some(status) = grpc_status(&parts.headers, method)? {
        if status.0 != 0 {
            return Err(KubeletError::Status {
                method,
                code: status.0,
                message: status.1,
            });
        }
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/grpc") {
        return Err(protocol(format!(
            "content-type {content_type:?} is not application/grpc"
        )));
    }
    let collected = Limited::new(body, MAX_RESPONSE + 5)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => KubeletError::Http(*e),
            Err(e) => protocol(format!("{e} (limit {MAX_RESPONSE} bytes)")),
        })?;
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    let status = match trailers.as_ref() {
        Some(t) => grpc_status(t, method)?,
        None => None,
    };
    match status {
        Some((0, _)) => {}
        Some((code, message)) => {
            return Err(KubeletError::Status {
                method,
                code,
                message,
            })
        }
        None => return Err(protocol("no grpc-status in the trailers".into())),
    }
    unframe(&data).map_err(protocol)
}

/// The gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, bytes.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    // messages here are far below 4 GiB; saturate rather than wrap if not
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

/// Splits a unary response body into its one message.
pub fn unframe(data: &[u8]) -> Result<Bytes, String> {
    if data.len() < 5 {
        return Err(format!(
            "{} bytes of body, less than one gRPC message header",
            data.len()
        ));
    }
    if data[0] != 0 {
        return Err(format!(
            "compressed or unknown message flag {} (no compression was offered)",
            data[0]
        ));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let rest = &data[5..];
    if rest.len() != len {
        return Err(format!(
            "message length {len} but {} bytes follow (a unary answer has one message)",
            rest.len()
        ));
    }
    Ok(Bytes::copy_from_slice(rest))
}

fn grpc_timeout(timeout: Duration) -> String {
    let ms = timeout.as_millis().max(1);
    if ms <= 99_999_999 {
        format!("{ms}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

fn grpc_status(
    headers: &hyper::HeaderMap,
    method: &'static str,
) -> Result<Option<(u32, String)>, KubeletError> {
    let Some(code) = headers.get("grpc-status") else {
        return Ok(None);
    };
    let code = code
        .to_str()
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or_else(|| KubeletError::Protocol {
            method,
            reason: format!("grpc-status {code:?} is not a number"),
        })?;
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Ok(Some((code, message)))
}

fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC code for a non-200 HTTP status (gRPC's "HTTP to gRPC status code mapping").
fn http_to_grpc(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// The name of a gRPC status code.
pub fn status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("unknown code")
}

/// The PodResources v1 messages this client uses, encoded and decoded by hand (proto3 wire
/// format). Fields this client does not need (CPU IDs, memory, topology, dynamic resources) are
/// skipped on decode, as protobuf requires of unknown fields.
pub mod proto {
    /// `GetPodResourcesRequest { string pod_name = 1; string pod_namespace = 2; }`
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct GetPodResourcesRequest {
        /// Field 1.
        pub pod_name: String,
        /// Field 2.
        pub pod_namespace: String,
    }

    /// `GetPodResourcesResponse { PodResources pod_resources = 1; }`
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct GetPodResourcesResponse {
        /// Field 1.
        pub pod_resources: Option<PodResources>,
    }

    /// `ListPodResourcesResponse { repeated PodResources pod_resources = 1; }`
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ListPodResourcesResponse {
        /// Field 1.
        pub pod_resources: Vec<PodResources>,
    }

    /// `PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }`
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct PodResources {
        /// Field 1.
        pub name: String,
        /// Field 2.
        pub namespace: String,
        /// Field 3.
        pub containers: Vec<ContainerResources>,
    }

    /// `ContainerResources { string name = 1; repeated ContainerDevices devices = 2; ... }`
    /// (fields 3-5, CPU IDs, memory and dynamic resources, are skipped).
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ContainerResources {
        /// Field 1.
        pub name: String,
        /// Field 2.
        pub devices: Vec<ContainerDevices>,
    }

    /// `ContainerDevices { string resource_name = 1; repeated string device_ids = 2; TopologyInfo topology = 3; }`
    /// (the topology is skipped).
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct ContainerDevices {
        /// Field 1.
        pub resource_name: String,
        /// Field 2.
        pub device_ids: Vec<String>,
    }

    const VARINT: u8 = 0;
    const I64: u8 = 1;
    const LEN: u8 = 2;
    const I32: u8 = 5;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
        put_varint(out, (u64::from(field) << 3) | u64::from(LEN));
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// proto3: a string field equal to "" is not written.
    fn put_string(out: &mut Vec<u8>, field: u32, s: &str) {
        if !s.is_empty() {
            put_bytes(out, field, s.as_bytes());
        }
    }

    /// A cursor over one message's bytes.
    struct Reader<'a> {
        buf: &'a [u8],
    }

    enum Value<'a> {
        Varint,
        Bytes(&'a [u8]),
        Fixed,
    }

    impl<'a> Reader<'a> {
        fn varint(&mut self) -> Result<u64, String> {
            let mut v: u64 = 0;
            for i in 0..10 {
                let Some((&b, rest)) = self.buf.split_first() else {
                    return Err("truncated varint".into());
                };
                self.buf = rest;
                if i == 9 && b > 1 {
                    return Err("varint longer than 64 bits".into());
                }
                v |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err("varint longer than 10 bytes".into())
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.buf.len() < n {
                return Err(format!(
                    "field of {n} bytes but only {} left",
                    self.buf.len()
                ));
            }
            let (head, rest) = self.buf.split_at(n);
            self.buf = rest;
            Ok(head)
        }

        /// The next field: its number and value; `None` at the end.
        fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, String> {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let number = u32::try_from(key >> 3)
                .map_err(|_| format!("field number {} too large", key >> 3))?;
            if number == 0 {
                return Err("field number 0".into());
            }
            let value = match (key & 7) as u8 {
                VARINT => {
                    self.varint()?;
                    Value::Varint
                }
                I64 => {
                    self.take(8)?;
                    Value::Fixed
                }
                LEN => {
                    let n = usize::try_from(self.varint()?)
                        .map_err(|_| "length too large".to_string())?;
                    Value::Bytes(self.take(n)?)
                }
                I32 => {
                    self.take(4)?;
                    Value::Fixed
                }
                other => {
                    return Err(format!(
                        "field {number}: unsupported wire type {other} (groups are not used)"
                    ))
                }
            };
            Ok(Some((number, value)))
        }
    }

    fn bytes<'a>(number: u32, value: Value<'a>) -> Result<&'a [u8], String> {
        match value {
            Value::Bytes(b) => Ok(b),
            _ => Err(format!("field {number} should be length-delimited")),
        }
    }

    fn string(number: u32, value: Value<'_>) -> Result<String, String> {
        let b = bytes(number, value)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("field {number} is not UTF-8"))
    }

    /// Calls `f` for every field; proto3 lets a field repeat (last scalar wins, messages merge).
    fn each<'a>(
        buf: &'a [u8],
        mut f: impl FnMut(u32, Value<'a>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut r = Reader { buf };
        while let Some((number, value)) = r.field()? {
            f(number, value)?;
        }
        Ok(())
    }

    impl GetPodResourcesRequest {
        /// Wire bytes.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            put_string(&mut out, 1, &self.pod_name);
            put_string(&mut out, 2, &self.pod_namespace);
            out
        }

        /// Parses wire bytes.
        pub fn decode(buf: &[u8]) -> Result<Self, String> {
            let mut m = Self::default();
            each(buf, |n, v| {
                match n {
                    1 => m.pod_name = string(n, v)?,
                    2 => m.pod_namespace = string(n, v)?,
                    _ => {}
                }
                Ok(())
            })?;
            Ok(m)
        }
    }

    impl GetPodResourcesResponse {
        /// Wire bytes.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            if let Some(p) = &self.pod_resources {
                put_bytes(&mut out, 1, &p.encode());
            }
            out
        }

        /// Parses wire bytes.
        pub fn decode(buf: &[u8]) -> Result<Self, String> {
            let mut m = Self::default();
            each(buf, |n, v| {
                if n == 1 {
                    m.pod_resources
                        .get_or_insert_with(PodResources::default)
                        .merge(bytes(n, v)?)?;
                }
                Ok(())
            })?;
            Ok(m)
        }
    }

    impl ListPodResourcesResponse {
        /// Wire bytes.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            for p in &self.pod_resources {
                put_bytes(&mut out, 1, &p.encode());
            }
            out
        }

        /// Parses wire bytes.
        pub fn decode(buf: &[u8]) -> Result<Self, String> {
            let mut m = Self::default();
            each(buf, |n, v| {
                if n == 1 {
                    let mut p = PodResources::default();
                    p.merge(bytes(n, v)?)?;
                    m.pod_resources.push(p);
                }
                Ok(())
            })?;
            Ok(m)
        }
    }

    impl PodResources {
        /// Wire bytes.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            put_string(&mut out, 1, &self.name);
            put_string(&mut out, 2, &self.namespace);
            for c in &self.containers {
                put_bytes(&mut out, 3, &c.encode());
            }
            out
        }

        fn merge(&mut self, buf: &[u8]) -> Result<(), String> {
            each(buf, |n, v| {
                match n {
                    1 => self.name = string(n, v)?,
                    2 => self.namespace = string(n, v)?,
                    3 => {
                        let mut c = ContainerResources::default();
                        c.merge(bytes(n, v)?)?;
                        self.containers.push(c);
                    }
                    _ => {}
                }
                Ok(())
            })
        }
    }

    impl ContainerResources {
        /// Wire bytes.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            put_string(&mut out, 1, &self.name);
            for d in &self.devices {
                put_bytes(&mut out, 2, &d.encode());
            }
            out
        }

        fn merge(&mut self, buf: &[u8]) -> Result<(), String> {
            each(buf, |n, v| {
                match n {
                    1 => self.name = string(n, v)?,
                    2 => {
                        let mut d = ContainerDevices::default();
                        d.merge(bytes(n, v)?)?;
                        self.devices.push(d);
                    }
                    _ => {}
                }
                Ok(())
            })
        }
    }

    impl ContainerDevices {
        /// Wire bytes.
        pub fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            put_string(&mut out, 1, &self.resource_name);
            for id in &self.device_ids {
                // repeated string: every element is written, even "".
                put_bytes(&mut out, 2, id.as_bytes());
            }
            out
        }

        fn merge(&mut self, buf: &[u8]) -> Result<(), String> {
            each(buf, |n, v| {
                match n {
                    1 => self.resource_name = string(n, v)?,
                    2 => self.device_ids.push(string(n, v)?),
                    _ => {}
                }
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;

    fn pod(namespace: &str, name: &str, uid: &str) -> PodIdentity {
        PodIdentity {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    /// Bytes written by hand from the proto3 wire format, not by this module's encoder.
    fn key(field: u8, wire: u8) -> u8 {
        (field << 3) | wire
    }

    fn len_field(field: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 16384);
        let mut v = vec![key(field, 2)];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.extend([(body.len() as u8 & 0x7f) | 0x80, (body.len() >> 7) as u8]);
        }
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn get_request_golden_bytes() {
        let req = GetPodResourcesRequest {
            pod_name: "p".into(),
            pod_namespace: "ns".into(),
        };
        assert_eq!(req.encode(), [0x0a, 0x01, b'p', 0x12, 0x02, b'n', b's']);
        assert_eq!(GetPodResourcesRequest::decode(&req.encode()).unwrap(), req);
        // proto3 leaves empty strings out
        assert!(GetPodResourcesRequest::default().encode().is_empty());
    }

    #[test]
    fn list_response_with_every_field_kubelet_sends() {
        // ContainerDevices { resource_name, device_ids x2, topology { nodes { ID: 1 } } }
        let mut devices = len_field(1, b"intel.com/sriov");
        devices.extend(len_field(2, b"0000:18:02.5"));
        devices.extend(len_field(2, b"0000:18:02.6"));
        devices.extend(len_field(3, &len_field(1, &[key(1, 0), 1])));
        // ContainerResources { name, devices, cpu_ids packed [2, 300], memory {..}, dynamic_resources {..} }
        let mut container = len_field(1, b"app");
        container.extend(len_field(2, &devices));
        container.extend(len_field(3, &[0x02, 0xac, 0x02]));
        let mut memory = len_field(1, b"hugepages-1Gi");
        memory.extend([key(2, 0), 0x80, 0x80, 0x80, 0x80, 0x04]);
        container.extend(len_field(4, &memory));
        container.extend(len_field(5, &len_field(1, b"gpu-class")));
        // an unknown fixed64 and fixed32 field a future kubelet might add
        container.extend([key(9, 1), 1, 2, 3, 4, 5, 6, 7, 8, key(10, 5), 1, 2, 3, 4]);
        let mut pod = len_field(1, b"web");
        pod.extend(len_field(2, b"default"));
        pod.extend(len_field(3, &container));
        pod.extend(len_field(3, &len_field(1, b"sidecar")));
        let mut other = len_field(1, b"db");
        other.extend(len_field(2, b"prod"));
        let mut list = len_field(1, &pod);
        list.extend(len_field(1, &other));

        let resp = ListPodResourcesResponse::decode(&list).unwrap();
        assert_eq!(resp.pod_resources.len(), 2);
        let p = &resp.pod_resources[0];
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("web", "default"));
        assert_eq!(p.containers.len(), 2);
        assert_eq!(p.containers[0].name, "app");
        assert_eq!(
            p.containers[0].devices,
            [ContainerDevices {
                resource_name: "intel.com/sriov".into(),
                device_ids: vec!["0000:18:02.5".into(), "0000:18:02.6".into()],
            }]
        );
        assert_eq!(p.containers[1].name, "sidecar");
        assert_eq!(resp.pod_resources[1].name, "db");
        // our encoder writes what we decode, minus the skipped fields
        let again = ListPodResourcesResponse::decode(&resp.encode()).unwrap();
        assert_eq!(again, resp);
    }

    #[test]
    fn get_response_merges_a_repeated_singular_message() {
        let mut buf = len_field(1, &len_field(1, b"web"));
        buf.extend(len_field(1, &len_field(2, b"default")));
        let resp = GetPodResourcesResponse::decode(&buf).unwrap();
        let p = resp.pod_resources.unwrap();
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("web", "default"));
        assert_eq!(
            GetPodResourcesResponse::decode(&[]).unwrap().pod_resources,
            None
        );
    }

    #[test]
    fn malformed_protobuf_is_an_error_not_a_panic() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x0a], "truncated varint"),
            (&[0x0a, 0x05, b'a'], "only 1 left"),
            (&[0x0b], "wire type 3"),
            (&[0x02, 0x00], "field number 0"),
            (&[0x0a, 0x02, 0xc3, 0x28], "UTF-8"),
            (
                &[
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "varint",
            ),
        ];
        for (bytes, want) in cases {
            // as a PodResources inside a List answer
            let err = ListPodResourcesResponse::decode(&len_field(1, bytes)).unwrap_err();
            assert!(err.contains(want), "{bytes:?}: {err}");
        }
        // a string field sent as a varint
        let err = GetPodResourcesRequest::decode(&[key(1, 0), 1]).unwrap_err();
        assert!(err.contains("length-delimited"), "{err}");
        // every prefix of a valid message either parses or errors
        let full = ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "web".into(),
                namespace: "default".into(),
                containers: vec![ContainerResources {
                    name: "c".into(),
                    devices: vec![ContainerDevices {
                        resource_name: "r/x".into(),
                        device_ids: vec!["a".into()],
                    }],
                }],
            }],
        }
        .encode();
        for n in 0..full.len() {
            let _ = ListPodResourcesResponse::decode(&full[..n]);
        }
    }

    #[test]
    fn grpc_framing() {
        assert_eq!(frame(b"ab"), [0, 0, 0, 0, 2, b'a', b'b']);
        assert_eq!(frame(b""), [0, 0, 0, 0, 0]);
        assert_eq!(unframe(&frame(b"ab")).unwrap().as_ref(), b"ab");
        assert_eq!(unframe(&frame(b"")).unwrap().as_ref(), b"");
        assert!(unframe(&[0, 0, 0]).unwrap_err().contains("less than"));
        assert!(unframe(&[1, 0, 0, 0, 0])
            .unwrap_err()
            .contains("compressed"));
        assert!(unframe(&[0, 0, 0, 0, 3, b'a'])
            .unwrap_err()
            .contains("length 3"));
        let mut two = frame(b"a");
        two.extend(frame(b"b"));
        assert!(unframe(&two).is_err());
    }

    #[test]
    fn grpc_headers() {
        assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout(Duration::from_micros(10)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(
            percent_decode(b"pod %22web%22 not found%"),
            "pod \"web\" not found%"
        );
        assert_eq!(percent_decode(b"100%zz"), "100%zz");
        assert_eq!(status_name(12), "UNIMPLEMENTED");
        assert_eq!(status_name(99), "unknown code");
        assert_eq!(http_to_grpc(StatusCode::NOT_FOUND), 12);
        assert_eq!(http_to_grpc(StatusCode::SERVICE_UNAVAILABLE), 14);
    }

    const NEW_FORMAT: &str = r#"{"Data":{"PodDeviceEntries":[
        {"PodUID":"uid-1","ContainerName":"app","ResourceName":"intel.com/sriov",
         "DeviceIDs":{"0":["0000:18:02.5"],"1":["0000:86:02.1","0000:86:02.2"]},"AllocResp":"CgQKAkZPTw=="},
        {"PodUID":"uid-1","ContainerName":"sidecar","ResourceName":"intel.com/sriov",
         "DeviceIDs":{"0":["0000:18:02.5","0000:18:02.7"]},"AllocResp":""},
        {"PodUID":"uid-1","ContainerName":"app","ResourceName":"nvidia.com/gpu","DeviceIDs":{"-1":["GPU-1"]}},
        {"PodUID":"uid-2","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:18:03.0"]}}
      ],
      "RegisteredDevices":{"intel.com/sriov":["0000:18:02.5","0000:18:02.6"]}},
      "Checksum":1234567890}"#;

    const OLD_FORMAT: &str = r#"{"Data":{"PodDeviceEntries":[
        {"PodUID":"uid-1","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":["0000:18:02.5","0000:18:02.6"],"AllocResp":null},
        {"PodUID":"uid-9","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":["0000:18:03.0"]}
      ],"RegisteredDevices":{}},"Checksum":42}"#;

    #[test]
    fn checkpoint_numa_map_format() {
        let d = parse_checkpoint(NEW_FORMAT, "uid-1").unwrap();
        assert_eq!(d.source, Source::Checkpoint);
        assert_eq!(
            d.ids("intel.com/sriov"),
            [
                "0000:18:02.5",
                "0000:86:02.1",
                "0000:86:02.2",
                "0000:18:02.7"
            ]
        );
        assert_eq!(d.ids("nvidia.com/gpu"), ["GPU-1"]);
        assert!(d.ids("other/x").is_empty());
        assert_eq!(
            parse_checkpoint(NEW_FORMAT, "uid-2")
                .unwrap()
                .ids("intel.com/sriov"),
            ["0000:18:03.0"]
        );
        assert!(parse_checkpoint(NEW_FORMAT, "uid-404")
            .unwrap()
            .resources
            .is_empty());
    }

    #[test]
    fn checkpoint_plain_list_format() {
        let d = parse_checkpoint(OLD_FORMAT, "uid-1").unwrap();
        assert_eq!(d.ids("intel.com/sriov"), ["0000:18:02.5", "0000:18:02.6"]);
    }

    #[test]
    fn checkpoint_without_pods() {
        for text in [
            r#"{"Data":{"PodDeviceEntries":null,"RegisteredDevices":null},"Checksum":1}"#,
            r#"{"Data":{},"Checksum":1}"#,
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":null}]}}"#,
        ] {
            assert!(
                parse_checkpoint(text, "uid-1")
                    .unwrap()
                    .ids("r/x")
                    .is_empty(),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_checkpoints() {
        for (text, want) in [
            ("not json", "expected"),
            (r#"{"Checksum":1}"#, "no Data"),
            (r#"{"Data":{"PodDeviceEntries":{}}}"#, "not a list"),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1"}]}}"#,
                "lacks PodUID or ResourceName",
            ),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":"a"}]}}"#,
                "neither",
            ),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":[1]}]}}"#,
                "not a string",
            ),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":{"0":"a"}}]}}"#,
                "not a list",
            ),
        ] {
            let err = parse_checkpoint(text, "uid-1").unwrap_err();
            assert!(matches!(err, CheckpointError::Malformed(_)), "{text}");
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn take_next_hands_out_devices_in_order() {
        let mut d = parse_checkpoint(OLD_FORMAT, "uid-1").unwrap();
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

    #[test]
    fn an_oversized_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        fs::write(&path, "x".repeat(100)).unwrap();
        assert!(matches!(
            read_capped(&path, 10),
            Err(CheckpointError::Malformed(_))
        ));
        assert_eq!(read_capped(&path, 100).unwrap().len(), 100);
    }
}
