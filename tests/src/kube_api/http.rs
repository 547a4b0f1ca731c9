//! Request handling: accounting and faults, authentication, routing, the REST verbs, discovery
//! and server-side Table output.

use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::csr::Identity;
use super::faults::FaultAction;
use super::resources::{self, Resource, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{parse_rfc3339, PatchType, Subresource};
use super::Shared;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A watch's body: JSON events, one per line, as they happen.
pub(crate) type WatchBody = http_body_util::StreamBody<
    futures::stream::BoxStream<
        'static,
        Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
    >,
>;

/// The response body type: a whole document, or a watch's stream.
pub(crate) type Body = http_body_util::Either<Full<Bytes>, WatchBody>;

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::Left(Full::new(Bytes::from(bytes))));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

fn text_response(code: u16, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub(crate) fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = json_response(err.code, &err.to_status());
    if let Some(secs) = err.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    resp
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set); invalid escapes stay literal.
fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as decoded pairs.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Self {
        Self(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k, true), percent_decode(v, true))
                })
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }
}

/// What a path addresses.
enum Route {
    Root,
    Version,
    Health,
    ApiVersions,
    ResourceList(String, String),
    GroupList,
    Group(String),
    /// A namespaced collection; `None` namespace means across all namespaces.
    Collection(&'static ResourceType, Option<String>),
    Object(&'static ResourceType, String, String, Subresource),
    NotFound,
}

fn route(path: &str) -> Route {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] => Route::Root,
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz"] => Route::Health,
        ["api"] => Route::ApiVersions,
        ["api", v] => Route::ResourceList(String::new(), v.to_string()),
        ["apis"] => Route::GroupList,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let lookup = |plural: &str| ResourceType::lookup(group, version, plural);
    match rest {
        [plural] => match lookup(plural) {
            Some(rt) => Route::Collection(rt, None),
            None => Route::NotFound,
        },
        ["namespaces", ns, plural] => match lookup(plural) {
            Some(rt) => Route::Collection(rt, Some(ns.to_string())),
            None => Route::NotFound,
        },
        ["namespaces", ns, plural, name] => match lookup(plural) {
            Some(rt) => Route::Object(rt, ns.to_string(), name.to_string(), Subresource::Main),
            None => Route::NotFound,
        },
        ["namespaces", ns, plural, name, "status"] => match lookup(plural) {
            Some(rt) if rt.status_subresource => {
                Route::Object(rt, ns.to_string(), name.to_string(), Subresource::Status)
            }
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// Entry point for every request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    client_cert: Option<Arc<super::CertIdentity>>,
    connection: u64,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let method = req.method().as_str().to_ascii_uppercase();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let index = shared.record_request(&method, &path, &query, req.version(), connection);

    let decision = shared.take_faults(&method, &path);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let target = match route(&path) {
        Route::Object(rt, ns, name, _) => Some((rt, ns, name)),
        _ => None,
    };
    if let Some((rt, ns, name)) = &target {
        let mut store = shared.store();
        for action in &decision.before {
            // The object may be gone already; both actions then do nothing.
            match action {
                FaultAction::DeleteTarget => {
                    store.remove(rt, ns, name);
                }
                FaultAction::BumpResourceVersion => {
                    let _ = store.modify(rt, ns, name, |_| {});
                }
                _ => {}
            }
        }
    }
    let response = match decision.answer {
        Some(FaultAction::DropConnection) => {
            shared.log(&method, &path, &query, 0);
            return Err(DropConnection);
        }
        Some(FaultAction::Status(code)) => error_response(&ApiError::injected(
            code,
            target.as_ref().map(|(rt, _, n)| (*rt, n.as_str())),
        )),
        Some(FaultAction::TooManyRequests { retry_after_secs }) => {
            error_response(&ApiError::too_many_requests(retry_after_secs))
        }
        Some(FaultAction::StallWatch) if is_watch(&query) => stalled_watch(),
        Some(FaultAction::TruncateBody) => {
            truncated(guarded_dispatch(&shared, client_cert.as_deref(), req, &path, &query).await)
                .await
        }
        Some(
            FaultAction::Delay(_)
            | FaultAction::DeleteTarget
            | FaultAction::BumpResourceVersion
            | FaultAction::StallWatch,
        )
        | None => guarded_dispatch(&shared, client_cert.as_deref(), req, &path, &query).await,
    };
    let status = response.status().as_u16();
    shared.set_request_status(index, status);
    shared.log(&method, &path, &query, status);
    Ok(response)
}

/// [`dispatch`], a panic answered with a 500.
async fn guarded_dispatch(
    shared: &Shared,
    client_cert: Option<&super::CertIdentity>,
    req: Request<Incoming>,
    path: &str,
    query: &str,
) -> Response<Body> {
    let outcome = std::panic::AssertUnwindSafe(dispatch(shared, client_cert, req, path, query))
        .catch_unwind()
        .await;
    match outcome {
        Ok(resp) => resp,
        Err(_) => error_response(&ApiError::internal(
            "the stand-in panicked while handling the request",
        )),
    }
}

/// Whether the query asks for a watch.
fn is_watch(query: &str) -> bool {
    Query::parse(query)
        .get("watch")
        .is_some_and(|w| w == "true" || w == "1")
}

/// A watch's headers, then a body that never sends anything and never ends.
fn stalled_watch() -> Response<Body> {
    let stream =
        futures::stream::pending::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>()
            .boxed();
    let mut resp = Response::new(Body::Right(http_body_util::StreamBody::new(stream)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `resp` with its Content-Length announcing the whole body and only the first half of it
/// sent: hyper then closes the connection, which the client sees as a reset mid-body.
async fn truncated(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let whole = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return error_response(&ApiError::internal(format!("the body: {e}"))),
    };
    parts.headers.insert(
        hyper::header::CONTENT_LENGTH,
        HeaderValue::from(whole.len().max(2)),
    );
    let half = whole.slice(..whole.len() / 2);
    let stream = futures::stream::iter([Ok(hyper::body::Frame::data(half))]).boxed();
    Response::from_parts(parts, Body::Right(http_body_util::StreamBody::new(stream)))
}

/// Who the request authenticated as: a client certificate signed by the CA and valid now (checked
/// at every request, as kube-apiserver's x509 authenticator does, so a connection outliving its
/// certificate is refused), else the bearer token; `None`: 401.
fn authenticate(
    shared: &Shared,
    client_cert: Option<&super::CertIdentity>,
    req: &Request<Incoming>,
) -> Option<Identity> {
    if let Some(cert) = client_cert.filter(|c| std::time::SystemTime::now() <= c.not_after) {
        return Some(Identity {
            user: cert.user.clone(),
            groups: cert.groups.clone(),
            via: "client-certificate",
        });
    }
    let token_ok = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer")
                && super::KubeApiServer::accepts(shared, token.trim())
        });
    if token_ok {
        return Some(Identity {
            user: "system:serviceaccount:standin:token".into(),
            groups: vec!["system:authenticated".into()],
            via: "token",
        });
    }
    (!shared.require_auth).then(|| Identity {
        user: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
        via: "anonymous",
    })
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            413,
            "Request entity too large: limit is 3145728",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// The request's body as JSON.
pub(crate) async fn read_json(req: Request<Incoming>) -> Result<Value, ApiError> {
    parse_json(&read_body(req).await?)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

async fn dispatch(
    shared: &Shared,
    client_cert: Option<&super::CertIdentity>,
    req: Request<Incoming>,
    path: &str,
    query: &str,
) -> Response<Body> {
    let route = route(path);
    let public = matches!(route, Route::Version | Route::Health);
    let who = authenticate(shared, client_cert, &req);
    if !public {
        let Some(who) = who else {
            return error_response(&ApiError::unauthorized());
        };
        shared.record_authentication(req.method().as_str(), path, &who);
        if path.starts_with(super::csr::COLLECTION) {
            return super::csr::serve(shared, req, path, &Query::parse(query), &who)
                .await
                .unwrap_or_else(|e| error_response(&e));
        }
    }
    match serve(shared, req, route, Query::parse(query)).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

fn wants_table(req: &Request<Incoming>) -> Option<&'static str> {
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok())?;
    // The first acceptable media type wins, as in content negotiation.
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let base = params.first().copied().unwrap_or("");
        if base != "application/json" && base != "*/*" {
            continue;
        }
        if params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") {
            if params.contains(&"v=v1") {
                return Some("meta.k8s.io/v1");
            }
            if params.contains(&"v=v1beta1") {
                return Some("meta.k8s.io/v1beta1");
            }
            continue;
        }
        if params.iter().any(|p| p.starts_with("as=")) {
            continue;
        }
        return None;
    }
    None
}

async fn serve(
    shared: &Shared,
    req: Request<Incoming>,
    route: Route,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let only_get = |value: Value| {
        if method == Method::GET {
            Ok(json_response(200, &value))
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match route {
        Route::Root => {
            let paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/apis/k8s.cni.cncf.io",
                "/apis/k8s.cni.cncf.io/v1",
                "/healthz",
                "/livez",
                "/readyz",
                "/version",
            ];
            only_get(json!({ "paths": paths }))
        }
        Route::Version => only_get(json!({
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-standin",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        })),
        Route::Health => Ok(text_response(200, "ok")),
        Route::ApiVersions => only_get(resources::api_versions(&shared.addr.to_string())),
        Route::GroupList => only_get(resources::api_group_list()),
        Route::Group(g) => {
            resources::api_group_doc(&g).map_or(Err(ApiError::path_not_found()), only_get)
        }
        Route::ResourceList(g, v) => {
            resources::api_resource_list(&g, &v).map_or(Err(ApiError::path_not_found()), only_get)
        }
        Route::NotFound => Err(ApiError::path_not_found()),
        Route::Collection(rt, ns) => collection(shared, req, rt, ns, &query).await,
        Route::Object(rt, ns, name, sub) => object(shared, req, rt, &ns, &name, sub, &query).await,
    }
}

async fn collection(
    shared: &Shared,
    req: Request<Incoming>,
    rt: &'static ResourceType,
    ns: Option<String>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let table = wants_table(&req);
    match (req.method().clone(), ns) {
        (Method::GET, ns) => {
            let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), rt)
                .map_err(ApiError::bad_request)?;
            if matches!(query.get("watch"), Some("true" | "1")) {
                return super::watch::start(shared, rt, ns, labels, fields, query);
            }
            let limit: usize = match query.get("limit") {
                None | Some("") | Some("0") => usize::MAX,
                Some(l) => l
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            };
            let after = query.get("continue").filter(|c| !c.is_empty());
            let (items, revision) = {
                let store = shared.store();
                let items: Vec<Value> = store
                    .list(rt, ns.as_deref())
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .cloned()
                    .collect();
                (items, store.revision())
            };
            let continue_key = |o: &Value| {
                format!(
                    "{}/{}",
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                )
            };
            let start = match after {
                Some(token) => items
                    .iter()
                    .position(|o| continue_key(o).as_str() > token)
                    .unwrap_or(items.len()),
                None => 0,
            };
            let end = start.saturating_add(limit).min(items.len());
            let page: Vec<Value> = items[start..end].to_vec();
            let mut metadata = json!({ "resourceVersion": revision.to_string() });
            if end < items.len() {
                if let Some(last) = page.last() {
                    metadata["continue"] = json!(continue_key(last));
                    metadata["remainingItemCount"] = json!(items.len() - end);
                }
            }
            if let Some(table_version) = table {
                return Ok(json_response(
                    200,
                    &to_table(rt, &page, table_version, metadata, query),
                ));
            }
            let items: Vec<Value> = page
                .into_iter()
                .map(|mut o| {
                    if rt.builtin {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("kind");
                            m.remove("apiVersion");
                        }
                    }
                    o
                })
                .collect();
            Ok(json_response(
                200,
                &json!({ "kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": metadata, "items": items }),
            ))
        }
        (Method::POST, Some(ns)) => {
            let dry_run = query.dry_run();
            let body = parse_json(&read_body(req).await?)?;
            let created = shared.store().create(rt, &ns, body, dry_run)?;
            Ok(json_response(201, &created))
        }
        (Method::DELETE, Some(ns)) => {
            let dry_run = query.dry_run();
            let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
                .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), rt)
                .map_err(ApiError::bad_request)?;
            let mut store = shared.store();
            let names: Vec<String> = store
                .list(rt, Some(&ns))
                .filter(|o| labels.matches(o) && fields.matches(o))
                .filter_map(|o| {
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            let mut deleted = Vec::new();
            for name in names {
                deleted.push(store.delete(rt, &ns, &name, None, None, dry_run)?);
            }
            let revision = store.revision();
            Ok(json_response(
                200,
                &json!({ "kind": rt.list_kind, "apiVersion": rt.api_version(),
                         "metadata": { "resourceVersion": revision.to_string() }, "items": deleted }),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn object(
    shared: &Shared,
    req: Request<Incoming>,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    sub: Subresource,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let dry_run = query.dry_run();
    match req.method().clone() {
        Method::GET => {
            let table = wants_table(&req);
            let obj = shared.store().get(rt, ns, name)?;
            match table {
                Some(version) => {
                    let revision = obj
                        .pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null);
                    Ok(json_response(
                        200,
                        &to_table(
                            rt,
                            &[obj],
                            version,
                            json!({ "resourceVersion": revision }),
                            query,
                        ),
                    ))
                }
                None => Ok(json_response(200, &obj)),
            }
        }
        Method::PUT => {
            let body = parse_json(&read_body(req).await?)?;
            let updated = shared.store().update(rt, ns, name, body, sub, dry_run)?;
            Ok(json_response(200, &updated))
        }
        Method::PATCH => {
            let content_type = req
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let Some(patch_type) = PatchType::from_content_type(&content_type) else {
                return Err(ApiError::new(
                    415,
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{} (got {content_type:?})",
                        if rt.builtin { ", application/strategic-merge-patch+json" } else { "" }),
                ));
            };
            let body = read_body(req).await?;
            let patched = shared
                .store()
                .patch(rt, ns, name, patch_type, &body, sub, dry_run)?;
            Ok(json_response(200, &patched))
        }
        Method::DELETE if sub == Subresource::Main => {
            let body = read_body(req).await?;
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                parse_json(&body)?
            };
            let uid = options
                .pointer("/preconditions/uid")
                .and_then(Value::as_str);
            let rv = options
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let body_dry_run = options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"));
            let deleted = shared
                .store()
                .delete(rt, ns, name, uid, rv, dry_run || body_dry_run)?;
            Ok(json_response(200, &deleted))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// kubectl's human-readable durations ("45s", "3m20s", "5h", "2d3h").
pub(crate) fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match created {
        Some(c) => human_duration(now.saturating_sub(c)),
        None => "<unknown>".to_string(),
    }
}

fn column(name: &str, ty: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({ "name": name, "type": ty, "format": format, "description": description, "priority": priority })
}

/// The server-side printing kubectl asks for with `Accept: application/json;as=Table;...`.
fn to_table(
    rt: &ResourceType,
    objs: &[Value],
    api_version: &str,
    metadata: Value,
    query: &Query,
) -> Value {
    let name_col = column(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age_col = column("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");
    let columns = match rt.resource {
        Resource::Pods => vec![
            name_col,
            column(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            age_col,
            column("IP", "string", "", 1, "IP address allocated to the pod."),
            column(
                "Node",
                "string",
                "",
                1,
                "Name of the node this pod is assigned to.",
            ),
            column(
                "Nominated Node",
                "string",
                "",
                1,
                "Name of the node nominated by the scheduler.",
            ),
            column("Readiness Gates", "string", "", 1, "Pod readiness gates."),
        ],
        Resource::NetworkAttachmentDefinitions | Resource::Events => vec![name_col, age_col],
    };
    let include = query.get("includeObject").unwrap_or("Metadata");
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let name = o.pointer("/metadata/name").cloned().unwrap_or(json!(""));
            let cells = match rt.resource {
                Resource::Pods => {
                    let total = o
                        .pointer("/spec/containers")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let statuses = o
                        .pointer("/status/containerStatuses")
                        .and_then(Value::as_array);
                    let ready = statuses.map_or(0, |s| {
                        s.iter().filter(|c| c["ready"] == json!(true)).count()
                    });
                    let restarts: u64 = statuses.map_or(0, |s| {
                        s.iter().filter_map(|c| c["restartCount"].as_u64()).sum()
                    });
                    let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
                        "Terminating".to_string()
                    } else {
                        o.pointer("/status/phase")
                            .and_then(Value::as_str)
                            .unwrap_or("Pending")
                            .to_string()
                    };
                    let or_none = |p: &str| {
                        o.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("<none>")
                            .to_string()
                    };
                    json!([
                        name,
                        format!("{ready}/{total}"),
                        status,
                        restarts.to_string(),
                        age(o),
                        or_none("/status/podIP"),
                        or_none("/spec/nodeName"),
                        or_none("/status/nominatedNodeName"),
                        "<none>"
                    ])
                }
                _ => json!([name, age(o)]),
            };
            let object = match include {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            let mut row = json!({ "cells": cells });
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(
            matches!(route("/api/v1/namespaces/ns/pods/p"), Route::Object(rt, ns, n, Subresource::Main)
            if rt.resource == Resource::Pods && ns == "ns" && n == "p")
        );
        assert!(matches!(
            route("/api/v1/namespaces/ns/pods/p/status"),
            Route::Object(_, _, _, Subresource::Status)
        ));
        assert!(
            matches!(route("/apis/k8s.cni.cncf.io/v1/namespaces/ns/network-attachment-definitions"),
            Route::Collection(rt, Some(_)) if rt.resource == Resource::NetworkAttachmentDefinitions)
        );
        assert!(matches!(route("/api/v1/pods"), Route::Collection(_, None)));
        assert!(matches!(
            route("/apis/k8s.cni.cncf.io/v1/namespaces/ns/network-attachment-definitions/n/status"),
            Route::NotFound
        ));
        assert!(matches!(
            route("/api/v1/namespaces/ns/secrets/s"),
            Route::NotFound
        ));
        assert!(matches!(route("/nope"), Route::NotFound));
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+%28a%29&dryRun=All&x");
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.dry_run());
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("a%2Fb", false), "a/b");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400), "3d");
        assert_eq!(human_duration(400 * 86_400), "400d");
    }
}
