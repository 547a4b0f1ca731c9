//! A Kubernetes API server stand-in for tests, benchmarks and demos.
//!
//! [`KubeApiServer`] serves HTTPS on 127.0.0.1 with a CA generated per server and speaks the
//! Kubernetes REST protocol as JSON for what a CNI plugin uses: core/v1 pods (with `status`),
//! core/v1 events and k8s.cni.cncf.io/v1 network-attachment-definitions, plus the discovery
//! documents `kubectl` and the `kube` crate read. Tests steer it while it runs: seed objects,
//! read annotations back from the store, inject errors and latency, take it down and up.
//!
//! It owns its tokio runtime on a background thread, so it works from a plain `#[test]`, from
//! async tests and from long-lived processes; dropping it stops the thread.
//!
//! ```no_run
//! use testkit::kube_api::{Fault, KubeApiServer, NadSeed, PodSeed};
//!
//! let server = KubeApiServer::start().unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
//! server.create_pod(PodSeed::new("default", "web").uid("1234")).unwrap();
//! server.create_nad(NadSeed::new("default", "macvlan", r#"{"type":"macvlan"}"#)).unwrap();
//! server.inject(Fault::status(503).times(2));
//! // ... run the plugin with `kubeconfig` ...
//! let status = server.pod_annotation("default", "web", "k8s.v1.cni.cncf.io/network-status");
//! # let _ = (kubeconfig, status);
//! ```
//!
//! See docs/kube-api-standin.md for what is and is not implemented.

#![warn(missing_docs)]

mod csr;
mod faults;
mod http;
mod patch;
pub mod rbac;
mod resources;
mod seed;
mod selectors;
mod status;
mod store;
mod tls;
mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use csr::Identity;
pub use faults::{glob_match, Fault, FaultAction, FaultId, RecordedRequest};
pub use resources::Resource;
pub use seed::{NadSeed, PodSeed, RESOURCE_NAME_ANNOTATION};

use faults::ActiveFault;
use store::Store;
use tls::Pki;

/// The pod annotation the plugin writes its network status to.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// The pod annotation that selects additional networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

/// How a [`KubeApiServer`] is started.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Port on 127.0.0.1; 0 (the default) picks an ephemeral one.
    pub port: u16,
    /// The bearer token clients must present; random when `None`.
    pub token: Option<String>,
    /// Reject requests without the token or a client certificate (default true). /version and
    /// the health endpoints are always public, as in a real cluster.
    pub require_auth: bool,
    /// Print one line per request to stderr (default: set when `KUBE_STANDIN_LOG` is set).
    pub log_requests: bool,
    /// How many requests [`KubeApiServer::requests`] keeps (oldest dropped first; default
    /// 100 000). Counts from [`KubeApiServer::request_count`] stay exact regardless.
    pub max_recorded_requests: usize,
    /// Listen on 127.0.0.1 of this network namespace (a test node's, where the plugins run)
    /// instead of the caller's. Re-binds after an outage happen there too.
    pub netns: Option<std::path::PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            port: 0,
            token: None,
            require_auth: true,
            log_requests: std::env::var_os("KUBE_STANDIN_LOG").is_some(),
            max_recorded_requests: 100_000,
            netns: None,
        }
    }
}

/// Switches the calling thread into the network namespace at `path` (for good: only used on
/// threads that exist for the server).
fn enter_netns(path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns on a valid namespace descriptor, affecting only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("entering {}", path.display()));
    }
    Ok(())
}

/// Which credentials a written kubeconfig carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeconfigAuth {
    /// The server's bearer token (the default).
    Token,
    /// A client certificate signed by the server's CA.
    ClientCert,
    /// Both.
    TokenAndClientCert,
    /// No credentials (requests other than /version get 401).
    None,
    /// A wrong bearer token (requests get 401).
    WrongToken,
}

/// What a written kubeconfig looks like.
#[derive(Debug, Clone)]
pub struct KubeconfigOptions {
    /// File name inside the target directory (default "kubeconfig").
    pub file_name: String,
    /// Credentials (default [`KubeconfigAuth::Token`]).
    pub auth: KubeconfigAuth,
    /// Host in the server URL: "127.0.0.1" (default) or "localhost"; both are in the certificate.
    pub host: String,
    /// The context's default namespace (default "default").
    pub namespace: String,
}

