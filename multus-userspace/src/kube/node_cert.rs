//! Per-node client certificates (the daemon's `perNodeCertificate`, as the reference's thick
//! daemon does it with client-go's certificate manager): with the credentials of a bootstrap
//! kubeconfig the daemon creates a CertificateSigningRequest (certificates.k8s.io/v1, signer
//! `kubernetes.io/kube-apiserver-client`, subject CN `system:multus:<node>`, O `system:multus`)
//! for a key it generates, waits until it is approved and signed, keeps key and certificate in
//! `<certDir>/multus-client-current.pem` (0600, written atomically) and talks to the API as that
//! identity, renewing at 80% of the certificate's lifetime without a restart.
//!
//! [`decide`] is the pure decision (reuse the stored pair, or request one; when to renew);
//! [`IdentitySlot`] is the API client whose identity can be replaced while requests flow;
//! [`run`] drives the rest.

use std::{
    io::Read,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::{api::PostParams, Api, Client, Config};

use crate::autoconf::fsio;

/// The file of the current pair (the name client-go's certificate store gives it for multus).
pub const CERT_FILE: &str = "multus-client-current.pem";
/// The certificate lifetime requested when `certDuration` is absent (the reference's).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// The signer of API client certificates.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The subject's organization (the group the API server sees).
pub const ORGANIZATION: &str = "system:multus";
/// Fraction of a certificate's lifetime after which it is renewed.
const RENEW_AT: f64 = 0.8;
/// How often a pending CSR is looked at.
const POLL: Duration = Duration::from_secs(1);
/// Bound on the pause between failed attempts to obtain a certificate.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What `perNodeCertificate` asks for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The kubeconfig whose credentials may create CSRs (and whose cluster is the API server).
    pub bootstrap_kubeconfig: PathBuf,
    /// Where the pair is kept.
    pub cert_dir: PathBuf,
    /// The lifetime requested (`spec.expirationSeconds`); the signer may issue a shorter one.
    pub duration: Duration,
}

/// Failures obtaining or storing a certificate.
#[derive(Debug, thiserror::Error)]
pub enum NodeCertError {
    /// The key or the request could not be made.
    #[error("cannot make the key or the CSR: {0}")]
    Key(String),
    /// The API refused or failed a request.
    #[error("{0}")]
    Api(String),
    /// The CSR was denied or failed.
    #[error("CSR {name} was {how}: {message}")]
    Refused {
        /// The CSR.
        name: String,
        /// Denied or Failed.
        how: String,
        /// The condition's message.
        message: String,
    },
    /// The issued certificate is unusable.
    #[error("the certificate issued for CSR {name} is unusable: {reason}")]
    BadCertificate {
        /// The CSR.
        name: String,
        /// Why.
        reason: String,
    },
    /// The pair could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A key and the certificate issued for it.
#[derive(Clone)]
pub struct Pair {
    /// The private key (PKCS#8 PEM). Never logged.
    key_pem: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Validity.
    pub not_before: SystemTime,
    /// Validity.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What is found in `certDir` at start.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// No pair.
    Missing,
    /// A file that is not a usable pair (why).
    Unusable(String),
    /// A pair, valid in this window.
    Pair {
        /// Validity.
        not_before: SystemTime,
        /// Validity.
        not_after: SystemTime,
    },
}

/// What to do about the client identity.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Use the stored pair, and renew it after this long (zero: now, while still using it).
    Reuse {
        /// Time until renewal.
        renew_in: Duration,
    },
    /// No usable pair: request one with the bootstrap credentials.
    Request,
}

/// When a certificate valid from `not_before` to `not_after` is renewed.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + lifetime.mul_f64(RENEW_AT)
}

/// The pure decision from what is stored and the time.
pub fn decide(stored: &Stored, now: SystemTime) -> Decision {
    match stored {
        Stored::Pair {
            not_before,
            not_after,
        } if now < *not_after && *not_before < *not_after => Decision::Reuse {
            renew_in: renewal_time(*not_before, *not_after)
                .duration_since(now)
                .unwrap_or(Duration::ZERO),
        },
        _ => Decision::Request,
    }
}

