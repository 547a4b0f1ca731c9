//! The daemon's configuration file (`/etc/cni/net.d/multus.d/daemon-config.json`), with the
//! reference's keys and defaults, and the overlay of that file onto each call's stdin (the
//! reference's `overrideCNIConfigWithServerConfig`): every key of the file that is not the
//! daemon's own replaces the call's key, so NetConf keys (`cniDir`, `binDir`, `confDir`,
//! `namespaceIsolation`, ...) set once for the node apply to every call.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// Where the daemon reads its configuration unless `--config` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/cni/net.d/multus.d/daemon-config.json";
/// Default directory of the socket.
pub const DEFAULT_SOCKET_DIR: &str = "/run/multus/";
/// Default directory of the runtime's network configurations.
pub const DEFAULT_CNI_CONFIG_DIR: &str = "/etc/cni/net.d";
/// Default bound on calls running at once (each runs delegate processes).
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 64;
/// Default bound on calls waiting for a slot; more are answered "try again later".
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DaemonConfigError {
    /// The file could not be read.
    #[error("cannot read the daemon configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error("the daemon configuration {path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The daemon's own keys (the rest of the file overlays each call's configuration).
#[derive(Clone, Debug, Deserialize)]
pub struct DaemonConfig {
    /// Root every delegate is chrooted into (the host's `/` mounted in the daemon's container).
    #[serde(rename = "chrootDir", default)]
    pub chroot_dir: Option<PathBuf>,
    /// Directory of `multus.sock`.
    #[serde(rename = "socketDir", default = "default_socket_dir")]
    pub socket_dir: PathBuf,
    /// Port of `/metrics` (none: no metrics server, as in the reference).
    #[serde(rename = "metricsPort", default)]
    pub metrics_port: Option<u16>,
    /// The reference's Go profiler; accepted, has no effect here.
    #[serde(rename = "enablePprof", default)]
    pub enable_pprof: Option<bool>,
    /// Connections open at once (unlimited when absent; must be > 0).
    #[serde(rename = "connectionLimit", default)]
    pub connection_limit: Option<i64>,
    /// Log file.
    #[serde(rename = "logFile", default)]
    pub log_file: Option<PathBuf>,
    /// Log level: debug, verbose, error, panic.
    #[serde(rename = "logLevel", default)]
    pub log_level: Option<String>,
    /// Also log to stderr.
    #[serde(rename = "logToStderr", default)]
    pub log_to_stderr: bool,
    /// Per-node client certificates (the reference's CSR bootstrap), as written.
    #[serde(rename = "perNodeCertificate", default)]
    pub per_node_certificate: Option<PerNodeCertificateKey>,
    /// `perNodeCertificate` validated, when enabled.
    #[serde(skip)]
    pub node_certificate: Option<crate::kube::node_cert::Settings>,
    /// Version of the generated configuration.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: Option<String>,
    /// `"auto"` or the path of a configuration copied into `cniConfigDir`.
    #[serde(rename = "multusConfigFile", default = "default_auto")]
    pub multus_config_file: String,
    /// The runtime's configuration directory.
    #[serde(rename = "cniConfigDir", default = "default_cni_config_dir")]
    pub cni_config_dir: PathBuf,
    /// Directory searched for the primary network.
    #[serde(rename = "multusAutoconfigDir", default)]
    pub multus_autoconfig_dir: Option<PathBuf>,
    /// Pins the primary network's file.
    #[serde(rename = "multusMasterCNI", default)]
    pub multus_master_cni: Option<String>,
    /// Calls running at once (own key).
    #[serde(rename = "maxConcurrentCalls", default = "default_max_calls")]
    pub max_concurrent_calls: usize,
    /// Calls waiting for a slot before new ones are refused with code 11 (own key).
    #[serde(rename = "requestQueueLimit", default = "default_queue_limit")]
    pub queue_limit: usize,
    /// How long the shims wait for this daemon to become ready before an ADD fails with "try
    /// again later" (own key, written into the generated configuration; the shim's default,
    /// 10 s, when absent). A DaemonSet upgrade replaces the daemon: the deployment sets it to
    /// cover that window (deploy/daemon-config.yaml).
    #[serde(rename = "daemonReadyTimeoutSeconds", default)]
    pub shim_ready_timeout_seconds: Option<f64>,
    /// The whole file, for the overlay.
    #[serde(skip)]
    pub raw: Map<String, Value>,
}

/// The `perNodeCertificate` key as the reference reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PerNodeCertificateKey {
    /// Off unless true.
    #[serde(default)]
    pub enabled: bool,
    /// The kubeconfig whose credentials create the CSRs.
    #[serde(rename = "bootstrapKubeconfig", default)]
    pub bootstrap_kubeconfig: String,
    /// Where key and certificate are kept.
    #[serde(rename = "certDir", default)]
    pub cert_dir: String,
    /// The certificate lifetime asked for, a Go duration ("10m", "1h30m"); 10m when empty.
    #[serde(rename = "certDuration", default)]
    pub cert_duration: String,
}

