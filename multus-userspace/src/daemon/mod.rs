//! `multus-daemon`, the thick mode's per-node process: it reads the daemon configuration, serves
//! the reference's HTTP API on `<socketDir>/multus.sock` and runs each call through the same
//! metaplugin code as the thin `multus` ([`crate::metaplugin::run_command`]). `multus-shim`
//! ([`crate::shim`]) is its client. Wire format: docs/daemon-api.md.

pub mod api;
pub mod autoconf;
pub mod config;
pub mod handler;
pub mod kube;
pub mod metrics;
pub mod prereq;
pub mod sbr_metrics;
pub mod server;

use std::{
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use config::DaemonConfig;
use server::Shared;

use crate::logging;

/// The drain bound after SIGTERM when the configuration sets no `delegateTimeoutSeconds`.
const DEFAULT_DRAIN: Duration = Duration::from_secs(60);

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] config::DaemonConfigError),
    /// Not running as root.
    #[error("multus-daemon must run as root (uid 0), not uid {0}")]
    NotRoot(u32),
    /// The socket directory or socket could not be prepared.
    #[error("cannot prepare the socket {path}: {source}")]
    Socket {
        /// What was being prepared.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics port could not be bound.
    #[error("cannot serve metrics on port {port}: {source}")]
    Metrics {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// `perNodeCertificate` cannot be used.
    #[error("perNodeCertificate: {0}")]
    NodeCertificate(String),
}

/// Runs the daemon with the configuration at `config_path` until SIGTERM (or SIGINT) and the
/// drain that follows.
pub fn run(config_path: &Path) -> Result<(), DaemonError> {
    let conf = DaemonConfig::load(config_path)?;
    init_logging(&conf);
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        return Err(DaemonError::NotRoot(uid));
    }
    if let Some(root) = &conf.chroot_dir {
        crate::delegate::exec::set_plugin_root(root);
        tracing::info!(root = %root.display(), "delegates run chrooted");
    }
    // ebpf-sbr steps (and sbr steps under ebpfSbr.replaceSbr, which the plan renames) run in this
    // process: no plugin process per step; the programs are loaded at start and held while the
    // daemon runs (hold_sbr_programs).
    crate::delegate::exec::set_in_process(vec![(
        crate::sbrplugin::chain::EBPF_SBR,
        Box::new(crate::sbrplugin::SbrPlugin),
    )]);
    let socket = conf.socket_path();
    prepare_socket_dir(&conf.socket_dir).map_err(|source| DaemonError::Socket {
        path: conf.socket_dir.display().to_string(),
        source,
    })?;
    let listener = bind(&socket).map_err(|source| DaemonError::Socket {
        path: socket.display().to_string(),
        source,
    })?;
    let bound = socket_identity(&socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(conf.max_concurrent_calls + 4)
        .build()
        .map_err(DaemonError::Runtime)?;
    let drain = conf
        .raw
        .get("delegateTimeoutSeconds")
        .and_then(serde_json::Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_DRAIN);
    runtime.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(listener).map_err(|source| DaemonError::Socket {
                path: socket.display().to_string(),
                source,
            })?;
        let metrics = Arc::new(metrics::Metrics::default());
        let observed = metrics.clone();
        crate::delegate::exec::set_observer(Box::new(move |plugin, command, elapsed| {
            observed.delegate_call(plugin, command.as_str(), elapsed)
        }));
        let (services, caches, node_cert) = connect_kubernetes(&conf, &metrics).await?;
        let shared = Arc::new(Shared::new(&conf, metrics, services, caches));
        if let Some(start) = node_cert {
            start.spawn(shared.clone());
        }
        if let Some(port) = conf.metrics_port {
            let tcp = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .map_err(|source| DaemonError::Metrics { port, source })?;
            let sbr = sbr_metrics::SbrSource::from_overlay(&conf.raw);
            tokio::spawn(serve_metrics(tcp, shared.clone(), sbr));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(DaemonError::Runtime)?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(DaemonError::Runtime)?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        prereq::report(&prereq::check(&prereq::Paths::from_config(&conf)), &shared);
        let sbr_hold = hold_sbr_programs(&conf, &shared);
        // The runtime's configuration, kept up to date on a detached thread (it may wait for
        // the primary network, and must not hold up the exit); readiness waits for it.
        autoconf::start(&conf, shared.clone());
        shared.started.store(true, Ordering::SeqCst);
        tracing::info!(socket = %socket.display(), "multus-daemon serving");
        let limit = conf.connection_limit.map(|n| n as usize);
        server::serve(listener, shared.clone(), limit, stop, drain).await;
        if let Some(hold) = sbr_hold {
            if let Err(e) = hold.release() {
                tracing::warn!("ebpf-sbr: releasing the programs' hold failed: {e}");
            }
        }
        Ok::<_, DaemonError>(())
    })?;
    // The socket goes so that shims see "down" at once; 00-multus.conf stays (pods created during
    // a restart wait at the shim instead of starting without their networks).
    if bound.is_some() && socket_identity(&socket) == bound {
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("multus-daemon stopped");
    Ok(())
}

/// When the configuration has an `ebpfSbr` section: loads the ebpf-sbr programs (in its bpffs
/// directory) and holds them while the daemon runs, so that an in-process SBR step only attaches. A node that cannot
/// load them is degraded, not down: the steps then fail on their own, with the reason.
fn hold_sbr_programs(conf: &DaemonConfig, shared: &Shared) -> Option<crate::sbr::Hold> {
    // Only a node configured for it (the section names the bpffs directory, `replaceSbr`, ...):
    // elsewhere SBR is never loaded on the daemon's account.
    conf.raw.get("ebpfSbr")?;
    let cfg = sbr_metrics::SbrSource::from_overlay(&conf.raw).cfg;
    match crate::sbr::hold(&cfg) {
        Ok(hold) => {
            tracing::info!(
                version = hold.version(),
                loaded = hold.loaded,
                bpffs = %cfg.bpffs_dir.display(),
                "ebpf-sbr programs held for in-process steps"
            );
            shared.set_degraded(SBR_HOLD, None);
            Some(hold)
        }
        Err(e) => {
            tracing::warn!(
                "ebpf-sbr programs not loaded at start ({e}); SBR steps will try at each pod"
            );
            shared.set_degraded(SBR_HOLD, Some(format!("ebpf-sbr programs not loaded: {e}")));
            None
        }
    }
}

/// The degraded reason of programs that could not be held.
const SBR_HOLD: &str = "ebpf-sbr";

/// What [`connect_kubernetes`] gives back: the services calls borrow, the watch caches, and the
/// per-node certificate's manager to start once readiness can be reported.
type Kubernetes = (
    crate::metaplugin::Services,
    Option<Arc<kube::Caches>>,
    Option<NodeCertStart>,
);

/// The API client and watch caches, when the configuration (`perNodeCertificate`, `kubeconfig`)
/// or the in-cluster environment gives API access. A failure here is logged, not fatal: the
/// daemon serves config-only networks without the API, and calls that need it fail on their own.
/// Only an unusable `perNodeCertificate` (no node name, no bootstrap kubeconfig) stops the start,
/// as in the reference.
async fn connect_kubernetes(
    conf: &DaemonConfig,
    metrics: &Arc<metrics::Metrics>,
) -> Result<Kubernetes, DaemonError> {
    use crate::kube::client::{client_for, config_for};
    // The daemon's own environment: which node it serves.
    let node = std::env::var("MULTUS_NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty());
    let mut node_cert = None;
    let client = if let Some(settings) = &conf.node_certificate {
        let (client, start) = node_certificate_client(settings, node.as_deref()).await?;
        node_cert = Some(start);
        Ok(client)
    } else {
        let kubeconfig = conf
            .raw
            .get("kubeconfig")
            .and_then(serde_json::Value::as_str)
            .map(std::path::PathBuf::from);
        match config_for(kubeconfig.as_deref()).await {
            Ok(Some(config)) => client_for(config),
            Ok(None) => {
                tracing::info!("no kubeconfig and no in-cluster environment: config-only networks");
                return Ok(Default::default());
            }
            Err(e) => Err(e),
        }
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}; serving without the Kubernetes API");
            return Ok(Default::default());
        }
    };
    if node.is_none() {
        tracing::warn!("MULTUS_NODE_NAME is not set: no pod cache, every ADD GETs its pod");
    }
    let caches = kube::Caches::start(&client, node.as_deref(), metrics.clone());
    let services = crate::metaplugin::Services {
        kube: Some(crate::metaplugin::SharedKube {
            client,
            handle: tokio::runtime::Handle::current(),
            cache: Some(caches.clone() as Arc<dyn crate::kube::client::ObjectCache>),
        }),
    };
    Ok((services, Some(caches), node_cert))
}