/// The pair in `dir`: [`Stored`] for the decision, and the pair when it parsed.
pub fn read_stored(dir: &Path) -> (Stored, Option<Pair>) {
    let path = dir.join(CERT_FILE);
    let mut text = String::new();
    // O_NOFOLLOW: a symlink planted in certDir is not read through.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path);
    let read = opened.and_then(|f| f.take(fsio::MAX_FILE).read_to_string(&mut text).map(|_| ()));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Stored::Missing, None),
        Err(e) => (Stored::Unusable(format!("{}: {e}", path.display())), None),
        Ok(()) => match parse_pair(&text) {
            Ok(pair) => (
                Stored::Pair {
                    not_before: pair.not_before,
                    not_after: pair.not_after,
                },
                Some(pair),
            ),
            Err(why) => (Stored::Unusable(format!("{}: {why}", path.display())), None),
        },
    }
}

/// Writes the pair into `dir` (created 0700 when missing, with its parents; a symlink in its
/// place is refused) as one 0600 file, atomically.
pub fn write_stored(dir: &Path, pair: &Pair) -> Result<PathBuf, NodeCertError> {
    let path = dir.join(CERT_FILE);
    let write = |source| NodeCertError::Write {
        path: path.clone(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write)?;
    }
    fsio::ensure_private_dir(dir).map_err(write)?;
    let text = format!("{}{}", pair.key_pem, pair.cert_pem);
    fsio::write_atomic(&path, text.as_bytes(), 0o600).map_err(write)?;
    Ok(path)
}

/// A key and certificate from PEM text (the key's block and the first certificate), checked to
/// belong together.
fn parse_pair(text: &str) -> Result<Pair, String> {
    let mut key_pem = None;
    let mut cert_pem = None;
    for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| format!("invalid PEM: {e}"))?;
        let armored = |label: &str| {
            let body = BASE64.encode(&block.contents);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        match block.label.as_str() {
            "CERTIFICATE" if cert_pem.is_none() => cert_pem = Some(armored("CERTIFICATE")),
            "PRIVATE KEY" => key_pem = Some(armored("PRIVATE KEY")),
            _ => {}
        }
    }
    let key_pem = key_pem.ok_or("no PKCS#8 private key")?;
    let cert_pem = cert_pem.ok_or("no certificate")?;
    certificate_for(&key_pem, &cert_pem)
}

/// Checks that `cert_pem` certifies `key_pem`'s public key and reads its validity.
fn certificate_for(key_pem: &str, cert_pem: &str) -> Result<Pair, String> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("invalid key: {e}"))?;
    let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| format!("invalid certificate PEM: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("invalid certificate: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err("the certificate is not for the key".into());
    }
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs < 0 {
            SystemTime::UNIX_EPOCH
        } else {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        }
    };
    Ok(Pair {
        key_pem: key_pem.to_string(),
        cert_pem: cert_pem.to_string(),
        not_before: at(cert.validity().not_before),
        not_after: at(cert.validity().not_after),
    })
}

/// A fresh key (ECDSA P-256) and its PKCS#10 request for `node`, as PEM.
pub fn new_request(node: &str) -> Result<(String, String), NodeCertError> {
    let key = rcgen::KeyPair::generate().map_err(|e| NodeCertError::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| NodeCertError::Key(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:multus:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, ORGANIZATION);
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| NodeCertError::Key(e.to_string()))?;
    Ok((key.serialize_pem(), csr))
}

/// The CertificateSigningRequest object for `csr_pem`.
fn csr_object(csr_pem: &str, duration: Duration) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some("multus-client-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: k8s_openapi::ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds: Some(duration.as_secs().min(i32::MAX as u64) as i32),
            ..Default::default()
        },
        status: None,
    }
}

