//! The daemon's HTTP/1.1 server on `<socketDir>/multus.sock`: routes (`/cni`, `/healthz`,
//! `/readyz`), the peer check (SO_PEERCRED uid 0 only), the connection limit, the bounded queue
//! of calls waiting for a slot, and the drain after SIGTERM.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value};
use tokio::{net::UnixListener, sync::Semaphore};

use super::{
    api::{self, CacheState, CallCount, CniRequest, DaemonStatus},
    config::DaemonConfig,
    handler::{self, Outcome},
    kube::Caches,
    metrics::Metrics,
};
use crate::{
    cni::{Command, ErrorCode},
    metaplugin::Services,
};

/// State shared by every connection.
pub struct Shared {
    /// The daemon configuration's whole file (overlaid onto every call).
    pub overlay: Map<String, Value>,
    /// Whether startup finished (the socket is served and the caches had their chance to sync).
    pub started: AtomicBool,
    /// Set on SIGTERM: `/readyz` fails and new calls other than DEL are refused.
    pub draining: AtomicBool,
    /// Calls running or waiting.
    pub in_flight: AtomicUsize,
    /// Calls waiting for a slot.
    pub waiting: AtomicUsize,
    /// Slots for running calls.
    pub slots: Arc<Semaphore>,
    /// Bound on `waiting`.
    pub queue_limit: usize,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// What calls borrow: the API client and the watch caches.
    pub services: Services,
    /// The watch caches (also in `services`), for `/status` and metrics.
    pub caches: Option<Arc<Caches>>,
    /// Why the daemon is not ready, by concern (auto-configuration, ...): `/readyz` fails while
    /// any is set.
    not_ready: Mutex<BTreeMap<&'static str, String>>,
    /// Why the daemon is not ready although it still serves calls (those that need what is
    /// missing fail on their own): `/readyz` fails while any is set, `/cni` does not refuse.
    not_ready_serving: Mutex<BTreeMap<&'static str, String>>,
    /// Missing node prerequisites that disable a feature only, by prerequisite.
    degraded: Mutex<BTreeMap<&'static str, String>>,
}

impl Shared {
    /// State for `conf`, lending `services` to every call.
    pub fn new(
        conf: &DaemonConfig,
        metrics: Arc<Metrics>,
        services: Services,
        caches: Option<Arc<Caches>>,
    ) -> Shared {
        Shared {
            overlay: conf.raw.clone(),
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            slots: Arc::new(Semaphore::new(conf.max_concurrent_calls)),
            queue_limit: conf.queue_limit,
            metrics,
            services,
            caches,
            not_ready: Mutex::default(),
            not_ready_serving: Mutex::default(),
            degraded: Mutex::default(),
        }
    }

