//! A stand-in for the kubelet's PodResources API v1 (`v1.PodResourcesLister`: `List`, `Get`,
//! `GetAllocatableResources`) on a unix socket in a temporary directory.
//!
//! Why a stand-in: a real kubelet cannot run on the build and CI machines (no cluster, no
//! container runtime for it to drive, and no kubelet package to install), so the device-ID
//! client is tested against this server instead. It speaks the same protocol as the kubelet:
//! HTTP/2 without TLS (h2c with prior knowledge), gRPC length-prefixed messages, status in the
//! trailers (errors as trailers-only responses, like grpc-go), and protobuf messages encoded
//! here independently of the product's codec, including the fields the product skips (CPU IDs,
//! memory, NUMA topology, dynamic resources), so a decoder that mishandles them fails.
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
        Some("List") => {
            let mut out = Vec::new();
            for p in &pods {
                put_bytes(&mut out, 1, &encode_pod(p));
            }
            grpc_ok(out)
        }
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
                Some(p) => {
                    let mut out = Vec::new();
                    put_bytes(&mut out, 1, &encode_pod(p));
                    grpc_ok(out)
                }
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

// --- protobuf, written independently of the product's codec -----------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_int64(out: &mut Vec<u8>, field: u64, v: i64) {
    put_varint(out, field << 3);
    put_varint(out, v as u64);
}

fn encode_pod(p: &FakePod) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, p.name.as_bytes());
    put_bytes(&mut out, 2, p.namespace.as_bytes());
    for c in &p.containers {
        let mut cont = Vec::new();
        put_bytes(&mut cont, 1, c.name.as_bytes());
        for d in &c.devices {
            let mut dev = Vec::new();
            put_bytes(&mut dev, 1, d.resource.as_bytes());
            for id in &d.ids {
                put_bytes(&mut dev, 2, id.as_bytes());
            }
            // TopologyInfo { repeated NUMANode nodes = 1 } with NUMANode { int64 ID = 1 }
            let mut topo = Vec::new();
            for n in &d.numa {
                let mut node = Vec::new();
                put_int64(&mut node, 1, *n);
                put_bytes(&mut topo, 1, &node);
            }
            put_bytes(&mut dev, 3, &topo);
            put_bytes(&mut cont, 2, &dev);
        }
        // repeated int64 cpu_ids = 3, packed (proto3's default)
        if !c.cpu_ids.is_empty() {
            let mut packed = Vec::new();
            for id in &c.cpu_ids {
                put_varint(&mut packed, *id as u64);
            }
            put_bytes(&mut cont, 3, &packed);
        }
        // ContainerMemory { memory_type = 1; size = 2; topology = 3 }
        let mut mem = Vec::new();
        put_bytes(&mut mem, 1, b"memory");
        put_int64(&mut mem, 2, 1 << 30);
        put_bytes(&mut cont, 4, &mem);
        // DynamicResource { class_name = 1; claim_name = 2; claim_namespace = 3; claim_resources = 4 }
        let mut dynres = Vec::new();
        put_bytes(&mut dynres, 2, b"claim");
        put_bytes(&mut dynres, 3, p.namespace.as_bytes());
        put_bytes(&mut dynres, 4, &{
            let mut cdi = Vec::new();
            put_bytes(&mut cdi, 1, b"vendor.com/gpu=gpu0");
            let mut claim = Vec::new();
            put_bytes(&mut claim, 1, &cdi);
            claim
        });
        put_bytes(&mut cont, 5, &dynres);
        put_bytes(&mut out, 3, &cont);
    }
    out
}

/// `GetPodResourcesRequest { string pod_name = 1; string pod_namespace = 2; }`
fn decode_get_request(mut buf: &[u8]) -> Option<(String, String)> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let (mut name, mut namespace) = (String::new(), String::new());
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        if key & 7 != 2 {
            return None;
        }
        let len = usize::try_from(varint(&mut buf)?).ok()?;
        let value = buf.get(..len)?;
        buf = &buf[len..];
        let value = String::from_utf8(value.to_vec()).ok()?;
        match key >> 3 {
            1 => name = value,
            2 => namespace = value,
            _ => {}
        }
    }
    Some((name, namespace))
}
