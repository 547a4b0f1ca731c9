//! A small synchronous face over the `kube` client: pod and NAD reads and pod annotation patches,
//! each retried on transient failures (connection refused or reset, 5xx, 429, and 409 for patches)
//! until a deadline, so a CNI call is never held longer than configured. Pod events are sent once,
//! without retries: they are best-effort (a long-lived process sends them in the background).

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
    Api, Client, Config,
};
use serde_json::{json, Map, Value};

/// Failures talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig (or in-cluster configuration) could not be loaded.
    #[error("cannot configure the Kubernetes client from {source_name}: {reason}")]
    Config {
        /// Where the configuration came from.
        source_name: String,
        /// What failed.
        reason: String,
    },
    /// The API answered with a non-retriable error.
    #[error("Kubernetes API {operation}: {status} {reason}: {message}")]
    Api {
        /// What was attempted.
        operation: String,
        /// HTTP status.
        status: u16,
        /// Kubernetes reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// Transient failures lasted past the deadline.
    #[error("Kubernetes API {operation}: no answer within {deadline:?} ({attempts} attempts; last error: {last})")]
    Deadline {
        /// What was attempted.
        operation: String,
        /// The deadline.
        deadline: Duration,
        /// Attempts made.
        attempts: u32,
        /// The last error seen.
        last: String,
    },
    /// The server's TLS certificate is not trusted by the configured CA (a kubeconfig of
    /// another cluster, a CA rotated on one side only): retrying cannot help.
    #[error("Kubernetes API {operation}: the server's TLS certificate cannot be verified with the kubeconfig's certificate authority ({reason}); check certificate-authority(-data) in the kubeconfig")]
    Certificate {
        /// What was attempted.
        operation: String,
        /// The TLS library's reason.
        reason: String,
    },
    /// The tokio runtime could not start.
    #[error("cannot start the Kubernetes client runtime: {0}")]
    Runtime(std::io::Error),
}

/// A Kubernetes API client for one CNI call.
pub struct KubeClient {
    runtime: Executor,
    client: Client,
    cache: Option<std::sync::Arc<dyn ObjectCache>>,
}

/// Bound on batches of pod events a long-lived process sends in the background at once.
pub const BACKGROUND_EVENT_BATCHES: usize = 256;
/// Batches of pod events being sent in the background.
static EVENT_BATCHES: AtomicUsize = AtomicUsize::new(0);

/// Where the client's futures run: its own runtime (the thin binary, one call per process), or
/// a long-lived process's runtime (the daemon: connections outlive the call).
enum Executor {
    Own(tokio::runtime::Runtime),
    Shared(tokio::runtime::Handle),
}

impl Executor {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Executor::Own(rt) => rt.block_on(f),
            Executor::Shared(h) => h.block_on(f),
        }
    }
}

/// Objects a long-lived process keeps in watch caches, consulted before a GET.
pub trait ObjectCache: Send + Sync {
    /// The pod, when the cache holds it with exactly this UID.
    fn pod(&self, namespace: &str, name: &str, uid: &str) -> Option<Pod>;
    /// The NetworkAttachmentDefinition, when the cache has synced and holds it.
    fn nad(&self, namespace: &str, name: &str) -> Option<DynamicObject>;
    /// Called after each API request with what it was and how long it took, for metrics.
    fn api_call(&self, _operation: &'static str, _elapsed: Duration) {}
}

/// The NetworkAttachmentDefinition resource.
pub fn nad_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"),
        "network-attachment-definitions",
    )
}

/// The client configuration from `kubeconfig`, or from the in-cluster environment when no path
/// is given and `KUBERNETES_SERVICE_HOST` is set; `Ok(None)` when neither is available.
pub async fn config_for(kubeconfig: Option<&Path>) -> Result<Option<Config>, KubeError> {
    let kubeconfig = kubeconfig.filter(|p| !p.as_os_str().is_empty());
    if kubeconfig.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        return Ok(None);
    }
    let mut config = match kubeconfig {
        Some(path) => {
            let source_name = path.display().to_string();
            let file = Kubeconfig::read_from(path).map_err(|e| KubeError::Config {
                source_name: source_name.clone(),
                reason: kubeconfig_reason(&e),
            })?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Config {
                    source_name,
                    reason: kubeconfig_reason(&e),
                })?
        }
        None => Config::incluster().map_err(|e| KubeError::Config {
            source_name: "the in-cluster environment".into(),
            reason: e.to_string(),
        })?,
    };
    // Our own bounded retries decide; kube's built-in retry would wait out Retry-After for
    // up to 1000 s on a 429.
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(1));
    Ok(Some(config))
}