impl Default for KubeconfigOptions {
    fn default() -> Self {
        Self {
            file_name: "kubeconfig".to_string(),
            auth: KubeconfigAuth::Token,
            host: "127.0.0.1".to_string(),
            namespace: "default".to_string(),
        }
    }
}

/// Faults, latency and the request log.
#[derive(Default)]
struct Control {
    faults: Vec<ActiveFault>,
    next_fault: u64,
    latency: Duration,
    /// The most recent requests; `requests[0]` has sequence number `first_seq`.
    requests: VecDeque<RecordedRequest>,
    first_seq: u64,
    max_recorded: usize,
    /// Exact counts by (method, path), never truncated.
    counts: BTreeMap<(String, String), usize>,
}

/// What the fault table decided for one request.
pub(crate) struct FaultDecision {
    /// Total added latency.
    pub(crate) delay: Duration,
    /// Non-terminal actions to run before handling (DeleteTarget, BumpResourceVersion).
    pub(crate) before: Vec<FaultAction>,
    /// The terminal action, if any (an error, a 429, a dropped connection).
    pub(crate) answer: Option<FaultAction>,
}

/// The store, held by a watch's task.
pub(crate) struct StoreHandle(Arc<Mutex<Store>>);

impl StoreHandle {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.0)
    }
}

/// State shared by the control API and the request handlers.
pub(crate) struct Shared {
    store: Arc<Mutex<Store>>,
    control: Mutex<Control>,
    pub(crate) token: String,
    /// The token that replaced `token` ([`KubeApiServer::rotate_token`]): then only it is
    /// accepted, as a cluster that rotated a service account's token accepts only the new one.
    pub(crate) rotated: Mutex<Option<String>>,
    pub(crate) require_auth: bool,
    pub(crate) addr: SocketAddr,
    log_requests: bool,
    /// TLS connections accepted so far.
    pub(crate) connections_accepted: std::sync::atomic::AtomicU64,
    /// CertificateSigningRequests and their signer.
    csrs: Arc<Mutex<csr::Csrs>>,
    /// Who each request authenticated as (the latest [`MAX_AUTHENTICATIONS`]).
    authentications: Mutex<VecDeque<Authentication>>,
}

/// Bound on the authentications kept.
const MAX_AUTHENTICATIONS: usize = 10_000;

/// Who one request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// The HTTP method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The identity.
    pub who: Identity,
}

/// What a verified client certificate says: user (CN), groups (O) and the end of its validity.
#[derive(Clone, Debug)]
pub(crate) struct CertIdentity {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    pub(crate) not_after: std::time::SystemTime,
}

impl CertIdentity {
    /// From the DER certificate the TLS handshake verified.
    fn from_der(der: &[u8]) -> Option<Self> {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())?
            .to_string();
        let groups = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        let secs = cert.validity().not_after.timestamp().max(0) as u64;
        Some(Self {
            user,
            groups,
            not_after: std::time::UNIX_EPOCH + Duration::from_secs(secs),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub(crate) fn csrs(&self) -> MutexGuard<'_, csr::Csrs> {
        lock(&self.csrs)
    }

    /// The CSRs, for a task that outlives the request (a watch).
    pub(crate) fn csr_handle(&self) -> Arc<Mutex<csr::Csrs>> {
        self.csrs.clone()
    }

    pub(crate) fn record_authentication(&self, method: &str, path: &str, who: &Identity) {
        let mut log = lock(&self.authentications);
        if log.len() >= MAX_AUTHENTICATIONS {
            log.pop_front();
        }
        log.push_back(Authentication {
            method: method.to_string(),
            path: path.to_string(),
            who: who.clone(),
        });
    }

    /// The store, for a task that outlives the request (a watch).
    pub(crate) fn store_handle(&self) -> StoreHandle {
        StoreHandle(self.store.clone())
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    /// Counts a request and appends it to the log, returning its sequence number.
    pub(crate) fn record_request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        version: hyper::Version,
        connection: u64,
    ) -> u64 {
        let mut c = self.control();
        *c.counts
            .entry((method.to_string(), path.to_string()))
            .or_insert(0) += 1;
        let seq = c.first_seq + c.requests.len() as u64;
        if c.max_recorded == 0 {
            c.first_seq += 1;
            return seq;
        }
        if c.requests.len() >= c.max_recorded {
            c.requests.pop_front();
            c.first_seq += 1;
        }
        c.requests.push_back(RecordedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status: 0,
            version: format!("{version:?}"),
            connection,
        });
        seq
    }