/// Creates a CSR for `node` through `client` and waits until it is signed; `created` is told
/// the CSR's name as soon as it exists (the daemon's readiness reason names it). When `client`
/// stops being accepted while the CSR waits (a renewal made with a certificate that then
/// expired), the CSR is read with `fallback` (the bootstrap credentials) instead.
pub async fn obtain(
    client: Client,
    mut fallback: Option<Client>,
    node: &str,
    duration: Duration,
    created: &(dyn Fn(&str) + Send + Sync),
) -> Result<Pair, NodeCertError> {
    let (key_pem, csr_pem) = new_request(node)?;
    let mut api: Api<CertificateSigningRequest> = Api::all(client);
    let made = api
        .create(&PostParams::default(), &csr_object(&csr_pem, duration))
        .await
        .map_err(|e| NodeCertError::Api(format!("creating a CertificateSigningRequest: {e}")))?;
    let name = made.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, node, "per-node certificate requested");
    created(&name);
    loop {
        // A transient failure (the API restarting) keeps waiting for the same CSR; one that is
        // gone (deleted, or garbage-collected while pending) or unreadable ends the wait.
        let csr = match api.get(&name).await {
            Ok(csr) => csr,
            Err(kube::Error::Api(s)) if s.code == 401 && fallback.is_some() => {
                tracing::info!(csr = %name, "the current certificate is no longer accepted; reading the CSR with the bootstrap credentials");
                api = Api::all(fallback.take().unwrap_or_else(|| api.clone().into_client()));
                continue;
            }
            Err(kube::Error::Api(s)) if s.code != 429 && s.code < 500 => {
                return Err(NodeCertError::Api(format!("reading CSR {name}: {s}")));
            }
            Err(e) => {
                tracing::debug!(csr = %name, "reading the CSR failed ({e}); retrying");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let status = csr.status.unwrap_or_default();
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status != "False")
        {
            return Err(NodeCertError::Refused {
                name,
                how: c.type_.to_ascii_lowercase(),
                message: c.message.clone().unwrap_or_default(),
            });
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert_pem =
                String::from_utf8(cert.0).map_err(|_| NodeCertError::BadCertificate {
                    name: name.clone(),
                    reason: "not PEM text".into(),
                })?;
            return certificate_for(&key_pem, &cert_pem)
                .map_err(|reason| NodeCertError::BadCertificate { name, reason });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `bootstrap`'s cluster (address, CA, TLS settings) with `pair` as the only credential.
pub fn config_with(bootstrap: &Config, pair: &Pair) -> Config {
    let mut config = bootstrap.clone();
    config.auth_info = kube::config::AuthInfo {
        client_certificate_data: Some(BASE64.encode(&pair.cert_pem)),
        client_key_data: Some(BASE64.encode(&pair.key_pem).into()),
        ..Default::default()
    };
    config
}

/// The API client of the process, whose identity is replaced on renewal: requests go to the
/// current client (a new connection pool per identity, so no request rides a connection made
/// with an expired certificate once the next one is in place); without one yet they fail with
/// the reason (the pending CSR).
#[derive(Clone, Default)]
pub struct IdentitySlot(Arc<RwLock<Slot>>);

#[derive(Default)]
struct Slot {
    client: Option<Client>,
    waiting: String,
}

impl IdentitySlot {
    /// Requests go to `client` from now on.
    pub fn install(&self, client: Client) {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        slot.client = Some(client);
    }

    /// Why requests fail while no client is installed.
    pub fn set_waiting(&self, why: String) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).waiting = why;
    }

    fn current(&self) -> Result<Client, String> {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        slot.client.clone().ok_or_else(|| {
            format!(
                "no per-node client certificate yet ({})",
                if slot.waiting.is_empty() {
                    "starting"
                } else {
                    &slot.waiting
                }
            )
        })
    }

    /// A client that sends each request through the current identity.
    pub fn client(&self, default_namespace: &str) -> Client {
        let slot = self.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let slot = slot.clone();
            async move {
                let client = slot.current().map_err(tower::BoxError::from)?;
                client.send(req).await.map_err(tower::BoxError::from)
            }
        });
        Client::new(service, default_namespace)
    }
}