/// The readiness key of the per-node certificate.
const NODE_CERT: &str = "per-node certificate";

/// The per-node certificate's manager, started once the daemon's state exists.
struct NodeCertStart {
    settings: crate::kube::node_cert::Settings,
    node: String,
    bootstrap: ::kube::Config,
    slot: crate::kube::node_cert::IdentitySlot,
    stored: Option<crate::kube::node_cert::Pair>,
}

impl NodeCertStart {
    /// Runs the manager on the current runtime; until a certificate is in use `/readyz` names
    /// what is awaited (calls are still served: config-only networks need no API).
    fn spawn(self, shared: Arc<Shared>) {
        if self.stored.is_none() {
            shared.set_not_ready_serving(NODE_CERT, Some("requesting a certificate".into()));
        }
        let report = Box::new(move |reason: Option<String>| {
            shared.set_not_ready_serving(NODE_CERT, reason);
        });
        tokio::spawn(crate::kube::node_cert::run(
            self.settings,
            self.node,
            self.bootstrap,
            self.slot,
            self.stored,
            report,
        ));
    }
}

/// The API client of `perNodeCertificate`: the bootstrap kubeconfig's cluster, with the stored
/// pair as identity when it is still valid, else none until the CSR is signed.
async fn node_certificate_client(
    settings: &crate::kube::node_cert::Settings,
    node: Option<&str>,
) -> Result<(::kube::Client, NodeCertStart), DaemonError> {
    use crate::kube::node_cert::{self, Decision};
    let node = node.ok_or_else(|| {
        DaemonError::NodeCertificate(
            "the node name is needed for the certificate's subject: set MULTUS_NODE_NAME".into(),
        )
    })?;
    let bootstrap =
        match crate::kube::client::config_for(Some(&settings.bootstrap_kubeconfig)).await {
            Ok(Some(config)) => config,
            Ok(None) => {
                return Err(DaemonError::NodeCertificate(
                    "\"bootstrapKubeconfig\" is empty".into(),
                ))
            }
            Err(e) => {
                return Err(DaemonError::NodeCertificate(format!(
                    "\"bootstrapKubeconfig\": {e}"
                )))
            }
        };
    let slot = node_cert::IdentitySlot::default();
    let (stored, pair) = node_cert::read_stored(&settings.cert_dir);
    let reusable = matches!(
        node_cert::decide(&stored, std::time::SystemTime::now()),
        Decision::Reuse { .. }
    );
    let pair = pair.filter(|_| reusable);
    match &pair {
        Some(pair) => {
            let client = crate::kube::client::client_for(node_cert::config_with(&bootstrap, pair))
                .map_err(|e| DaemonError::NodeCertificate(e.to_string()))?;
            slot.install(client);
            tracing::info!(dir = %settings.cert_dir.display(), "reusing the stored per-node certificate");
        }
        None => tracing::info!(?stored, "requesting a per-node certificate"),
    }
    let client = slot.client(&bootstrap.default_namespace);
    Ok((
        client,
        NodeCertStart {
            settings: settings.clone(),
            node: node.to_string(),
            bootstrap,
            slot,
            stored: pair,
        },
    ))
}

