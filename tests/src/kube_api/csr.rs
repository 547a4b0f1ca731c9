//! certificates.k8s.io/v1 CertificateSigningRequests (cluster-scoped): create, get, list and
//! watch, the `approval` and `status` subresources (PUT), and a signer for
//! `kubernetes.io/kube-apiserver-client` that signs approved requests with the stand-in's CA, so
//! a client can bootstrap a client certificate (the multus daemon's `perNodeCertificate`).
//! Approval is automatic or left to the test ([`super::KubeApiServer::approve_csr`]); the signer
//! caps the lifetime as kube-controller-manager's `--cluster-signing-duration` does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use hyper::{body::Frame, Method, Request, Response};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::http::{json_response, Body, Query};
use super::status::ApiError;
use super::Shared;

/// The path prefix of the collection.
pub(crate) const COLLECTION: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// The signer this stand-in implements.
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// Who a request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name (a client certificate's CN).
    pub user: String,
    /// The groups (a client certificate's O).
    pub groups: Vec<String>,
    /// How: "client-certificate" or "token".
    pub via: &'static str,
}

/// The CSRs, and how they are approved and signed.
pub(crate) struct Csrs {
    objects: BTreeMap<String, Value>,
    revision: u64,
    pub(crate) auto_approve: bool,
    pub(crate) max_duration: Option<Duration>,
    changed: Arc<Notify>,
    ca_cert_pem: String,
    ca_key_pem: String,
}

impl Csrs {
    pub(crate) fn new(ca_cert_pem: String, ca_key_pem: String) -> Self {
        Self {
            objects: BTreeMap::new(),
            revision: 0,
            auto_approve: true,
            max_duration: None,
            changed: Arc::new(Notify::new()),
            ca_cert_pem,
            ca_key_pem,
        }
    }

    pub(crate) fn list(&self) -> Vec<Value> {
        self.objects.values().cloned().collect()
    }

    fn put(&mut self, mut obj: Value) -> Value {
        self.revision += 1;
        obj["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.objects.insert(name, obj.clone());
        self.changed.notify_waiters();
        obj
    }

    fn get(&self, name: &str) -> Result<Value, ApiError> {
        self.objects.get(name).cloned().ok_or_else(|| {
            ApiError::new(
                404,
                format!("certificatesigningrequests.certificates.k8s.io \"{name}\" not found"),
            )
        })
    }

    /// Approves `name` (condition Approved) and signs it when its signer is ours.
    pub(crate) fn approve(&mut self, name: &str) -> Result<Value, ApiError> {
        let mut obj = self.get(name)?;
        set_condition(
            &mut obj,
            "Approved",
            "StandinApprove",
            "approved by the test",
        );
        self.sign_if_approved(&mut obj);
        Ok(self.put(obj))
    }

    /// Denies `name` with `message`.
    pub(crate) fn deny(&mut self, name: &str, message: &str) -> Result<Value, ApiError> {
        let mut obj = self.get(name)?;
        set_condition(&mut obj, "Denied", "StandinDeny", message);
        Ok(self.put(obj))
    }

    fn sign_if_approved(&self, obj: &mut Value) {
        let approved = obj["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Approved"));
        let signed = obj["status"]["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty());
        if !approved || signed || obj["spec"]["signerName"] != CLIENT_SIGNER {
            return;
        }
        match self.sign(obj) {
            Ok(pem) => {
                obj["status"]["certificate"] = json!(base64_encode(pem.as_bytes()));
            }
            Err(e) => set_condition(obj, "Failed", "SignerValidationFailure", &e),
        }
    }

    /// Signs the request in `obj`: its subject, client-auth usage, now - 5 min to now + the
    /// requested lifetime (capped).
    fn sign(&self, obj: &Value) -> Result<String, String> {
        let request = obj["spec"]["request"]
            .as_str()
            .and_then(base64_decode)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("spec.request is not base64 PEM")?;
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(&request)
            .map_err(|e| format!("invalid CSR: {e}"))?;
        let requested = obj["spec"]["expirationSeconds"]
            .as_u64()
            .map_or(Duration::from_secs(365 * 86_400), Duration::from_secs);
        let lifetime = self.max_duration.map_or(requested, |m| m.min(requested));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let at = |secs: u64| {
            time::OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|e| e.to_string())
        };
        // Backdated as kube-controller-manager's signer does (clock skew), but never before the
        // request was made when the lifetime is short.
        let backdate = if lifetime < Duration::from_secs(600) {
            0
        } else {
            300
        };
        csr.params.not_before = at(now.as_secs().saturating_sub(backdate))?;
        csr.params.not_after = at(now.as_secs() + lifetime.as_secs())?;
        csr.params.is_ca = rcgen::IsCa::NoCa;
        csr.params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        csr.params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::from_pem(&self.ca_key_pem).map_err(|e| e.to_string())?;
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(&self.ca_cert_pem, key).map_err(|e| e.to_string())?;
        let cert = csr.signed_by(&issuer).map_err(|e| e.to_string())?;
        Ok(cert.pem())
    }
}

