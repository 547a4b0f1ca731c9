//! The thin plugin's kubeconfig (`<conf dir>/multus.d/multus.kubeconfig`), built from the
//! service account the agent runs as: its token, its CA and `KUBERNETES_SERVICE_HOST`/`PORT`.
//! Rendering and recognising are pure; the agent ([`super::thin`]) rewrites the file when the
//! projected token or the CA rotates (the reference writes it once: its issue #852).

use base64::Engine;
use serde_json::{json, Value};

/// The context name (the reference's, so either generator's file is recognised as ours).
pub const CONTEXT: &str = "multus-context";
/// The user name in the file.
pub const USER: &str = "multus";
/// First line of the reference's thin kubeconfig (YAML), recognised by `uninstall`.
pub const REFERENCE_HEADER: &str = "# Kubeconfig file for Multus CNI plugin.";

/// Why no kubeconfig can be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    /// The API server's address is not in the environment.
    #[error("{0} is not set (the kubelet sets it in every pod; set it when running outside one)")]
    Env(&'static str),
    /// The token file is empty.
    #[error("the service-account token is empty")]
    EmptyToken,
    /// The CA file is not PEM.
    #[error("the service-account ca.crt is not a PEM certificate")]
    BadCa,
}

/// `https://host:port`, the host in brackets when it is an IPv6 address.
pub fn server_url(host: &str, port: &str) -> Result<String, KubeconfigError> {
    let host = host.trim();
    let port = port.trim();
    if host.is_empty() {
        return Err(KubeconfigError::Env("KUBERNETES_SERVICE_HOST"));
    }
    if port.is_empty() {
        return Err(KubeconfigError::Env("KUBERNETES_SERVICE_PORT"));
    }
    if host.contains(':') && !host.starts_with('[') {
        Ok(format!("https://[{host}]:{port}"))
    } else {
        Ok(format!("https://{host}:{port}"))
    }
}

/// The kubeconfig (JSON, which every kubeconfig reader takes: YAML is a superset) for `server`
/// with the CA `ca_pem` embedded and the bearer `token` (whitespace around it trimmed).
pub fn render(server: &str, ca_pem: &[u8], token: &[u8]) -> Result<Vec<u8>, KubeconfigError> {
    let token = String::from_utf8_lossy(token).trim().to_string();
    if token.is_empty() {
        return Err(KubeconfigError::EmptyToken);
    }
    if !String::from_utf8_lossy(ca_pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(KubeconfigError::BadCa);
    }
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": server, "certificate-authority-data": ca}}],
        "users": [{"name": USER, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": "local", "user": USER}}],
        "current-context": CONTEXT,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    Ok(bytes)
}

/// Whether `bytes` is a kubeconfig a thin agent wrote (ours, or the reference's).
pub fn is_generated(bytes: &[u8]) -> bool {
    if bytes.starts_with(REFERENCE_HEADER.as_bytes()) {
        return true;
    }
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("current-context").and_then(Value::as_str) == Some(CONTEXT))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_server_url_brackets_an_ipv6_host() {
        assert_eq!(
            server_url("10.96.0.1", "443").unwrap(),
            "https://10.96.0.1:443"
        );
        assert_eq!(
            server_url("fd00::1", "6443").unwrap(),
            "https://[fd00::1]:6443"
        );
        assert_eq!(
            server_url("[fd00::1]", "6443").unwrap(),
            "https://[fd00::1]:6443"
        );
        assert!(server_url("", "443").is_err());
        assert!(server_url("h", "").is_err());
    }

    #[test]
    fn the_kubeconfig_embeds_the_ca_and_the_trimmed_token() {
        let bytes = render("https://h:1", CA, b"tok\n").unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["users"][0]["user"]["token"], "tok");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://h:1");
        let ca = v["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(ca)
                .unwrap(),
            CA
        );
        assert!(is_generated(&bytes));
        assert!(is_generated(
            b"# Kubeconfig file for Multus CNI plugin.\napiVersion: v1\n"
        ));
        assert!(!is_generated(b"apiVersion: v1\n"));
        assert_eq!(
            render("https://h:1", CA, b" \n"),
            Err(KubeconfigError::EmptyToken)
        );
        assert_eq!(
            render("https://h:1", b"", b"t"),
            Err(KubeconfigError::BadCa)
        );
    }
}
