//! Thick mode with `perNodeCertificate` (the reference's per-node client certificates): the
//! daemon bootstraps a client certificate through a CertificateSigningRequest with the bootstrap
//! kubeconfig's token, keeps it in `certDir` and talks to the API (the in-tree stand-in, which
//! signs with its CA and authenticates client certificates per request) as
//! `system:multus:<node>`; a restart reuses the stored pair; a short-lived certificate is renewed
//! while the daemon serves; a CSR nobody approves keeps `/readyz` failing with its name while
//! config-only networks are served.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use testkit::{kube_api::KubeconfigOptions, thick_api::ApiNode};

const NODE: &str = ApiNode::NODE;
const CERT_FILE: &str = "multus-client-current.pem";

/// The API node of the thick tests ([`ApiNode`]) whose daemon has `perNodeCertificate`, and
/// where it stores the pair.
struct T {
    k: ApiNode,
    cert_dir: PathBuf,
}

impl std::ops::Deref for T {
    type Target = ApiNode;
    fn deref(&self) -> &ApiNode {
        &self.k
    }
}

impl std::ops::DerefMut for T {
    fn deref_mut(&mut self) -> &mut ApiNode {
        &mut self.k
    }
}

impl T {
    /// A node, the API in its namespace, a bootstrap kubeconfig (token) and a daemon configured
    /// with `perNodeCertificate` (not started); `duration` is `certDuration` when given.
    fn new(duration: Option<&str>) -> T {
        let k = ApiNode::new("tn", "10.87.0.0/24", |node, api| {
            let bootstrap = api
                .write_kubeconfig_with(
                    node.root(),
                    &KubeconfigOptions {
                        file_name: "bootstrap.kubeconfig".into(),
                        ..Default::default()
                    },
                )
                .expect("kubeconfig");
            let mut per_node = json!({"enabled": true, "bootstrapKubeconfig": bootstrap,
                "certDir": node.root().join("certs")});
            if let Some(d) = duration {
                per_node["certDuration"] = json!(d);
            }
            json!({"perNodeCertificate": per_node, "apiDeadlineSeconds": 3})
        });
        let cert_dir = k.node.root().join("certs");
        T { k, cert_dir }
    }

    fn start(&mut self) {
        self.k.start(Duration::from_secs(15));
    }

    /// A NAD and a pod on this node asking for it; the pod's uid.
    fn pod(&self, name: &str, bridge: &str, subnet: &str) -> String {
        self.k.nad(name, bridge, subnet);
        self.k.pod(name, NODE, name)
    }

    /// Who the pod's network-status PATCHes authenticated as.
    fn patchers(&self, name: &str) -> Vec<(String, Vec<String>, &'static str)> {
        let path = format!("/api/v1/namespaces/default/pods/{name}");
        self.api
            .authentications()
            .into_iter()
            .filter(|a| a.method == "PATCH" && a.path == path)
            .map(|a| (a.who.user, a.who.groups, a.who.via))
            .collect()
    }

    fn stored(&self) -> String {
        std::fs::read_to_string(self.cert_dir.join(CERT_FILE)).expect("stored pair")
    }

    fn wait_for<F: FnMut() -> bool>(&self, what: &str, timeout: Duration, mut done: F) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < timeout,
                "{what} not within {timeout:?}:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

/// The subject of the CSR's request (PEM, base64 in spec.request).
fn csr_subject(csr: &Value) -> String {
    use base64::Engine;
    use x509_parser::prelude::FromDer;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(csr["spec"]["request"].as_str().expect("spec.request"))
        .expect("base64");
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .expect("PKCS#10");
    req.certification_request_info.subject.to_string()
}

#[test]
fn the_daemon_obtains_a_per_node_certificate_uses_it_and_reuses_it_after_a_restart() {
    let mut t = T::new(None);
    t.start();
    let csrs = t.api.csrs();
    assert_eq!(csrs.len(), 1, "{csrs:?}");
    let csr = &csrs[0];
    let subject = csr_subject(csr);
    assert!(
        subject.contains(&format!("CN=system:multus:{NODE}"))
            && subject.contains("O=system:multus"),
        "{subject}"
    );
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client"
    );
    assert_eq!(
        csr["spec"]["usages"],
        json!(["digital signature", "client auth"])
    );
    // certDuration's default, the reference's 10 minutes.
    assert_eq!(csr["spec"]["expirationSeconds"], 600);
    // Created with the bootstrap token.
    assert_eq!(
        csr["spec"]["username"],
        "system:serviceaccount:standin:token"
    );
    assert_eq!(mode(&t.cert_dir), 0o700);
    assert_eq!(mode(&t.cert_dir.join(CERT_FILE)), 0o600);
    let pair = t.stored();
    assert!(
        pair.contains("-----BEGIN PRIVATE KEY-----")
            && pair.contains("-----BEGIN CERTIFICATE-----")
    );

    let uid = t.pod("web", "tnw0", "10.87.1.0/24");
    t.add_del("web", &uid);
    let patchers = t.patchers("web");
    assert!(!patchers.is_empty());
    for (user, groups, via) in &patchers {
        assert_eq!(
            (user.as_str(), groups.clone(), *via),
            (
                "system:multus:node-1",
                vec!["system:multus".to_string()],
                "client-certificate"
            )
        );
    }
    // The token served the CSR's creation and reading only.
    let by_token: Vec<_> = t
        .api
        .authentications()
        .into_iter()
        .filter(|a| a.who.via == "token")
        .filter(|a| !a.path.starts_with("/apis/certificates.k8s.io/"))
        .collect();
    assert!(by_token.is_empty(), "{by_token:?}");