    /// Fills in the status answered to request `seq` (if it is still in the log).
    pub(crate) fn set_request_status(&self, seq: u64, status: u16) {
        let mut c = self.control();
        let Some(offset) = seq.checked_sub(c.first_seq) else {
            return;
        };
        if let Some(r) = usize::try_from(offset)
            .ok()
            .and_then(|i| c.requests.get_mut(i))
        {
            r.status = status;
        }
    }

    pub(crate) fn log(&self, method: &str, path: &str, query: &str, status: u16) {
        if self.log_requests {
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            eprintln!(
                "kube-api-standin {}: {method} {path}{q} -> {status}",
                self.addr
            );
        }
    }

    /// Walks the faults in order, consuming counts: delays add up, DeleteTarget and
    /// BumpResourceVersion are collected, and the first terminal action ends the walk.
    pub(crate) fn take_faults(&self, method: &str, path: &str) -> FaultDecision {
        let mut c = self.control();
        let mut decision = FaultDecision {
            delay: c.latency,
            before: Vec::new(),
            answer: None,
        };
        for active in c.faults.iter_mut() {
            if !active.fault.matches(method, path) {
                continue;
            }
            active.hits += 1;
            if let Some(n) = active.fault.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
            match &active.fault.action {
                FaultAction::Delay(d) => decision.delay += *d,
                action @ (FaultAction::DeleteTarget | FaultAction::BumpResourceVersion) => {
                    decision.before.push(action.clone());
                }
                action => {
                    decision.answer = Some(action.clone());
                    break;
                }
            }
        }
        decision
    }
}

/// Commands to the server thread.
enum Command {
    Outage(std::sync::mpsc::Sender<io::Result<()>>),
    Restore(std::sync::mpsc::Sender<io::Result<()>>),
    Shutdown,
}