impl PerNodeCertificateKey {
    /// The settings when enabled, or why they are invalid.
    fn settings(&self) -> Result<Option<crate::kube::node_cert::Settings>, String> {
        if !self.enabled {
            return Ok(None);
        }
        if self.bootstrap_kubeconfig.is_empty() || self.cert_dir.is_empty() {
            return Err(format!(
                "\"perNodeCertificate\" is enabled but needs \"bootstrapKubeconfig\" and \"certDir\" (got {:?} and {:?})",
                self.bootstrap_kubeconfig, self.cert_dir
            ));
        }
        let duration = if self.cert_duration.is_empty() {
            crate::kube::node_cert::DEFAULT_DURATION
        } else {
            parse_go_duration(&self.cert_duration)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!(
                        "\"perNodeCertificate.certDuration\" must be a positive Go duration such as \"10m\" or \"1h30m\", not {:?}",
                        self.cert_duration
                    )
                })?
        };
        Ok(Some(crate::kube::node_cert::Settings {
            bootstrap_kubeconfig: self.bootstrap_kubeconfig.clone().into(),
            cert_dir: self.cert_dir.clone().into(),
            duration,
        }))
    }
}

/// A duration as Go's `time.ParseDuration` reads it ("300ms", "1.5h", "2h45m"; units ns, us, µs,
/// ms, s, m, h); `None` when it is not one, or negative.
pub fn parse_go_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return None;
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += value * scale;
        rest = tail;
    }
    (nanos.is_finite() && nanos < u64::MAX as f64)
        .then(|| std::time::Duration::from_nanos(nanos as u64))
}

fn default_socket_dir() -> PathBuf {
    DEFAULT_SOCKET_DIR.into()
}
fn default_auto() -> String {
    "auto".into()
}
fn default_cni_config_dir() -> PathBuf {
    DEFAULT_CNI_CONFIG_DIR.into()
}
fn default_max_calls() -> usize {
    DEFAULT_MAX_CONCURRENT_CALLS
}
fn default_queue_limit() -> usize {
    DEFAULT_QUEUE_LIMIT
}

/// Keys that configure the daemon, not a call: left out of the overlay. `cniVersion` is one of
/// them here (unlike the reference): it versions the generated file, while a call's results must
/// be in the version its runtime asked for.
const DAEMON_ONLY: &[&str] = &[
    "chrootDir",
    "socketDir",
    "metricsPort",
    "enablePprof",
    "connectionLimit",
    "perNodeCertificate",
    "cniVersion",
    "multusConfigFile",
    "cniConfigDir",
    "multusAutoconfigDir",
    "multusMasterCNI",
    "maxConcurrentCalls",
    "requestQueueLimit",
    "daemonReadyTimeoutSeconds",
    "forceCNIVersion",
    "overrideNetworkName",
];