    // A restart reuses the stored pair: no new CSR, the same file.
    t.daemon.signal(libc::SIGTERM);
    assert_eq!(t.daemon.wait_exit(Duration::from_secs(20)), Some(0));
    t.start();
    assert_eq!(t.api.csrs().len(), 1);
    assert_eq!(t.stored(), pair);
    let uid = t.pod("web2", "tnx0", "10.87.2.0/24");
    t.add_del("web2", &uid);
    assert!(t
        .patchers("web2")
        .iter()
        .all(|(u, _, via)| u == "system:multus:node-1" && *via == "client-certificate"));
    assert!(t
        .daemon
        .log()
        .contains("reusing the stored per-node certificate"));
}

#[test]
fn a_short_lived_certificate_is_renewed_while_the_daemon_serves() {
    let mut t = T::new(Some("1h30m"));
    // The signer issues 8 s certificates whatever is asked (as --cluster-signing-duration caps
    // them): renewal comes after ~6.4 s, the first certificate expires at 8 s.
    t.api.set_csr_signing_duration(Some(Duration::from_secs(8)));
    t.start();
    let first = t.stored();
    assert_eq!(t.api.csrs()[0]["spec"]["expirationSeconds"], 5400);
    t.wait_for("a second CSR", Duration::from_secs(20), || {
        t.api.csrs().len() >= 2
    });
    t.wait_for("new files", Duration::from_secs(10), || t.stored() != first);
    assert_eq!(mode(&t.cert_dir.join(CERT_FILE)), 0o600);
    // Renewed as itself: the second CSR was created with the first certificate.
    let second = t
        .api
        .csrs()
        .into_iter()
        .find(|c| c["spec"]["username"] == "system:multus:node-1")
        .expect("a CSR made with the per-node certificate");
    assert!(csr_subject(&second).contains(&format!("CN=system:multus:{NODE}")));
    // Past the first certificate's end: the daemon serves with the renewed one (the stand-in
    // refuses an expired certificate at every request).
    std::thread::sleep(Duration::from_secs(3));
    let uid = t.pod("late", "tnl0", "10.87.3.0/24");
    t.add_del("late", &uid);
    assert!(t
        .patchers("late")
        .iter()
        .all(|(u, _, via)| u == "system:multus:node-1" && *via == "client-certificate"));
    assert!(t.daemon.running());
}

#[test]
fn an_unapproved_csr_keeps_the_daemon_unready_naming_it_and_config_only_networks_are_served() {
    let mut t = T::new(None);
    t.api.set_csr_auto_approve(false);
    t.k.daemon.spawn(&t.k.node);
    t.wait_for("the CSR", Duration::from_secs(15), || {
        !t.api.csrs().is_empty()
    });
    let name = t.api.csrs()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    t.wait_for("/readyz naming the CSR", Duration::from_secs(10), || {
        let (code, body) = t.daemon.get("/readyz");
        code == 503 && body.contains(&format!("CSR {name}"))
    });
    assert!(!t.cert_dir.join(CERT_FILE).exists());
    // Config-only networks need no API: served.
    t.add_del_config_only();
    // Approved: ready, and the pair is stored.
    t.api.approve_csr(&name).expect("approve");
    t.daemon.wait_ready(Duration::from_secs(10));
    assert_eq!(mode(&t.cert_dir.join(CERT_FILE)), 0o600);
    assert_eq!(t.api.csrs().len(), 1);
}

#[test]
fn a_bad_cert_duration_stops_the_start_naming_the_key() {
    let mut t = T::new(Some("ten minutes"));
    t.k.daemon.spawn(&t.k.node);
    let code = t.daemon.wait_exit(Duration::from_secs(10));
    assert!(matches!(code, Some(c) if c != 0), "{code:?}");
    let log = t.daemon.log();
    assert!(log.contains("perNodeCertificate.certDuration"), "{log}");
}

#[test]
fn a_renewal_nobody_signs_makes_the_daemon_unready_at_expiry_naming_the_csr_until_it_is_signed() {
    let mut t = T::new(None);
    // 5 s certificates: renewal after 4 s.
    t.api.set_csr_signing_duration(Some(Duration::from_secs(5)));
    t.start();
    t.api.set_csr_auto_approve(false);
    t.wait_for("a renewal CSR", Duration::from_secs(15), || {
        t.api.csrs().len() >= 2
    });
    let pending = t
        .api
        .csrs()
        .into_iter()
        .find(|c| c["status"]["certificate"].is_null())
        .expect("the pending renewal");
    let name = pending["metadata"]["name"].as_str().unwrap().to_string();
    t.wait_for(
        "/readyz naming the expiry and the CSR",
        Duration::from_secs(15),
        || {
            let (code, body) = t.daemon.get("/readyz");
            code == 503 && body.contains("expired") && body.contains(&name)
        },
    );
    t.api.approve_csr(&name).expect("approve");
    t.daemon.wait_ready(Duration::from_secs(10));
    let uid = t.pod("after", "tna0", "10.87.4.0/24");
    t.add_del("after", &uid);
    assert!(t
        .patchers("after")
        .iter()
        .all(|(u, _, via)| u == "system:multus:node-1" && *via == "client-certificate"));
}
