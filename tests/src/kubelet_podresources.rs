//! A stand-in for the kubelet's PodResources API v1 (`v1.PodResourcesLister`: `List`, `Get`,
//! `GetAllocatableResources`) on a unix socket in a temporary directory.
//!
//! Why a stand-in: a real kubelet cannot run on the build and CI machines (no cluster, no
//! container runtime for it to drive, and no kubelet package to install), so the device-ID
//! client is tested against this server instead. It speaks the same protocol as the kubelet:
//! HTTP/2 without TLS (h2c with prior knowledge), gRPC length-prefixed messages, status in the
//! trailers (errors as trailers-only responses, like grpc-go), and protobuf messages (`prost`)
//! with every field a kubelet sends, including the ones the product skips (CPU IDs, memory, NUMA
//! topology, dynamic resources), so a decoder that mishandles them fails. The encoding is checked
//! against an independent implementation in tests/tests/podresources_interop.rs.
//! Errors mirror the kubelet's: `Get` of an unknown pod is `UNKNOWN` "pod X in namespace Y not
//! found"; [`Fault`] injects what older or unhealthy kubelets do.

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, StreamBody};
use hyper::{
    body::{Frame, Incoming},
    header::{HeaderMap, HeaderValue, CONTENT_TYPE},
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use multus::devices::proto::GetPodResourcesRequest;
use prost::Message;

/// The service path prefix.
pub const SERVICE: &str = "/v1.PodResourcesLister/";

/// Devices of one container: resource name and device IDs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeDevices {
    /// Resource name (`intel.com/sriov`).
    pub resource: String,
    /// Device IDs.
    pub ids: Vec<String>,
    /// NUMA nodes of the devices (encoded as `TopologyInfo`).
    pub numa: Vec<i64>,
}

/// One container of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeContainer {
    /// Name.
    pub name: String,
    /// Devices, per resource.
    pub devices: Vec<FakeDevices>,
    /// Exclusive CPUs (encoded, packed, as the kubelet does).
    pub cpu_ids: Vec<i64>,
}

/// One pod as the kubelet reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakePod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Containers.
    pub containers: Vec<FakeContainer>,
}

impl FakePod {
    /// A pod with one container `app` holding `devices` (resource, IDs).
    pub fn with_devices(namespace: &str, name: &str, devices: &[(&str, &[&str])]) -> FakePod {
        FakePod {
            namespace: namespace.into(),
            name: name.into(),
            containers: vec![FakeContainer {
                name: "app".into(),
                devices: devices
                    .iter()
                    .map(|(r, ids)| FakeDevices {
                        resource: (*r).into(),
                        ids: ids.iter().map(|s| (*s).to_string()).collect(),
                        numa: vec![0],
                    })
                    .collect(),
                cpu_ids: vec![2, 3],
            }],
        }
    }
}

/// What the server does instead of answering normally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// `Get` is `UNIMPLEMENTED`, as on kubelets before 1.27.
    NoGet,
    /// `Get` is `UNKNOWN` "PodResources API Get method disabled", as with the
    /// `KubeletPodResourcesGet` gate off.
    GetDisabled,
    /// Requests are read and never answered.
    Hang,
    /// Connections are accepted and nothing is ever sent (not even the HTTP/2 settings).
    Mute,
    /// Every answer comes after this delay.
    Delay(Duration),
    /// Every call fails with this gRPC status code and message.
    Status(u32, String),
    /// Every call answers HTTP status (as a broken proxy would), without gRPC headers.
    Http(u16),
    /// Every call answers a message that is not valid protobuf.
    Garbage,
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The `:path` (`/v1.PodResourcesLister/Get`).
    pub path: String,
    /// `content-type`.
    pub content_type: String,
    /// `te`.
    pub te: String,
    /// `grpc-timeout`, when sent.
    pub grpc_timeout: Option<String>,
    /// For `Get`: (pod_name, pod_namespace) decoded from the request.
    pub get: Option<(String, String)>,
}

#[derive(Default)]
struct State {
    pods: Vec<FakePod>,
    fault: Fault,
    calls: Vec<Call>,
}