fn set_condition(obj: &mut Value, kind: &str, reason: &str, message: &str) {
    let now = super::store::rfc3339(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    let conditions = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    if let Some(Value::Array(list)) = conditions {
        list.retain(|c| c["type"] != kind);
        list.push(
            json!({"type": kind, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}),
        );
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Serves a request under [`COLLECTION`] for `who`.
pub(crate) async fn serve(
    shared: &Shared,
    req: Request<hyper::body::Incoming>,
    path: &str,
    query: &Query,
    who: &Identity,
) -> Result<Response<Body>, ApiError> {
    let rest = path.strip_prefix(COLLECTION).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    match (method, segments.as_slice()) {
        (Method::POST, []) => {
            let body = super::http::read_json(req).await?;
            create(shared, body, who).map(|o| json_response(201, &o))
        }
        (Method::GET, []) if matches!(query.get("watch"), Some("true" | "1")) => {
            Ok(watch(shared, query))
        }
        (Method::GET, []) => {
            let csrs = shared.csrs();
            let name = name_selector(query);
            let items: Vec<Value> = csrs
                .objects
                .values()
                .filter(|o| name.as_deref().is_none_or(|n| o["metadata"]["name"] == n))
                .cloned()
                .collect();
            Ok(json_response(
                200,
                &json!({"kind": "CertificateSigningRequestList", "apiVersion": "certificates.k8s.io/v1",
                    "metadata": {"resourceVersion": csrs.revision.to_string()}, "items": items}),
            ))
        }
        (Method::GET, [name] | [name, "approval" | "status"]) => {
            Ok(json_response(200, &shared.csrs().get(name)?))
        }
        (Method::PUT, [name, sub @ ("approval" | "status")]) => {
            let body = super::http::read_json(req).await?;
            let mut csrs = shared.csrs();
            let mut obj = csrs.get(name)?;
            match *sub {
                "approval" => obj["status"]["conditions"] = body["status"]["conditions"].clone(),
                _ => obj["status"] = body["status"].clone(),
            }
            csrs.sign_if_approved(&mut obj);
            Ok(json_response(200, &csrs.put(obj)))
        }
        (Method::DELETE, [name]) => {
            let mut csrs = shared.csrs();
            let obj = csrs.get(name)?;
            csrs.objects.remove(*name);
            csrs.changed.notify_waiters();
            Ok(json_response(200, &obj))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn name_selector(query: &Query) -> Option<String> {
    query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_string)
}

fn create(shared: &Shared, mut obj: Value, who: &Identity) -> Result<Value, ApiError> {
    let invalid =
        |m: &str| ApiError::new(422, format!("CertificateSigningRequest is invalid: {m}"));
    if !obj.is_object() || !obj["metadata"].is_object() && !obj["metadata"].is_null() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let request = obj["spec"]["request"].as_str().and_then(base64_decode);
    let parsed = request
        .as_ref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(rcgen::CertificateSigningRequestParams::from_pem);
    if !matches!(parsed, Some(Ok(_))) {
        return Err(invalid(
            "spec.request: Invalid value: must be a PEM CERTIFICATE REQUEST",
        ));
    }
    if obj["spec"]["signerName"].as_str().is_none_or(str::is_empty) {
        return Err(invalid("spec.signerName: Required value"));
    }
    let mut csrs = shared.csrs();
    let name = match obj["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match obj["metadata"]["generateName"].as_str() {
            Some(prefix) => format!("{prefix}{:05x}", (csrs.revision * 7919 + 12345) % 0xfffff),
            None => return Err(invalid("metadata.name: Required value")),
        },
    };
    if csrs.objects.contains_key(&name) {
        return Err(ApiError::new(
            409,
            format!("certificatesigningrequests.certificates.k8s.io \"{name}\" already exists"),
        ));
    }
    let uid = shared.store().new_uid();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    obj["apiVersion"] = json!("certificates.k8s.io/v1");
    obj["kind"] = json!("CertificateSigningRequest");
    obj["metadata"]["name"] = json!(name);
    obj["metadata"]["uid"] = json!(uid);
    obj["metadata"]["creationTimestamp"] = json!(super::store::rfc3339(now));
    obj["spec"]["username"] = json!(who.user);
    obj["spec"]["groups"] = json!(who.groups);
    obj["status"] = json!({});
    if csrs.auto_approve {
        set_condition(
            &mut obj,
            "Approved",
            "AutoApproved",
            "auto-approved by the stand-in",
        );
        csrs.sign_if_approved(&mut obj);
    }
    Ok(csrs.put(obj))
}

/// A watch of the CSRs (one, with `fieldSelector=metadata.name=`): MODIFIED for every change
/// after the given resourceVersion (ADDED for what exists when none is given).
fn watch(shared: &Shared, query: &Query) -> Response<Body> {
    let name = name_selector(query);
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let store = shared.csr_handle();
    let stream = futures::stream::unfold(
        (
            store,
            from,
            BTreeMap::<String, String>::new(),
            tokio::time::Instant::now() + timeout,
        ),
        move |(store, from, mut seen, end)| {
            let name = name.clone();
            async move {
                loop {
                    let changed = {
                        let csrs = super::lock(&store);
                        let mut lines = Vec::new();
                        for (n, o) in &csrs.objects {
                            if name.as_deref().is_some_and(|w| w != n) {
                                continue;
                            }
                            let rv = o["metadata"]["resourceVersion"].as_str().unwrap_or("0");
                            let newer = rv.parse::<u64>().unwrap_or(0) > from;
                            if newer && seen.get(n).map(String::as_str) != Some(rv) {
                                let kind = if seen.contains_key(n) || from > 0 {
                                    "MODIFIED"
                                } else {
                                    "ADDED"
                                };
                                seen.insert(n.clone(), rv.to_string());
                                let mut line =
                                    serde_json::to_vec(&json!({"type": kind, "object": o}))
                                        .unwrap_or_default();
                                line.push(b'\n');
                                lines.extend(line);
                            }
                        }
                        (!lines.is_empty()).then_some(lines)
                    };
                    if let Some(lines) = changed {
                        return Some((
                            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(lines))),
                            (store, from, seen, end),
                        ));
                    }
                    let notify = super::lock(&store).changed.clone();
                    let wait = notify.notified();
                    tokio::select! {
                        _ = wait => {}
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = tokio::time::sleep_until(end) => return None,
                    }
                }
            }
        },
    );
    let mut resp = Response::new(http_body_util::Either::Right(
        http_body_util::StreamBody::new(stream.boxed()),
    ));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