/// A client for `config` (inside a runtime context). A token file (the in-cluster
/// configuration's, or a kubeconfig's `tokenFile`) is handled by [`TokenFile`] rather than by
/// kube, which re-reads it only once a minute.
pub fn client_for(mut config: Config) -> Result<Client, KubeError> {
    let token_file = match config.auth_info.token_file.take() {
        Some(path) if config.auth_info.token.is_none() => Some(TokenFile::new(path.into())),
        _ => None,
    };
    let token_layer = tower::util::option_layer(token_file.map(|token| {
        tower::util::MapRequestLayer::new(move |mut req: http::Request<kube::client::Body>| {
            if let Some(value) = token.header() {
                req.headers_mut().insert(http::header::AUTHORIZATION, value);
            }
            req
        })
    }));
    if config.proxy_url.is_some() {
        // Through a proxy: kube's own stack (HTTP/1.1), which knows the proxy protocols.
        let builder =
            kube::client::ClientBuilder::try_from(config).map_err(|e| KubeError::Config {
                source_name: "kubeconfig".into(),
                reason: e.to_string(),
            })?;
        return Ok(builder.with_layer(&token_layer).build());
    }
    http2_client(config, token_layer)
}

/// How often an idle HTTP/2 connection to the API is pinged, and how long a ping may go
/// unanswered before the connection is dropped (the next request opens a new one): a dead API
/// server or a silent network path is noticed within this bound instead of at the next request's
/// deadline.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// kube's client stack (base URI, authentication, extra headers) over a connector that offers
/// HTTP/2 by ALPN, as kubectl and the kubelet do: a long-lived process (the daemon) sends its
/// GETs, PATCHes, events and watches as streams of one connection instead of a pool of HTTP/1.1
/// connections (one per watch, one per concurrent call). A server that answers only HTTP/1.1 is
/// still spoken to in HTTP/1.1.
fn http2_client<L>(config: Config, token_layer: L) -> Result<Client, KubeError>
where
    L: tower::Layer<
        tower::util::BoxCloneSyncService<
            http::Request<kube::client::Body>,
            http::Response<hyper::body::Incoming>,
            tower::BoxError,
        >,
    >,
    L::Service: tower::Service<
            http::Request<kube::client::Body>,
            Response = http::Response<hyper::body::Incoming>,
            Error = tower::BoxError,
        > + Send
        + 'static,
    <L::Service as tower::Service<http::Request<kube::client::Body>>>::Future: Send + 'static,
{
    use hyper_util::{
        client::legacy::{connect::HttpConnector, Client as HyperClient},
        rt::{TokioExecutor, TokioTimer},
    };
    use kube::client::ConfigExt;
    use tower::{ServiceBuilder, ServiceExt};

    let config_error = |reason: String| KubeError::Config {
        source_name: "kubeconfig".into(),
        reason,
    };
    let tls = config
        .rustls_client_config()
        .map_err(|e| config_error(e.to_string()))?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| config_error(format!("tls-server-name {name:?}: {e}")))?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let connector = https.enable_http1().enable_http2().wrap_connector(http);
    let hyper: HyperClient<_, kube::client::Body> = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(connector);
    let auth = config
        .auth_layer()
        .map_err(|e| config_error(e.to_string()))?;
    let headers = config
        .extra_headers_layer()
        .map_err(|e| config_error(e.to_string()))?;
    let inner = tower::util::BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(auth)
            .layer(headers)
            .service(hyper.map_err(tower::BoxError::from))
            .map_err(tower::BoxError::from),
    );
    Ok(Client::new(
        token_layer.layer(inner),
        config.default_namespace.clone(),
    ))
}

/// A bearer token read from a file, re-read whenever the file's identity (device, inode, size,
/// modification time, following symlinks) changes: a projected service-account token rotates by
/// a symlink swap or a rewrite, and the request right after it carries the new token. One
/// `stat` per request; the token is never logged.
#[derive(Clone)]
pub struct TokenFile {
    path: std::path::PathBuf,
    cached: std::sync::Arc<std::sync::Mutex<Option<(FileIdentity, http::HeaderValue)>>>,
}

type FileIdentity = (u64, u64, u64, i64, i64);