/// The running stand-in; stops, and removes its socket, when dropped.
pub struct PodResourcesServer {
    socket: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PodResourcesServer {
    /// Listens on `socket` (bound before this returns) and serves from a thread of its own.
    pub fn start(socket: &Path) -> PodResourcesServer {
        let listener = std::os::unix::net::UnixListener::bind(socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("podresources-standin".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::UnixListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => { tokio::spawn(serve(stream, shared.clone())); }
                                Err(e) => panic!("accept: {e}"),
                            },
                        }
                    }
                });
                // dropping the runtime cancels connections still open (hanging ones included)
            })
            .expect("spawn the stand-in thread");
        PodResourcesServer {
            socket: socket.to_path_buf(),
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Replaces the pods reported.
    pub fn set_pods(&self, pods: Vec<FakePod>) {
        self.lock().pods = pods;
    }

    /// Sets the fault applied to later requests.
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// The requests received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The paths requested so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.lock().calls.iter().map(|c| c.path.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for PodResourcesServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve(stream: tokio::net::UnixStream, state: Arc<Mutex<State>>) {
    let fault = state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .fault
        .clone();
    if fault == Fault::Mute {
        // hold the connection open and never speak
        let _held = stream;
        return std::future::pending::<()>().await;
    }
    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
    // a client that goes away mid-call is not the server's problem
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = req.uri().path().to_string();
    let content_type = header("content-type").unwrap_or_default();
    let te = header("te").unwrap_or_default();
    let grpc_timeout = header("grpc-timeout");
    let method_ok = req.method() == Method::POST;
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let message = unframe(&body);
    let get = match (&message, path.strip_prefix(SERVICE)) {
        (Some(m), Some("Get")) => decode_get_request(m),
        _ => None,
    };
    let (fault, pods) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let call = Call {
            path: path.clone(),
            content_type: content_type.clone(),
            te,
            grpc_timeout,
            get: get.clone(),
        };
        s.calls.push(call);
        (s.fault.clone(), s.pods.clone())
    };

    if !method_ok {
        return Ok(http_status(StatusCode::METHOD_NOT_ALLOWED));
    }
    if !content_type.starts_with("application/grpc") {
        return Ok(http_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    if message.is_none() {
        return Ok(grpc_error(13, "grpc: malformed message framing"));
    }
    match &fault {
        Fault::Hang => std::future::pending::<()>().await,
        Fault::Delay(d) => tokio::time::sleep(*d).await,
        Fault::Status(code, msg) => return Ok(grpc_error(*code, msg)),
        Fault::Http(code) => {
            return Ok(http_status(
                StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY),
            ))
        }
        Fault::Garbage => return Ok(grpc_ok(vec![0x0b, 0xff])),
        Fault::None | Fault::NoGet | Fault::GetDisabled | Fault::Mute => {}
    }
    let response = match path.strip_prefix(SERVICE) {
        Some("List") => grpc_ok(
            kubelet_proto::ListPodResourcesResponse {
                pod_resources: pods.iter().map(kubelet_pod).collect(),
            }
            .encode_to_vec(),
        ),
        Some("Get") if fault == Fault::NoGet => {
            grpc_error(12, "unknown method Get for service v1.PodResourcesLister")
        }
        Some("Get") if fault == Fault::GetDisabled => {
            grpc_error(2, "PodResources API Get method disabled")
        }
        Some("Get") => {
            let Some((name, namespace)) = get else {
                return Ok(grpc_error(13, "grpc: error unmarshalling request"));
            };
            match pods
                .iter()
                .find(|p| p.name == name && p.namespace == namespace)
            {
                Some(p) => grpc_ok(
                    kubelet_proto::GetPodResourcesResponse {
                        pod_resources: Some(kubelet_pod(p)),
                    }
                    .encode_to_vec(),
                ),
                None => grpc_error(2, &format!("pod {name} in namespace {namespace} not found")),
            }
        }
        Some("GetAllocatableResources") => grpc_ok(Vec::new()),
        _ => grpc_error(12, &format!("unknown service or method {path}")),
    };
    Ok(response)
}

fn http_status(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(BodyExt::boxed(http_body_util::Empty::new()));
    *r.status_mut() = status;
    r
}

fn grpc_ok(message: Vec<u8>) -> Response<Body> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from(framed))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(futures::stream::iter(
        frames,
    ))));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    r
}