/// Sets up logging as the configuration says (also used before serving, by the installation at
/// start).
pub fn init_logging(conf: &DaemonConfig) {
    let checked = crate::config::LogLevel::from_key(conf.log_level.as_deref());
    let level = *checked.as_ref().unwrap_or(&crate::config::LogLevel::Error);
    let rotation = logging::Rotation::from_options(None);
    let file = conf.log_file.as_deref().map(|path| logging::LogFile {
        path,
        rotation: &rotation,
    });
    logging::init(level, file, conf.log_to_stderr);
    // Once, though logging is set up twice when the daemon installs the binaries first.
    static REPORTED: std::sync::Once = std::sync::Once::new();
    if let Err(typo) = checked {
        REPORTED.call_once(|| tracing::error!("{typo}; logging errors only"));
    }
}

/// Makes `dir` a root-owned 0700 directory (created when missing) and removes a stale socket in
/// it. An existing directory is kept, not emptied (a misconfigured `socketDir` such as `/run`
/// must not lose its content); a symlink or other file in its place is refused.
fn prepare_socket_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => {
            if m.uid() != 0 {
                return Err(std::io::Error::other(format!(
                    "{} is owned by uid {}, not root",
                    dir.display(),
                    m.uid()
                )));
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a directory (a symlink is not followed)",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        }
        Err(e) => return Err(e),
    }
    let socket = dir.join(api::SOCKET_NAME);
    match std::fs::symlink_metadata(&socket) {
        Ok(_) => {
            // A socket something accepts connections on is another daemon's (started twice by
            // hand, or a second configuration naming the same socketDir): taking it over would
            // leave that daemon serving no one, and whichever stops first would remove the
            // other's socket. A socket nothing answers on is a stopped daemon's: replaced.
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "another multus-daemon serves {}; stop it first (two daemons cannot share a socketDir)",
                        socket.display()
                    ),
                ));
            }
            std::fs::remove_file(&socket)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The bound socket's identity: at the exit the path is removed only while it is still this
/// daemon's socket (never a successor's, bound over it meanwhile).
fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn bind(socket: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    let listener = std::os::unix::net::UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    sbr: sbr_metrics::SbrSource,
) {
    use http_body_util::Full;
    use hyper::{Response, StatusCode};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        let sbr = sbr.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let shared = shared.clone();
                let sbr = sbr.clone();
                async move {
                    let mut r = if req.uri().path() == "/metrics" {
                        // The BPF maps are read with blocking syscalls.
                        let sbr_text = tokio::task::spawn_blocking(move || sbr.render())
                            .await
                            .unwrap_or_default();
                        let mut text = shared.metrics.render(
                            shared.in_flight.load(Ordering::SeqCst),
                            shared.waiting.load(Ordering::SeqCst),
                            shared.is_ready(),
                            &shared.cache_status(),
                        );
                        text.push_str(&sbr_text);
                        let mut r = Response::new(Full::new(bytes::Bytes::from(text)));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        Response::new(Full::new(bytes::Bytes::from_static(
                            b"404 page not found\n",
                        )))
                    };
                    if req.uri().path() != "/metrics" {
                        *r.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