impl TokenFile {
    /// A token read from `path`.
    pub fn new(path: std::path::PathBuf) -> Self {
        TokenFile {
            path,
            cached: Default::default(),
        }
    }

    /// The `Authorization` header for the file's current token; the last good one when the file
    /// cannot be read now (a rotation in progress), `None` when it never could.
    pub fn header(&self) -> Option<http::HeaderValue> {
        use std::os::unix::fs::MetadataExt;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let identity = std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
            .ok();
        if let (Some(id), Some((seen, value))) = (identity, cached.as_ref()) {
            if *seen == id {
                return Some(value.clone());
            }
        }
        let fresh = identity.and_then(|id| {
            let token = std::fs::read_to_string(&self.path).ok()?;
            let token = token.trim();
            if token.is_empty() {
                return None;
            }
            let mut value = http::HeaderValue::try_from(format!("Bearer {token}")).ok()?;
            value.set_sensitive(true);
            Some((id, value))
        });
        match fresh {
            Some(entry) => {
                if cached.is_some() {
                    tracing::info!(file = %self.path.display(), "the API token file changed; using the new token");
                }
                let value = entry.1.clone();
                *cached = Some(entry);
                Some(value)
            }
            None => {
                tracing::warn!(file = %self.path.display(), "cannot read the API token file; keeping the last token read");
                cached.as_ref().map(|(_, v)| v.clone())
            }
        }
    }
}

enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(KubeError),
}

impl KubeClient {
    /// A client from `kubeconfig`, or from the in-cluster environment when no path is given and
    /// `KUBERNETES_SERVICE_HOST` is set; `Ok(None)` when neither is available.
    pub fn connect(kubeconfig: Option<&Path>) -> Result<Option<KubeClient>, KubeError> {
        let kubeconfig = kubeconfig.filter(|p| !p.as_os_str().is_empty());
        if kubeconfig.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(KubeError::Runtime)?;
        let Some(config) = runtime.block_on(config_for(kubeconfig))? else {
            return Ok(None);
        };
        let client = {
            let _guard = runtime.enter();
            client_for(config)?
        };
        Ok(Some(KubeClient {
            runtime: Executor::Own(runtime),
            client,
            cache: None,
        }))
    }

    /// A client for one call of a long-lived process: `client`'s connections and `handle`'s
    /// runtime are the process's; `cache` answers before a GET. Must be used from a thread that
    /// is not a runtime worker (the daemon runs calls on blocking threads).
    pub fn shared(
        client: Client,
        handle: tokio::runtime::Handle,
        cache: Option<std::sync::Arc<dyn ObjectCache>>,
    ) -> KubeClient {
        KubeClient {
            runtime: Executor::Shared(handle),
            client,
            cache,
        }
    }

    /// The pod from the cache when it holds it with `uid`, else GETs it (a static pod, a pod
    /// newer than the cache, or no cache); `Ok(None)` when it does not exist.
    pub fn get_pod_for(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        deadline: Instant,
    ) -> Result<Option<Pod>, KubeError> {
        if let Some(pod) = self
            .cache
            .as_ref()
            .filter(|_| !uid.is_empty())
            .and_then(|c| c.pod(namespace, name, uid))
        {
            return Ok(Some(pod));
        }
        let started = Instant::now();
        let pod = self.get_pod(namespace, name, deadline);
        self.note("GET pod", started);
        pod
    }

    fn note(&self, operation: &'static str, started: Instant) {
        if let Some(c) = &self.cache {
            c.api_call(operation, started.elapsed());
        }
    }