    /// Sets (or, with `None`, clears) the reason `key` keeps the daemon from being ready.
    pub fn set_not_ready(&self, key: &'static str, reason: Option<String>) {
        let mut map = self.not_ready.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(r) => map.insert(key, r),
            None => map.remove(key),
        };
    }

    /// Sets (or, with `None`, clears) a reason `/readyz` fails for while calls are still served
    /// (the per-node certificate not yet issued: config-only networks need no API).
    pub fn set_not_ready_serving(&self, key: &'static str, reason: Option<String>) {
        let mut map = self
            .not_ready_serving
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(r) => map.insert(key, r),
            None => map.remove(key),
        };
    }

    /// Sets (or clears) a degradation: a feature that will not work, readiness unaffected.
    pub fn set_degraded(&self, key: &'static str, reason: Option<String>) {
        let mut map = self.degraded.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(r) => map.insert(key, r),
            None => map.remove(key),
        };
    }

    /// The reasons `/readyz` fails, a drain included.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = Vec::new();
        if !self.started.load(Ordering::SeqCst) {
            reasons.push("starting".into());
        }
        if self.draining.load(Ordering::SeqCst) {
            reasons.push("draining: SIGTERM received".into());
        }
        let map = self.not_ready.lock().unwrap_or_else(|e| e.into_inner());
        reasons.extend(map.iter().map(|(k, v)| format!("{k}: {v}")));
        let map = self
            .not_ready_serving
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        reasons.extend(map.iter().map(|(k, v)| format!("{k}: {v}")));
        reasons
    }

    /// The degradations.
    pub fn degraded_reasons(&self) -> Vec<String> {
        let map = self.degraded.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| format!("{k}: {v}")).collect()
    }

    /// The caches' states.
    pub fn cache_status(&self) -> Vec<CacheState> {
        self.caches.as_ref().map(|c| c.status()).unwrap_or_default()
    }

    /// What `GET /status` answers (and `multusctl daemon` shows).
    pub fn status(&self) -> DaemonStatus {
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            ready: self.is_ready(),
            draining: self.draining.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::SeqCst),
            kubernetes: self.services.kube.is_some(),
            caches: self.cache_status(),
            calls: self
                .metrics
                .calls()
                .into_iter()
                .map(|(command, code, count)| CallCount {
                    command: command.into(),
                    code,
                    count,
                })
                .collect(),
            not_ready: self.not_ready_reasons(),
            degraded: self.degraded_reasons(),
        }
    }

    /// Whether `/readyz` answers 200: the daemon takes new calls and nothing it needs is missing.
    pub fn is_ready(&self) -> bool {
        self.takes_calls()
            && self
                .not_ready_serving
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    /// Whether new calls are taken (started, not draining, no blocking reason set).
    pub fn takes_calls(&self) -> bool {
        self.started.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
            && self
                .not_ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>, json: bool) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if json {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// Accepts connections until `stop` resolves, then drains: keeps answering (so shims see
/// `/readyz` fail, calls other than DEL are refused unprocessed, and DELs still run) until no call
/// is in flight and no accepted connection is open, or `drain` has passed. A connection accepted
/// but not yet read is open, not in flight: exiting then would close it unanswered, and its shim
/// could not tell whether the call ran. So once no call is in flight the listener is shut for
/// reading: from then on a connect is refused (the shim waits for the next daemon, as when none
/// runs) instead of queued where no accept would take it, and the connections already queued are
/// accepted and answered before the daemon exits.
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    connection_limit: Option<usize>,
    stop: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let limit = Arc::new(Semaphore::new(
        connection_limit.unwrap_or(Semaphore::MAX_PERMITS),
    ));
    tokio::pin!(stop);
    let open = Arc::new(AtomicUsize::new(0));
    let mut deadline: Option<Instant> = None;
    let mut shut = false;
    // One timer for the whole drain: a sleep made afresh on each turn of the loop would never
    // fire while connections keep arriving faster than it (probes, shims retrying), and the
    // drain would then never end, its deadline included.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (permit, accepted) = tokio::select! {
            biased;
            _ = &mut stop, if deadline.is_none() => {
                tracing::info!("SIGTERM: /readyz fails from now on; waiting for the calls in flight");
                shared.draining.store(true, Ordering::SeqCst);
                deadline = Some(Instant::now() + drain);
                continue;
            }
            _ = tick.tick(), if deadline.is_some() => {
                let in_flight = shared.in_flight.load(Ordering::SeqCst);
                if in_flight == 0 && !shut {
                    match refuse_new_connections(&listener) {
                        Ok(()) => shut = true,
                        Err(e) => tracing::warn!("cannot shut the daemon socket for new connections: {e}"),
                    }
                }
                if shut {
                    // The backlog: connections queued before the shutdown, which no accept took.
                    let mut queued = 0;
                    loop {
                        match accept_queued(&listener) {
                            Ok(Some(stream)) => {
                                spawn_connection(stream, None, shared.clone(), open.clone());
                                queued += 1;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!("accept on the shut daemon socket failed: {e}");
                                break;
                            }
                        }
                    }
                    if queued == 0
                        && open.load(Ordering::SeqCst) == 0
                        && shared.in_flight.load(Ordering::SeqCst) == 0
                    {
                        return;
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    tracing::warn!(in_flight, "drain deadline passed; exiting with calls in flight (their cache entries let the runtime's DEL clean up)");
                    return;
                }
                continue;
            }
            // Never polled once shut: a shut listener stays readable, and tokio's accept would
            // wake on it without end.
            a = accept_within(&listener, &limit), if !shut => a,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("accept on the daemon socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        spawn_connection(stream, permit, shared.clone(), open.clone());
    }
}

/// Shuts the listening socket for reading: the kernel refuses every later connect
/// (ECONNREFUSED) while the connections already queued can still be accepted.
fn refuse_new_connections(listener: &UnixListener) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: shutdown(2) on a descriptor the listener owns and keeps open; no memory is passed.
    if unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Takes one connection from a shut listener's queue without waiting (`None`: the queue is
/// empty). accept4(2) directly: tokio's accept is not polled on a shut listener.
fn accept_queued(listener: &UnixListener) -> std::io::Result<Option<tokio::net::UnixStream>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    loop {
        // SAFETY: accept4(2) with no address buffer on a descriptor the listener owns; the
        // descriptor it returns is new and owned by the stream made from it below.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by accept4 and nothing else owns it.
            let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
            return tokio::net::UnixStream::from_std(std_stream).map(Some);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Counts an open connection until its task ends (however it ends).
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one accepted connection (one request: keep-alive is off) on a task of its own.
fn spawn_connection(
    stream: tokio::net::UnixStream,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    shared: Arc<Shared>,
    open: Arc<AtomicUsize>,
) {
    open.fetch_add(1, Ordering::SeqCst);
    let counted = OpenConnection(open);
    tokio::spawn(async move {
        let _permit = permit;
        let _counted = counted;
        let peer_uid = stream.peer_cred().map(|c| c.uid()).ok();
        let svc = hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(route(req, &shared, peer_uid).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), svc);
        if let Err(e) = conn.await {
            tracing::debug!("connection ended with an error: {e}");
        }
    });
}

/// Waits for a free connection slot, then for a connection (both cancel-safe).
async fn accept_within(
    listener: &UnixListener,
    limit: &Arc<Semaphore>,
) -> (
    Option<tokio::sync::OwnedSemaphorePermit>,
    std::io::Result<tokio::net::UnixStream>,
) {
    let permit = limit.clone().acquire_owned().await.ok();
    let accepted = listener.accept().await.map(|(s, _)| s);
    (permit, accepted)
}

/// Whether a peer may use the API: root only (the socket's 0600 mode says the same; this holds
/// even when the file's mode or directory were loosened).
pub fn peer_allowed(uid: Option<u32>) -> bool {
    uid == Some(0)
}

async fn route(req: Request<Incoming>, shared: &Shared, peer_uid: Option<u32>) -> Reply {
    if !peer_allowed(peer_uid) {
        tracing::warn!(?peer_uid, "refused a peer that is not root");
        shared.metrics.refused_peer();
        let who = peer_uid.map_or("unknown".to_string(), |u| u.to_string());
        return reply(
            StatusCode::FORBIDDEN,
            format!("forbidden: the peer's uid {who} is not 0\n"),
            false,
        );
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let probe = method == Method::GET || method == Method::POST;
    match path.as_str() {
        api::CNI_PATH if method == Method::POST => cni(req, shared).await,
        api::HEALTH_PATH if probe => reply(StatusCode::OK, Bytes::new(), true),
        api::READY_PATH if probe => {
            // The body says why (the kubelet shows a probe's body in its events).
            let body = |key: &str, reasons: Vec<String>| {
                if reasons.is_empty() {
                    Bytes::new()
                } else {
                    Bytes::from(
                        serde_json::to_vec(&serde_json::json!({ key: reasons }))
                            .unwrap_or_default(),
                    )
                }
            };
            if shared.is_ready() {
                reply(
                    StatusCode::OK,
                    body("degraded", shared.degraded_reasons()),
                    true,
                )
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    body("notReady", shared.not_ready_reasons()),
                    true,
                )
            }
        }
        api::STATUS_PATH if method == Method::GET => reply(
            StatusCode::OK,
            serde_json::to_vec(&shared.status()).unwrap_or_default(),
            true,
        ),
        api::CNI_PATH | api::HEALTH_PATH | api::READY_PATH | api::STATUS_PATH => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed\n",
            false,
        ),
        "/delegate" => reply(
            StatusCode::BAD_REQUEST,
            handler::refusal(
                ErrorCode::UnsupportedField,
                "this daemon does not implement the /delegate (hot-plug) endpoint",
                b"",
            ),
            true,
        ),
        _ => reply(StatusCode::NOT_FOUND, "404 page not found\n", false),
    }
}

/// Decrements a counter when dropped.
struct Count<'a>(&'a AtomicUsize);
impl<'a> Count<'a> {
    fn up(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        Count(c)
    }
}
impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn cni(req: Request<Incoming>, shared: &Shared) -> Reply {
    let _in_flight = Count::up(&shared.in_flight);
    let started = Instant::now();
    let bad = |msg: String| {
        reply(
            StatusCode::BAD_REQUEST,
            handler::refusal(ErrorCode::DecodingFailure, msg, b""),
            true,
        )
    };
    let body = match Limited::new(req.into_body(), api::MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(format!("cannot read the request body: {e}")),
    };
    let request: CniRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("the request is not a multus-shim request: {e}")),
    };
    let command = handler::command_of(&request);
    let label = command.map_or("unknown", Command::as_str);
    // Not ready (draining after SIGTERM, or a /readyz reason such as no usable primary network):
    // calls other than DEL are refused unprocessed; the shim then waits for /readyz.
    if !shared.takes_calls() && command != Some(Command::Del) {
        shared.metrics.call(label, 11, started.elapsed());
        let msg = if shared.draining.load(Ordering::SeqCst) {
            "multus-daemon is shutting down; try again when its successor is ready".to_string()
        } else {
            format!(
                "multus-daemon is not ready ({}); try again later",
                shared.not_ready_reasons().join("; ")
            )
        };
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            handler::refusal(ErrorCode::TryAgainLater, msg, &request.config),
            true,
        );
    }
    let permit = {
        let waiting = Count::up(&shared.waiting);
        if shared.waiting.load(Ordering::SeqCst) > shared.queue_limit {
            drop(waiting);
            shared.metrics.call(label, 11, started.elapsed());
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                handler::refusal(
                    ErrorCode::TryAgainLater,
                    format!(
                        "multus-daemon has {} calls waiting (requestQueueLimit); try again later",
                        shared.queue_limit
                    ),
                    &request.config,
                ),
                true,
            );
        }
        shared.slots.clone().acquire_owned().await
    };
    let Ok(permit) = permit else {
        return bad("the daemon is stopping".into());
    };
    let overlay = shared.overlay.clone();
    let services = shared.services.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _slot = permit;
        handler::handle(&request, &overlay, &services)
    })
    .await;
    match outcome {
        Ok(Outcome::Ok(body)) => {
            shared.metrics.call(label, 0, started.elapsed());
            reply(StatusCode::OK, body, true)
        }
        Ok(Outcome::Failed(body)) => {
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_u64())
                .unwrap_or(999);
            shared.metrics.call(label, code, started.elapsed());
            reply(StatusCode::BAD_REQUEST, body, true)
        }
        Err(e) => {
            shared.metrics.call(label, 999, started.elapsed());
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                handler::refusal(
                    ErrorCode::Plugin(999),
                    format!("internal error: the call panicked ({e}); see the daemon's log"),
                    b"",
                ),
                true,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_peers_are_allowed() {
        assert!(peer_allowed(Some(0)));
        assert!(!peer_allowed(Some(65534)));
        assert!(!peer_allowed(None));
    }

    #[test]
    fn readiness_waits_for_every_reason_and_degradations_do_not_block() {
        let conf = DaemonConfig::parse(b"{}").unwrap();
        let shared = Shared::new(&conf, Arc::default(), Services::default(), None);
        assert!(!shared.is_ready());
        assert_eq!(shared.not_ready_reasons(), vec!["starting".to_string()]);
        shared.started.store(true, Ordering::SeqCst);
        shared.set_not_ready("configuration", Some("no primary network".into()));
        shared.set_degraded("netns", Some("/run/netns does not exist".into()));
        assert!(!shared.is_ready());
        assert_eq!(
            shared.status().not_ready,
            vec!["configuration: no primary network".to_string()]
        );
        shared.set_not_ready("configuration", None);
        assert!(shared.is_ready());
        // A reason that fails /readyz but still lets calls in (a pending per-node certificate).
        shared.set_not_ready_serving("per-node certificate", Some("waiting for CSR c1".into()));
        assert!(!shared.is_ready() && shared.takes_calls());
        assert_eq!(
            shared.not_ready_reasons(),
            vec!["per-node certificate: waiting for CSR c1".to_string()]
        );
        shared.set_not_ready_serving("per-node certificate", None);
        assert!(shared.is_ready());
        assert_eq!(
            shared.status().degraded,
            vec!["netns: /run/netns does not exist".to_string()]
        );
        shared.draining.store(true, Ordering::SeqCst);
        assert!(!shared.is_ready());
        assert_eq!(
            shared.not_ready_reasons(),
            vec!["draining: SIGTERM received".to_string()]
        );
    }
}