/// A running Kubernetes API stand-in. Dropping it stops the server and joins its thread.
pub struct KubeApiServer {
    shared: Arc<Shared>,
    pki: Pki,
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for KubeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiServer")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

fn random_token(store: &mut Store) -> String {
    store.new_uid().replace('-', "")
}

impl KubeApiServer {
    /// Starts a server on an ephemeral port of 127.0.0.1 with a random token.
    pub fn start() -> Result<Self> {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with explicit options.
    pub fn start_with(options: ServerOptions) -> Result<Self> {
        let pki = Pki::generate()?;
        let acceptor = TlsAcceptor::from(pki.server_config()?);
        let port = options.port;
        let netns = options.netns.clone();
        let listener = std::thread::spawn(move || -> Result<std::net::TcpListener> {
            if let Some(ns) = &netns {
                enter_netns(ns)?;
            }
            std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("binding 127.0.0.1:{port}"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the bind thread panicked"))??;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut store = Store::new();
        let token = options
            .token
            .clone()
            .unwrap_or_else(|| random_token(&mut store));
        let shared = Arc::new(Shared {
            store: Arc::new(Mutex::new(store)),
            control: Mutex::new(Control {
                max_recorded: options.max_recorded_requests,
                ..Control::default()
            }),
            token,
            rotated: Mutex::new(None),
            require_auth: options.require_auth,
            addr,
            log_requests: options.log_requests,
            connections_accepted: Default::default(),
            csrs: Arc::new(Mutex::new(csr::Csrs::new(
                pki.ca_pem.clone(),
                pki.ca_key_pem.clone(),
            ))),
            authentications: Mutex::default(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the stand-in's tokio runtime")?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let thread_shared = shared.clone();
        let netns = options.netns.clone();
        let thread = std::thread::Builder::new()
            .name(format!("kube-api-standin-{}", addr.port()))
            .spawn(move || {
                if let Some(ns) = &netns {
                    if let Err(e) = enter_netns(ns) {
                        eprintln!("kube-api-standin: {e:#}; re-binds after an outage will fail");
                    }
                }
                runtime.block_on(run(thread_shared, acceptor, listener, command_rx));
                // Dropping the runtime here cancels whatever is left.
            })
            .context("spawning the stand-in thread")?;
        Ok(Self {
            shared,
            pki,
            commands,
            thread: Some(thread),
        })
    }

    /// The listening address (stays the same across outages).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// From now on accept only `token` (the one [`Self::token`] returned is refused).
    pub fn rotate_token(&self, token: &str) {
        *lock(&self.shared.rotated) = Some(token.to_string());
    }

    /// Whether `token` is the one accepted now.
    pub(crate) fn accepts(shared: &Shared, token: &str) -> bool {
        match lock(&shared.rotated).as_deref() {
            Some(current) => token == current,
            None => token == shared.token,
        }
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// A client certificate (PEM, CN system:node:standin) the server accepts as authentication.
    pub fn client_cert_pem(&self) -> &str {
        &self.pki.client_cert_pem
    }

    /// The client certificate's private key (PEM, PKCS#8).
    pub fn client_key_pem(&self) -> &str {
        &self.pki.client_key_pem
    }

    // ---- certificate signing requests and authentication ----

    /// Whether new CSRs are approved (and, for kubernetes.io/kube-apiserver-client, signed) as
    /// they are created (the default), or wait for [`Self::approve_csr`].
    pub fn set_csr_auto_approve(&self, auto: bool) {
        self.shared.csrs().auto_approve = auto;
    }

    /// Caps the lifetime of the certificates signed from now on (the signer's
    /// `--cluster-signing-duration`); `None`: what the request asks (`expirationSeconds`).
    pub fn set_csr_signing_duration(&self, max: Option<Duration>) {
        self.shared.csrs().max_duration = max;
    }

    /// Approves a CSR and signs it with the CA; returns the object.
    pub fn approve_csr(&self, name: &str) -> Result<Value> {
        self.shared
            .csrs()
            .approve(name)
            .map_err(|e| anyhow!("{}", e.message))
    }

    /// Denies a CSR.
    pub fn deny_csr(&self, name: &str, message: &str) -> Result<Value> {
        self.shared
            .csrs()
            .deny(name, message)
            .map_err(|e| anyhow!("{}", e.message))
    }

    /// The CSRs, by name.
    pub fn csrs(&self) -> Vec<Value> {
        self.shared.csrs().list()
    }

    /// Who each request (other than /version and health) authenticated as, oldest first.
    pub fn authentications(&self) -> Vec<Authentication> {
        lock(&self.shared.authentications).iter().cloned().collect()
    }

    /// The kubeconfig document with the CA embedded, as a JSON value (written as JSON, which
    /// every kubeconfig reader accepts: YAML is a superset of it).
    pub fn kubeconfig(&self, options: &KubeconfigOptions) -> Value {
        let b64 = |pem: &str| BASE64.encode(pem.as_bytes());
        let mut user = Map::new();
        match options.auth {
            KubeconfigAuth::Token | KubeconfigAuth::TokenAndClientCert => {
                user.insert("token".into(), json!(self.shared.token));
            }
            KubeconfigAuth::WrongToken => {
                user.insert("token".into(), json!("wrong-token"));
            }
            KubeconfigAuth::ClientCert | KubeconfigAuth::None => {}
        }
        if matches!(
            options.auth,
            KubeconfigAuth::ClientCert | KubeconfigAuth::TokenAndClientCert
        ) {
            user.insert(
                "client-certificate-data".into(),
                json!(b64(&self.pki.client_cert_pem)),
            );
            user.insert(
                "client-key-data".into(),
                json!(b64(&self.pki.client_key_pem)),
            );
        }
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {
                "server": format!("https://{}:{}", options.host, self.shared.addr.port()),
                "certificate-authority-data": b64(&self.pki.ca_pem),
            }}],
            "contexts": [{"name": "standin", "context": {
                "cluster": "standin",
                "user": "standin",
                "namespace": options.namespace,
            }}],
            "current-context": "standin",
            "users": [{"name": "standin", "user": user}],
            "preferences": {},
        })
    }

    /// Writes `<dir>/kubeconfig` (token auth, CA embedded) and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> Result<PathBuf> {
        self.write_kubeconfig_with(dir, &KubeconfigOptions::default())
    }

    /// Writes a kubeconfig as described by `options` into `dir` and returns its path.
    pub fn write_kubeconfig_with(
        &self,
        dir: &Path,
        options: &KubeconfigOptions,
    ) -> Result<PathBuf> {
        let path = dir.join(&options.file_name);
        let mut text = serde_json::to_string_pretty(&self.kubeconfig(options))?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Writes a service-account directory (`token`, `ca.crt`, `namespace`) as mounted at
    /// /var/run/secrets/kubernetes.io/serviceaccount, for the in-cluster configuration path;
    /// pair it with KUBERNETES_SERVICE_HOST=127.0.0.1 and KUBERNETES_SERVICE_PORT=[`Self::addr`]'s port.
    pub fn write_service_account(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("token"), &self.shared.token)?;
        std::fs::write(dir.join("ca.crt"), &self.pki.ca_pem)?;
        std::fs::write(dir.join("namespace"), "default")?;
        Ok(dir.to_path_buf())
    }

    /// Stops the server and joins its thread (what Drop does).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn command(
        &self,
        make: impl FnOnce(std::sync::mpsc::Sender<io::Result<()>>) -> Command,
    ) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| anyhow!("the stand-in has stopped"))?;
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("the stand-in did not answer"))?
            .map_err(Into::into)
    }