    /// GETs a pod; `Ok(None)` when it does not exist.
    pub fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<Pod>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        self.get_opt(&api, &format!("pod {namespace}/{name}"), name, deadline)
    }

    /// A NetworkAttachmentDefinition from the cache, else GET; `Ok(None)` when it does not exist.
    pub fn get_nad(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<DynamicObject>, KubeError> {
        if let Some(nad) = self.cache.as_ref().and_then(|c| c.nad(namespace, name)) {
            return Ok(Some(nad));
        }
        let started = Instant::now();
        let nad = self.get_nad_live(namespace, name, deadline);
        self.note("GET nad", started);
        nad
    }

    fn get_nad_live(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<DynamicObject>, KubeError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &nad_resource());
        self.get_opt(
            &api,
            &format!("network-attachment-definition {namespace}/{name}"),
            name,
            deadline,
        )
    }

    /// GETs `name` through `api` (`what` names it in errors), retrying transient failures;
    /// `Ok(None)` when it does not exist.
    fn get_opt<K>(
        &self,
        api: &Api<K>,
        what: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<K>, KubeError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.retry(&format!("GET {what}"), deadline, false, || {
            let api = api.clone();
            async move { api.get_opt(name).await }
        })
    }

    /// Sets (or, with `None`, removes) pod annotations with a merge patch, retrying conflicts.
    /// Returns false when the pod no longer exists.
    pub fn patch_pod_annotations(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, Option<String>)],
        deadline: Instant,
    ) -> Result<bool, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut map = Map::new();
        for (k, v) in annotations {
            map.insert(
                (*k).to_string(),
                v.clone().map(Value::from).unwrap_or(Value::Null),
            );
        }
        let patch = json!({"metadata": {"annotations": map}});
        let started = Instant::now();
        let outcome = self.retry(
            &format!("PATCH pod {namespace}/{name}"),
            deadline,
            true,
            || {
                let (api, patch) = (api.clone(), patch.clone());
                async move {
                    match api
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => Ok(Some(())),
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            },
        );
        self.note("PATCH pod", started);
        Ok(outcome?.is_some())
    }

    /// POSTs a core/v1 event into its namespace: one attempt, abandoned at `deadline` (events are
    /// best-effort; a retry would only hold the CNI call longer).
    pub fn create_event(&self, event: &Event, deadline: Instant) -> Result<(), KubeError> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let operation = format!("POST event in namespace {namespace}");
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(left, api.create(&PostParams::default(), event)).await
        });
        let failure = match outcome {
            Ok(Ok(_)) => return Ok(()),
            Err(_) => "timed out".to_string(),
            Ok(Err(e)) => match classify::<()>(&operation, e, false) {
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) => why,
                Attempt::Done(()) => return Ok(()),
            },
        };
        Err(KubeError::Deadline {
            operation,
            deadline: left,
            attempts: 1,
            last: failure,
        })
    }

    /// Sends `events` best-effort, in order, each before `deadline`; the first failure ends the
    /// attempt (logged). A long-lived process (the daemon) sends them in the background, so the
    /// CNI call does not wait for them; at most [`BACKGROUND_EVENT_BATCHES`] batches are in
    /// flight, more are dropped with a log line. A one-call process sends them before it returns.
    pub fn record_events(&self, pod: &str, events: Vec<Event>, deadline: Instant) {
        if events.is_empty() {
            return;
        }
        let Executor::Shared(handle) = &self.runtime else {
            self.send_events(pod, &events, deadline);
            return;
        };
        if EVENT_BATCHES.fetch_add(1, Ordering::SeqCst) >= BACKGROUND_EVENT_BATCHES {
            EVENT_BATCHES.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                pod,
                "too many pod events waiting for the API; these are dropped"
            );
            return;
        }
        let sender = KubeClient {
            runtime: Executor::Shared(handle.clone()),
            client: self.client.clone(),
            cache: self.cache.clone(),
        };
        let pod = pod.to_string();
        // The blocking send runs on a blocking thread of the runtime, off the call's path.
        handle.spawn_blocking(move || {
            sender.send_events(&pod, &events, deadline);
            EVENT_BATCHES.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn send_events(&self, pod: &str, events: &[Event], deadline: Instant) {
        for event in events {
            if let Err(e) = self.create_event(event, deadline) {
                let reason = event.reason.as_deref().unwrap_or_default();
                tracing::warn!(pod, reason, "pod event not recorded: {e}");
                return;
            }
        }
    }

    fn retry<T, F, Fut>(
        &self,
        operation: &str,
        deadline: Instant,
        retry_conflict: bool,
        mut call: F,
    ) -> Result<T, KubeError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut pause = Duration::from_millis(25);
        let mut last = String::from("no attempt made");
        loop {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return Err(KubeError::Deadline {
                    operation: operation.to_string(),
                    deadline: deadline.saturating_duration_since(started),
                    attempts,
                    last,
                });
            };
            attempts += 1;
            let outcome = self
                .runtime
                .block_on(async { tokio::time::timeout(left, call()).await });
            let step = match outcome {
                Err(_) => Attempt::Retry("timed out".into()),
                Ok(Ok(v)) => Attempt::Done(v),
                Ok(Err(e)) => classify(operation, e, retry_conflict),
            };
            match step {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) => {
                    tracing::debug!(operation, attempt = attempts, "retrying: {why}");
                    last = why;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }
}

/// Why a kubeconfig is unusable, in one line: the kube crate prints the path Debug-quoted inside
/// its own quotes, and YAML errors with a multi-line source excerpt.
fn kubeconfig_reason(e: &KubeconfigError) -> String {
    match e {
        KubeconfigError::ReadConfig(io, _) => format!("cannot read it: {io}"),
        KubeconfigError::Parse(yaml) => {
            let text = yaml.to_string();
            let first = text.lines().next().unwrap_or_default();
            format!(
                "not a kubeconfig (YAML): {}",
                first.strip_prefix("error: ").unwrap_or(first)
            )
        }
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn classify<T>(operation: &str, e: kube::Error, retry_conflict: bool) -> Attempt<T> {
    match e {
        kube::Error::Api(s) => {
            let transient = s.code == 429 || s.code >= 500 || (retry_conflict && s.code == 409);
            if transient {
                Attempt::Retry(format!("{} {}", s.code, s.message))
            } else {
                Attempt::Fail(KubeError::Api {
                    operation: operation.to_string(),
                    status: s.code,
                    reason: s.reason.clone(),
                    message: s.message.clone(),
                })
            }
        }
        kube::Error::HyperError(e) => transport(operation, &e),
        kube::Error::Service(e) => transport(operation, e.as_ref()),
        kube::Error::ReadEvents(e) => transport(operation, &e),
        other => Attempt::Fail(KubeError::Api {
            operation: operation.to_string(),
            status: 0,
            reason: "ClientError".into(),
            message: other.to_string(),
        }),
    }
}

/// A failure below HTTP (connect, TLS, a connection closed mid-answer): retried, with its
/// whole chain of causes in the message (hyper's own text alone, "client error (Connect)",
/// names none), except an untrusted server certificate, which no retry cures.
fn transport<T>(operation: &str, e: &(dyn std::error::Error + 'static)) -> Attempt<T> {
    let chain = error_chain(e);
    match certificate_failure(&chain) {
        Some(reason) => Attempt::Fail(KubeError::Certificate {
            operation: operation.to_string(),
            reason: reason.to_string(),
        }),
        None => Attempt::Retry(chain),
    }
}

/// `e` and its sources, each once, joined by ": ".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        // Wrappers often repeat their source's text.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// The part of a transport failure's chain that says the server's certificate is not trusted
/// (rustls: "invalid peer certificate: UnknownIssuer", "... BadSignature", ...).
fn certificate_failure(chain: &str) -> Option<&str> {
    chain
        .find("invalid peer certificate")
        .map(|at| &chain[at..])
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    #[test]
    fn an_untrusted_certificate_is_named_and_not_retried() {
        let chain = "client error (Connect): invalid peer certificate: UnknownIssuer";
        assert_eq!(
            certificate_failure(chain),
            Some("invalid peer certificate: UnknownIssuer")
        );
        assert_eq!(
            certificate_failure("client error (Connect): Connection refused (os error 111)"),
            None
        );
    }

    #[test]
    fn the_chain_names_every_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (SendRequest)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other(
            "connection closed before message completed",
        ));
        assert_eq!(
            error_chain(&e),
            "client error (SendRequest): connection closed before message completed"
        );
        match transport::<()>("GET pod a/b", &e) {
            Attempt::Retry(why) => assert!(why.contains("connection closed"), "{why}"),
            _ => panic!("a closed connection is retried"),
        }
    }
}

#[cfg(test)]
mod token_file_tests {
    use super::TokenFile;

    #[test]
    fn the_header_after_a_rotation_carries_the_new_token() {
        let dir = tempfile::tempdir().unwrap();
        // A projected token: `token` -> `..data/token`, rotated by swapping `..data`.
        let data_a = dir.path().join("..2026_a");
        let data_b = dir.path().join("..2026_b");
        std::fs::create_dir(&data_a).unwrap();
        std::fs::create_dir(&data_b).unwrap();
        std::fs::write(data_a.join("token"), "first\n").unwrap();
        std::fs::write(data_b.join("token"), "second").unwrap();
        std::os::unix::fs::symlink("..2026_a", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).unwrap();
        let t = TokenFile::new(dir.path().join("token"));
        assert_eq!(t.header().unwrap(), "Bearer first");
        assert!(t.header().unwrap().is_sensitive());
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink("..2026_b", &tmp).unwrap();
        std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer second");
        // Gone for a moment: the last token is kept.
        std::fs::remove_file(dir.path().join("token")).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer second");
    }
}