/// How [`run`] tells the daemon where it stands: `Some(reason)` while the API cannot be used with
/// a valid certificate, `None` once it can.
pub type Report = Box<dyn Fn(Option<String>) + Send + Sync>;

/// Keeps a valid identity in `slot` for the process's lifetime: reuses `stored` (read at start),
/// else requests a certificate with `bootstrap`'s credentials (retrying with backoff), then renews
/// at 80% of each certificate's lifetime with the current identity (the bootstrap credentials
/// when that fails).
pub async fn run(
    settings: Settings,
    node: String,
    bootstrap: Config,
    slot: IdentitySlot,
    stored: Option<Pair>,
    report: Report,
) {
    let mut current = stored;
    let mut backoff = POLL;
    loop {
        let decision = match &current {
            Some(p) => decide(
                &Stored::Pair {
                    not_before: p.not_before,
                    not_after: p.not_after,
                },
                SystemTime::now(),
            ),
            None => Decision::Request,
        };
        match decision {
            Decision::Reuse { renew_in } => {
                report(None);
                tokio::time::sleep(renew_in).await;
            }
            Decision::Request => {
                if current.take().is_some() {
                    report(Some(
                        "the per-node certificate expired before renewal".into(),
                    ));
                }
            }
        }
        // Renew with the current identity while it is valid, else with the bootstrap's.
        let use_current = current
            .as_ref()
            .is_some_and(|p| SystemTime::now() < p.not_after);
        let attempt = |config: Config, fallback: Option<Config>| {
            let slot = slot.clone();
            let report = &report;
            let node = node.clone();
            let duration = settings.duration;
            let first = current.is_none();
            async move {
                let client = crate::kube::client::client_for(config)
                    .map_err(|e| NodeCertError::Api(e.to_string()))?;
                let fallback = fallback
                    .map(crate::kube::client::client_for)
                    .transpose()
                    .map_err(|e| NodeCertError::Api(e.to_string()))?;
                let created = move |name: &str| {
                    let why = format!("waiting for CSR {name} to be approved and signed");
                    slot.set_waiting(why.clone());
                    if first {
                        report(Some(why));
                    }
                };
                obtain(client, fallback, &node, duration, &created).await
            }
        };
        let expires = current.as_ref().map(|p| p.not_after);
        let mut outcome = match current.as_ref().filter(|_| use_current) {
            Some(p) => {
                let renewal = attempt(config_with(&bootstrap, p), Some(bootstrap.clone()));
                noting_expiry(renewal, expires, &slot, &report).await
            }
            None => attempt(bootstrap.clone(), None).await,
        };
        if let (true, Err(e)) = (use_current, &outcome) {
            tracing::warn!("renewing the per-node certificate as itself failed ({e}); with the bootstrap credentials");
            let renewal = attempt(bootstrap.clone(), None);
            outcome = noting_expiry(renewal, expires, &slot, &report).await;
        }
        let pair = match outcome.and_then(|pair| {
            write_stored(&settings.cert_dir, &pair)?;
            Ok(pair)
        }) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!("per-node certificate: {e}; trying again in {backoff:?}");
                slot.set_waiting(e.to_string());
                if current.is_none() {
                    report(Some(format!("per-node certificate not obtained: {e}")));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        match crate::kube::client::client_for(config_with(&bootstrap, &pair)) {
            Ok(client) => {
                slot.install(client);
                backoff = POLL;
                tracing::info!(
                    dir = %settings.cert_dir.display(),
                    valid_for = ?pair.not_after.duration_since(SystemTime::now()).unwrap_or_default(),
                    "per-node client certificate in use"
                );
                current = Some(pair);
            }
            Err(e) => {
                tracing::error!("per-node certificate: {e}");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Awaits a renewal; if the certificate in use expires first (its CSR not signed in time), the
/// daemon is reported not ready while the wait goes on.
async fn noting_expiry<F: std::future::Future>(
    renewal: F,
    expires: Option<SystemTime>,
    slot: &IdentitySlot,
    report: &Report,
) -> F::Output {
    let renewal = std::pin::pin!(renewal);
    let Some(at) = expires else {
        return renewal.await;
    };
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let mut renewal = renewal;
    tokio::select! {
        out = &mut renewal => return out,
        _ = tokio::time::sleep(left) => {
            let waiting = slot.0.read().unwrap_or_else(|e| e.into_inner()).waiting.clone();
            report(Some(format!("the per-node certificate expired before its renewal was signed ({waiting})")));
        }
    }
    renewal.await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_valid_pair_is_reused_and_renewed_at_80_percent() {
        let stored = Stored::Pair {
            not_before: at(1000),
            not_after: at(1600),
        };
        assert_eq!(
            decide(&stored, at(1100)),
            Decision::Reuse {
                renew_in: Duration::from_secs(380)
            }
        );
        // Past the renewal time but still valid: used, renewed at once.
        assert_eq!(
            decide(&stored, at(1500)),
            Decision::Reuse {
                renew_in: Duration::ZERO
            }
        );
    }

    #[test]
    fn an_expired_missing_or_unusable_pair_is_requested_anew() {
        let stored = Stored::Pair {
            not_before: at(1000),
            not_after: at(1600),
        };
        assert_eq!(decide(&stored, at(1600)), Decision::Request);
        assert_eq!(decide(&Stored::Missing, at(0)), Decision::Request);
        assert_eq!(
            decide(&Stored::Unusable("x".into()), at(0)),
            Decision::Request
        );
        let inverted = Stored::Pair {
            not_before: at(2000),
            not_after: at(1600),
        };
        assert_eq!(decide(&inverted, at(1000)), Decision::Request);
    }

    fn signed_pair(node: &str, other_key: bool) -> (String, String) {
        let (key_pem, csr_pem) = new_request(node).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let subject = if other_key {
            rcgen::KeyPair::generate().unwrap()
        } else {
            rcgen::KeyPair::from_pem(&key_pem).unwrap()
        };
        let _ = csr_pem;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 2);
        let cert = params.signed_by(&subject, &issuer).unwrap();
        (key_pem, cert.pem())
    }

    #[test]
    fn a_stored_pair_is_read_back_with_its_validity_and_a_mismatch_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_stored(dir.path()).0, Stored::Missing);
        let (key, cert) = signed_pair("n1", false);
        let pair = certificate_for(&key, &cert).unwrap();
        let certs = dir.path().join("certs");
        write_stored(&certs, &pair).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&certs.join(CERT_FILE)), 0o600);
        assert_eq!(mode(&certs), 0o700);
        let (stored, read) = read_stored(&certs);
        assert_eq!(
            stored,
            Stored::Pair {
                not_before: at(1_893_456_000),
                not_after: at(1_893_542_400)
            }
        );
        assert_eq!(read.unwrap().cert_pem, cert);
        let (key, cert) = signed_pair("n1", true);
        assert!(certificate_for(&key, &cert)
            .unwrap_err()
            .contains("not for the key"));
        // A planted symlink is not read through, and a symlinked certDir is refused.
        let planted = dir.path().join("planted");
        std::fs::create_dir(&planted).unwrap();
        std::os::unix::fs::symlink(certs.join(CERT_FILE), planted.join(CERT_FILE)).unwrap();
        assert!(matches!(read_stored(&planted).0, Stored::Unusable(_)));
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&certs, &linked).unwrap();
        assert!(write_stored(&linked, &pair).is_err());
    }

    #[test]
    fn the_request_names_the_node_in_the_multus_group() {
        let (_, csr) = new_request("node-7").unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
        use x509_parser::prelude::FromDer;
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .unwrap();
        let subject = req.certification_request_info.subject.to_string();
        assert!(subject.contains("CN=system:multus:node-7"), "{subject}");
        assert!(subject.contains("O=system:multus"), "{subject}");
    }
}