impl DaemonConfig {
    /// Reads and validates the file.
    pub fn load(path: &Path) -> Result<DaemonConfig, DaemonConfigError> {
        let bytes = std::fs::read(path).map_err(|source| DaemonConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes).map_err(|reason| DaemonConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses and validates the file's content.
    pub fn parse(bytes: &[u8]) -> Result<DaemonConfig, String> {
        let raw: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut conf: DaemonConfig =
            serde_json::from_value(Value::Object(raw.clone())).map_err(|e| e.to_string())?;
        conf.raw = raw;
        if let Some(limit) = conf.connection_limit {
            if limit <= 0 {
                return Err(format!(
                    "\"connectionLimit\" must be greater than 0, got {limit}"
                ));
            }
        }
        if let Some(wait) = conf.shim_ready_timeout_seconds {
            if !(wait.is_finite() && wait > 0.0 && wait <= 600.0) {
                return Err(format!(
                    "\"daemonReadyTimeoutSeconds\" must be a number of seconds in (0, 600], got {wait}"
                ));
            }
        }
        if conf.max_concurrent_calls == 0 {
            return Err("\"maxConcurrentCalls\" must be greater than 0".into());
        }
        if !conf.socket_dir.is_absolute() {
            return Err(format!(
                "\"socketDir\" must be an absolute path, not {:?}",
                conf.socket_dir
            ));
        }
        if let Some(key) = &conf.per_node_certificate {
            conf.node_certificate = key.settings()?;
        }
        if let Some(dir) = &conf.chroot_dir {
            if !dir.is_absolute() {
                return Err(format!(
                    "\"chrootDir\" must be an absolute path, not {dir:?}"
                ));
            }
        }
        Ok(conf)
    }

    /// The socket's path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir.join(super::api::SOCKET_NAME)
    }
}

/// The level of a `logLevel` key as the daemon and the shim read it: an unknown value (or none)
/// is error, the reference's default (the daemon reports the unknown one at start).
pub fn log_level(key: Option<&str>) -> crate::config::LogLevel {
    crate::config::LogLevel::from_key(key).unwrap_or(crate::config::LogLevel::Error)
}

/// Overlays the daemon configuration's call keys onto a call's stdin (a JSON object).
pub fn overlay(stdin: &[u8], daemon: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let calls_keys = daemon
        .iter()
        .filter(|(k, _)| !DAEMON_ONLY.contains(&k.as_str()));
    if calls_keys.clone().next().is_none() {
        return Ok(stdin.to_vec());
    }
    let mut conf: Map<String, Value> = serde_json::from_slice(stdin)
        .map_err(|e| format!("the network configuration is not a JSON object: {e}"))?;
    for (k, v) in calls_keys {
        conf.insert(k.clone(), v.clone());
    }
    serde_json::to_vec(&conf).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_log_level_is_described_and_means_errors_only() {
        use crate::config::LogLevel;
        assert_eq!(LogLevel::from_key(Some("Verbose")), Ok(LogLevel::Verbose));
        assert_eq!(LogLevel::from_key(None), Ok(LogLevel::Error));
        let typo = LogLevel::from_key(Some("verbos")).unwrap_err();
        assert!(
            typo.contains("\"verbos\" is not one of debug, verbose, error, panic"),
            "{typo}"
        );
        assert_eq!(log_level(Some("verbos")), LogLevel::Error);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_references() {
        let c = DaemonConfig::parse(b"{}").unwrap();
        assert_eq!(c.socket_dir, Path::new("/run/multus/"));
        assert_eq!(c.socket_path(), Path::new("/run/multus/multus.sock"));
        assert_eq!(c.multus_config_file, "auto");
        assert_eq!(c.cni_config_dir, Path::new("/etc/cni/net.d"));
        assert!(c.metrics_port.is_none() && c.connection_limit.is_none());
        assert!(!c.log_to_stderr && c.chroot_dir.is_none());
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (conf, key) in [
            (r#"{"connectionLimit":0}"#, "connectionLimit"),
            (r#"{"socketDir":"run"}"#, "socketDir"),
            (r#"{"chrootDir":"hostroot"}"#, "chrootDir"),
            (
                r#"{"perNodeCertificate":{"enabled":true}}"#,
                "perNodeCertificate",
            ),
            (
                r#"{"perNodeCertificate":{"enabled":true,"bootstrapKubeconfig":"/b","certDir":"/c","certDuration":"10"}}"#,
                "perNodeCertificate.certDuration",
            ),
            (
                r#"{"perNodeCertificate":{"enabled":true,"bootstrapKubeconfig":"/b","certDir":"/c","certDuration":"-5m"}}"#,
                "perNodeCertificate.certDuration",
            ),
            (
                r#"{"perNodeCertificate":{"enabled":"yes"}}"#,
                "invalid type",
            ),
            (r#"{"metricsPort":"x"}"#, "invalid type"),
            (
                r#"{"daemonReadyTimeoutSeconds":0}"#,
                "daemonReadyTimeoutSeconds",
            ),
            (r#"{"daemonReadyTimeoutSeconds":"60"}"#, "invalid type"),
            ("[]", "JSON object"),
        ] {
            let e = DaemonConfig::parse(conf.as_bytes()).unwrap_err();
            assert!(e.contains(key), "{conf}: {e}");
        }
    }

    #[test]
    fn per_node_certificate_follows_the_reference() {
        use std::time::Duration;
        let c = DaemonConfig::parse(br#"{"perNodeCertificate":{"enabled":false}}"#).unwrap();
        assert!(c.node_certificate.is_none());
        let c = DaemonConfig::parse(
            br#"{"perNodeCertificate":{"enabled":true,"bootstrapKubeconfig":"/etc/b","certDir":"/var/c"}}"#,
        )
        .unwrap();
        let s = c.node_certificate.unwrap();
        assert_eq!(s.duration, Duration::from_secs(600));
        assert_eq!(s.bootstrap_kubeconfig, Path::new("/etc/b"));
        assert_eq!(s.cert_dir, Path::new("/var/c"));
        for (text, secs) in [
            ("10m", 600.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("90s", 90.0),
            ("2h45m10.5s", 9910.5),
            ("1500ms", 1.5),
            ("0", 0.0),
        ] {
            assert_eq!(
                parse_go_duration(text).map(|d| d.as_secs_f64()),
                Some(secs),
                "{text}"
            );
        }
        for bad in ["", "10", "m", "1x", "-1m", "1h-5m", "."] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn overlay_replaces_call_keys_and_keeps_daemon_keys_out() {
        let daemon = DaemonConfig::parse(
            br#"{"cniVersion":"0.3.1","socketDir":"/run/m","cniDir":"/var/lib/x","namespaceIsolation":true,"daemonReadyTimeoutSeconds":60}"#,
        )
        .unwrap();
        let stdin = br#"{"cniVersion":"1.0.0","type":"multus-shim","cniDir":"/old","name":"n"}"#;
        let out: Value = serde_json::from_slice(&overlay(stdin, &daemon.raw).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"cniVersion":"1.0.0","type":"multus-shim","cniDir":"/var/lib/x","name":"n","namespaceIsolation":true})
        );
        // Nothing to overlay: stdin untouched, even when it is not JSON (the call reports it).
        assert_eq!(overlay(b"junk", &Map::new()).unwrap(), b"junk");
        assert!(overlay(b"junk", &daemon.raw).is_err());
    }
}