    /// Full outage: closes the listener (new connections are refused) and every open
    /// connection. Returns once that is done. The store is kept.
    pub fn begin_outage(&self) -> Result<()> {
        self.command(Command::Outage)
    }

    /// Forgets the watch history (as etcd's compaction does): a watch that resumes from an
    /// earlier resourceVersion gets 410 Expired and must relist.
    pub fn compact_watch_history(&self) {
        self.shared.store().compact();
    }

    /// Ends an outage: listens again on the same address.
    pub fn end_outage(&self) -> Result<()> {
        self.command(Command::Restore)
    }

    // ---- faults and accounting ----

    /// Adds a fault; faults are tried in the order added. Returns its id.
    pub fn inject(&self, fault: Fault) -> FaultId {
        let mut c = self.shared.control();
        c.next_fault += 1;
        let id = FaultId(c.next_fault);
        c.faults.push(ActiveFault { id, fault, hits: 0 });
        id
    }

    /// Removes one fault; false if it was not there.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        let mut c = self.shared.control();
        let before = c.faults.len();
        c.faults.retain(|f| f.id != id);
        c.faults.len() != before
    }

    /// Removes every fault and the global latency.
    pub fn clear_faults(&self) {
        let mut c = self.shared.control();
        c.faults.clear();
        c.latency = Duration::ZERO;
    }

    /// How many requests a fault has applied to (0 once removed).
    pub fn fault_hits(&self, id: FaultId) -> u64 {
        self.shared
            .control()
            .faults
            .iter()
            .find(|f| f.id == id)
            .map_or(0, |f| f.hits)
    }

    /// Latency added to every request (Duration::ZERO to remove).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.control().latency = latency;
    }

    /// The requests received so far, oldest first (including faulted and unauthorized ones;
    /// at most [`ServerOptions::max_recorded_requests`] of the latest).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.control().requests.iter().cloned().collect()
    }

    /// How many requests had this method (case-insensitive; "*" for any) and a path matching
    /// `path_pattern` (see [`Fault::path`] for the glob syntax).
    pub fn request_count(&self, method: &str, path_pattern: &str) -> usize {
        let method = method.to_ascii_uppercase();
        self.shared
            .control()
            .counts
            .iter()
            .filter(|((m, p), _)| (method == "*" || *m == method) && glob_match(path_pattern, p))
            .map(|(_, n)| n)
            .sum()
    }

    /// Request counts by "METHOD path".
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        self.shared
            .control()
            .counts
            .iter()
            .map(|((m, p), n)| (format!("{m} {p}"), *n))
            .collect()
    }

    /// Forgets the request log and the counts.
    pub fn reset_requests(&self) {
        let mut c = self.shared.control();
        let dropped = c.requests.len() as u64;
        c.requests.clear();
        c.first_seq += dropped;
        c.counts.clear();
    }

    // ---- the store, directly ----

    /// Stores a pod as given (a given uid is kept) and returns it with its system fields.
    pub fn create_pod(&self, seed: PodSeed) -> Result<Value> {
        self.create_object(Resource::Pods, seed.to_object())
    }

    /// Stores a NetworkAttachmentDefinition and returns it.
    pub fn create_nad(&self, seed: NadSeed) -> Result<Value> {
        self.create_object(Resource::NetworkAttachmentDefinitions, seed.to_object())
    }

    /// Stores any served object (metadata.namespace defaults to "default").
    pub fn create_object(&self, resource: Resource, object: Value) -> Result<Value> {
        self.shared
            .store()
            .seed(resource.rtype(), object)
            .map_err(|e| anyhow!("seeding {:?}: {}", resource, e.message))
    }

    /// One object straight from the store.
    pub fn get_object(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store()
            .get(resource.rtype(), namespace, name)
            .ok()
    }

    /// Objects of a type, in one namespace or all.
    pub fn list_objects(&self, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
        self.shared
            .store()
            .list(resource.rtype(), namespace)
            .cloned()
            .collect()
    }

    /// Changes a stored object in place, as another writer would (bumps its resourceVersion).
    pub fn modify_object(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        self.shared
            .store()
            .modify(resource.rtype(), namespace, name, change)
            .map_err(|e| anyhow!("{}", e.message))
    }

    /// Deletes an object at once (no finalizers, no preconditions); false if absent.
    pub fn delete_object(&self, resource: Resource, namespace: &str, name: &str) -> bool {
        self.shared
            .store()
            .remove(resource.rtype(), namespace, name)
            .is_some()
    }

    /// A pod straight from the store.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.get_object(Resource::Pods, namespace, name)
    }

    /// A NetworkAttachmentDefinition straight from the store.
    pub fn nad(&self, namespace: &str, name: &str) -> Option<Value> {
        self.get_object(Resource::NetworkAttachmentDefinitions, namespace, name)
    }

    /// A pod's annotations straight from the store (`None` if the pod does not exist).
    pub fn pod_annotations(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let pod = self.pod(namespace, name)?;
        let mut out = BTreeMap::new();
        if let Some(Value::Object(map)) = pod.pointer("/metadata/annotations") {
            for (k, v) in map {
                if let Some(v) = v.as_str() {
                    out.insert(k.clone(), v.to_string());
                }
            }
        }
        Some(out)
    }

    /// One pod annotation straight from the store.
    pub fn pod_annotation(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        self.pod_annotations(namespace, name)?.remove(key)
    }

    /// Sets (`Some`) or removes (`None`) a pod annotation as another writer would, bumping the
    /// resourceVersion (to provoke conflicts).
    pub fn set_pod_annotation(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<Value> {
        self.modify_object(Resource::Pods, namespace, name, |pod| {
            let Some(map) = pod.as_object_mut() else {
                return;
            };
            let meta = map.entry("metadata").or_insert_with(|| json!({}));
            let Some(meta) = meta.as_object_mut() else {
                return;
            };
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            let Some(annotations) = annotations.as_object_mut() else {
                return;
            };
            match value {
                Some(v) => {
                    annotations.insert(key.to_string(), Value::String(v.to_string()));
                }
                None => {
                    annotations.remove(key);
                }
            }
        })
    }

    /// Deletes a pod at once; false if it did not exist.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> bool {
        self.delete_object(Resource::Pods, namespace, name)
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().revision()
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The server thread's main loop: accept connections until told otherwise.
async fn run(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    listener: std::net::TcpListener,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut serving = match TcpListener::from_std(listener) {
        Ok(l) => Some(spawn_accept(l, acceptor.clone(), shared.clone())),
        Err(e) => {
            eprintln!("kube-api-standin: cannot use the listener: {e}");
            None
        }
    };
    while let Some(command) = commands.recv().await {
        match command {
            Command::Outage(ack) => {
                if let Some(accept) = serving.take() {
                    accept.stop().await;
                }
                let _ = ack.send(Ok(()));
            }
            Command::Restore(ack) => {
                if serving.is_none() {
                    match rebind(shared.addr).await {
                        Ok(l) => serving = Some(spawn_accept(l, acceptor.clone(), shared.clone())),
                        Err(e) => {
                            let _ = ack.send(Err(e));
                            continue;
                        }
                    }
                }
                let _ = ack.send(Ok(()));
            }
            Command::Shutdown => break,
        }
    }
    if let Some(accept) = serving.take() {
        accept.stop().await;
    }
}

/// Binds the same address again (SO_REUSEADDR, so lingering TIME_WAIT sockets do not block it).
async fn rebind(addr: SocketAddr) -> io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    Err(last.unwrap_or_else(|| io::Error::other("bind failed")))
}

/// A running accept loop.
struct Accepting {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Accepting {
    /// Closes the listener and every connection, and waits until they are closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn spawn_accept(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) -> Accepting {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        connections.spawn(serve_connection(tcp, acceptor.clone(), shared.clone()));
                    }
                    // Out of descriptors or similar: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections.shutdown().await;
    });
    Accepting { stop, task }
}

async fn serve_connection(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    // The verifier accepted it (signed by the CA); who it names, and until when.
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| CertIdentity::from_der(der))
        .map(Arc::new);
    let connection = shared
        .connections_accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let service = hyper::service::service_fn(move |req| {
        http::handle(shared.clone(), client_cert.clone(), connection, req)
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::KubeApiServer>();
    }
}