/// A trailers-only error response (status in the headers, no body), as grpc-go sends.
fn grpc_error(code: u32, message: &str) -> Response<Body> {
    let mut r = http_status(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert("grpc-message", v);
    }
    r
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unframe(body: &[u8]) -> Option<Vec<u8>> {
    let (head, rest) = (body.get(..5)?, body.get(5..)?);
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    (head[0] == 0 && rest.len() == len).then(|| rest.to_vec())
}

/// The kubelet's side of the PodResources v1 messages (`k8s.io/kubelet/pkg/apis/podresources/v1/
/// api.proto`, kubelet 1.31 and later), with every field a kubelet sends: the product's messages
/// ([`multus::devices::proto`]) declare only the fields the client reads, so these carry the
/// ones it must skip. Requests are decoded with the product's messages (they have every field).
pub mod kubelet_proto {
    /// `ListPodResourcesResponse { repeated PodResources pod_resources = 1; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListPodResourcesResponse {
        /// Field 1.
        #[prost(message, repeated, tag = "1")]
        pub pod_resources: Vec<PodResources>,
    }

    /// `GetPodResourcesResponse { PodResources pod_resources = 1; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetPodResourcesResponse {
        /// Field 1.
        #[prost(message, optional, tag = "1")]
        pub pod_resources: Option<PodResources>,
    }

    /// `PodResources { name = 1; namespace = 2; containers = 3; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodResources {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Field 2.
        #[prost(string, tag = "2")]
        pub namespace: String,
        /// Field 3.
        #[prost(message, repeated, tag = "3")]
        pub containers: Vec<ContainerResources>,
    }

    /// `ContainerResources { name = 1; devices = 2; cpu_ids = 3; memory = 4; dynamic_resources = 5; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerResources {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Field 2.
        #[prost(message, repeated, tag = "2")]
        pub devices: Vec<ContainerDevices>,
        /// Field 3 (packed, proto3's default).
        #[prost(int64, repeated, tag = "3")]
        pub cpu_ids: Vec<i64>,
        /// Field 4.
        #[prost(message, repeated, tag = "4")]
        pub memory: Vec<ContainerMemory>,
        /// Field 5.
        #[prost(message, repeated, tag = "5")]
        pub dynamic_resources: Vec<DynamicResource>,
    }

    /// `ContainerDevices { resource_name = 1; device_ids = 2; topology = 3; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerDevices {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub resource_name: String,
        /// Field 2.
        #[prost(string, repeated, tag = "2")]
        pub device_ids: Vec<String>,
        /// Field 3.
        #[prost(message, optional, tag = "3")]
        pub topology: Option<TopologyInfo>,
    }

    /// `TopologyInfo { repeated NUMANode nodes = 1; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TopologyInfo {
        /// Field 1.
        #[prost(message, repeated, tag = "1")]
        pub nodes: Vec<NumaNode>,
    }

    /// `NUMANode { int64 ID = 1; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NumaNode {
        /// Field 1.
        #[prost(int64, tag = "1")]
        pub id: i64,
    }

    /// `ContainerMemory { memory_type = 1; uint64 size = 2; topology = 3; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerMemory {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub memory_type: String,
        /// Field 2.
        #[prost(uint64, tag = "2")]
        pub size: u64,
        /// Field 3.
        #[prost(message, optional, tag = "3")]
        pub topology: Option<TopologyInfo>,
    }

    /// `DynamicResource { claim_name = 2; claim_namespace = 3; claim_resources = 4; }` (field 1,
    /// `class_name`, is gone from current kubelets).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DynamicResource {
        /// Field 2.
        #[prost(string, tag = "2")]
        pub claim_name: String,
        /// Field 3.
        #[prost(string, tag = "3")]
        pub claim_namespace: String,
        /// Field 4.
        #[prost(message, repeated, tag = "4")]
        pub claim_resources: Vec<ClaimResource>,
    }

    /// `ClaimResource { repeated CDIDevice cdi_devices = 1; ... }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ClaimResource {
        /// Field 1.
        #[prost(message, repeated, tag = "1")]
        pub cdi_devices: Vec<CdiDevice>,
    }

    /// `CDIDevice { string name = 1; }`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CdiDevice {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub name: String,
    }
}

/// A pod as the kubelet sends it, with CPU IDs, memory, NUMA topology and a dynamic resource.
fn kubelet_pod(p: &FakePod) -> kubelet_proto::PodResources {
    use kubelet_proto::*;
    let topology = |numa: &[i64]| TopologyInfo {
        nodes: numa.iter().map(|&id| NumaNode { id }).collect(),
    };
    PodResources {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        containers: p
            .containers
            .iter()
            .map(|c| ContainerResources {
                name: c.name.clone(),
                devices: c
                    .devices
                    .iter()
                    .map(|d| ContainerDevices {
                        resource_name: d.resource.clone(),
                        device_ids: d.ids.clone(),
                        topology: Some(topology(&d.numa)),
                    })
                    .collect(),
                cpu_ids: c.cpu_ids.clone(),
                memory: vec![ContainerMemory {
                    memory_type: "memory".into(),
                    size: 1 << 30,
                    topology: None,
                }],
                dynamic_resources: vec![DynamicResource {
                    claim_name: "claim".into(),
                    claim_namespace: p.namespace.clone(),
                    claim_resources: vec![ClaimResource {
                        cdi_devices: vec![CdiDevice {
                            name: "vendor.com/gpu=gpu0".into(),
                        }],
                    }],
                }],
            })
            .collect(),
    }
}

/// `GetPodResourcesRequest`, decoded with the product's message: (pod_name, pod_namespace).
fn decode_get_request(buf: &[u8]) -> Option<(String, String)> {
    let req = GetPodResourcesRequest::decode(buf).ok()?;
    Some((req.pod_name, req.pod_namespace))
}
