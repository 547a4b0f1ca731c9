//! The multus configuration (`00-multus.conf`), with the reference's keys and defaults plus this
//! implementation's own options. Unknown keys are kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{network::NetworkConfig, ConfigError};
use crate::cni::CniVersion;

/// The `type` of a multus configuration: the name the runtime runs this plugin by.
pub const MULTUS_TYPE: &str = "multus";
/// The type of the same configuration in thick mode: the runtime runs `multus-shim`, which hands
/// the configuration to `multus-daemon`.
pub const SHIM_TYPE: &str = "multus-shim";
/// Default directory of on-disk network configurations referenced by name (`confDir`).
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// Default directory of the delegate cache.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
/// Default plugin directory, searched before `CNI_PATH`.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";

/// `logOptions`: rotation of the log file, with the reference's keys, units and defaults (Multus
/// rotates through lumberjack: 100 MiB, 5 backups, 5 days, compressed). `0` means "the default
/// size" for `maxSize` and "no limit" for `maxBackups` and `maxAge`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Days a backup is kept.
    #[serde(rename = "maxAge", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// Size in MiB at which the file is rotated.
    #[serde(rename = "maxSize", default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// Backups kept.
    #[serde(
        rename = "maxBackups",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_backups: Option<u32>,
    /// Backups are gzip-compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
}

/// The multus NetConf.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MultusConf {
    /// Version the runtime asked for.
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_version: Option<String>,
    /// Network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Plugin type (`multus`).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Kubeconfig path for API access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Directory of named on-disk network configurations.
    #[serde(rename = "confDir", default = "default_conf_dir")]
    pub conf_dir: PathBuf,
    /// Directory of the delegate cache.
    #[serde(rename = "cniDir", default = "default_cni_dir")]
    pub cni_dir: PathBuf,
    /// Plugin directory searched before `CNI_PATH` (a `:`-separated list is accepted).
    #[serde(rename = "binDir", default = "default_bin_dir")]
    pub bin_dir: String,
    /// Inline delegate networks; the first (or the one with `masterplugin`) is the master.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegates: Vec<Value>,
    /// The cluster-wide default network (replaces `delegates`).
    #[serde(
        rename = "clusterNetwork",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_network: Option<String>,
    /// Networks attached to every pod (not in system namespaces).
    #[serde(
        rename = "defaultNetworks",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_networks: Vec<String>,
    /// Namespaces whose pods get no default networks.
    #[serde(rename = "systemNamespaces", default = "default_system_namespaces")]
    pub system_namespaces: Vec<String>,
    /// Namespace of clusterNetwork / defaultNetworks / default-network NADs.
    #[serde(rename = "multusNamespace", default = "default_multus_namespace")]
    pub multus_namespace: String,
    /// Pods may only reference NADs of their own namespace (plus `globalNamespaces`).
    #[serde(rename = "namespaceIsolation", default)]
    pub namespace_isolation: bool,
    /// Comma-separated namespaces usable by every pod under isolation.
    #[serde(
        rename = "globalNamespaces",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub global_namespaces: Option<String>,
    /// Log file.
    #[serde(rename = "logFile", default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// Log level: debug, verbose, error, panic.
    #[serde(rename = "logLevel", default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Also log to stderr.
    #[serde(
        rename = "logToStderr",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_to_stderr: Option<bool>,
    /// Rotation of `logFile` (the reference's defaults apply when absent).
    #[serde(
        rename = "logOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub log_options: Option<LogOptions>,
    /// ADD (and STATUS) wait for this file, written by the cluster network when it is ready.
    #[serde(
        rename = "readinessindicatorfile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_indicator_file: Option<PathBuf>,
    /// Capabilities multus declares to the runtime.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub capabilities: Map<String, Value>,
    /// Runtime configuration the runtime passed for those capabilities.
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub runtime_config: Map<String, Value>,
    /// Auxiliary CNI chain: the plugin configurations in `<name>/` beside `clusterNetwork` run,
    /// after `passthru`, as one more attachment of every pod (Multus 4.2).
    #[serde(
        rename = "auxiliaryCNIChainName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub auxiliary_cni_chain_name: Option<String>,
    /// Keep the delegate cache when a delegate DEL fails, so a retried DEL tries again.
    #[serde(rename = "retryDeleteOnError", default)]
    pub retry_delete_on_error: bool,
    /// Result of the previous plugin when multus is chained.
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_result: Option<Value>,
    /// GC: the attachments the runtime still uses.
    #[serde(
        rename = "cni.dev/valid-attachments",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// Upper bound on one delegate plugin call, in seconds (ours; default 120 for ADD, 60 for DEL).
    #[serde(
        rename = "delegateTimeoutSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delegate_timeout_seconds: Option<u64>,
    /// How long ADD waits for the readiness indicator file, in seconds (ours; default 45).
    #[serde(
        rename = "readinessTimeoutSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub readiness_timeout_seconds: Option<u64>,
    /// Total time ADD may spend on Kubernetes API reads (pod, NADs), retries included (ours; default 10).
    #[serde(
        rename = "apiDeadlineSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_deadline_seconds: Option<f64>,
    /// Time DEL may spend on the API (clearing network-status; rebuilding without a cache) (ours; default 1).
    #[serde(
        rename = "delApiDeadlineSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub del_api_deadline_seconds: Option<f64>,
    /// kubelet PodResources socket (ours; default /var/lib/kubelet/pod-resources/kubelet.sock).
    #[serde(
        rename = "podResourcesSocket",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_resources_socket: Option<PathBuf>,
    /// kubelet device-manager checkpoint (ours; default /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint).
    #[serde(
        rename = "deviceCheckpointFile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_checkpoint_file: Option<PathBuf>,
    /// Device-info directory (ours; default /var/run/k8s.cni.cncf.io/devinfo).
    #[serde(
        rename = "deviceInfoDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info_dir: Option<PathBuf>,
    /// The eBPF source-based routing options (ours).
    #[serde(rename = "ebpfSbr", default, skip_serializing_if = "Option::is_none")]
    pub ebpf_sbr: Option<EbpfSbrOptions>,
    /// Keys this implementation does not know (kept).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How multus uses the `ebpf-sbr` plugin for its delegates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EbpfSbrOptions {
    /// Run every `sbr` plugin of the delegates (NADs included) as `ebpf-sbr`, with its
    /// configuration unchanged: existing NADs migrate without edits.
    #[serde(rename = "replaceSbr", default)]
    pub replace_sbr: bool,
    /// Chain `ebpf-sbr` after every secondary attachment (CNI 0.3.0 and later).
    #[serde(rename = "allSecondary", default)]
    pub all_secondary: bool,
    /// bpffs directory for the pins, given to every `ebpf-sbr` plugin that does not set one.
    #[serde(rename = "bpffsDir", default, skip_serializing_if = "Option::is_none")]
    pub bpffs_dir: Option<PathBuf>,
    /// Extra keys for the chained `ebpf-sbr` plugins (for example `"gateway"`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidAttachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    #[serde(default)]
    pub ifname: String,
}

/// What a configuration is validated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// ADD, CHECK, STATUS: everything checked.
    Create,
    /// DEL, GC: what the cache knows need not be in the configuration.
    Teardown,
}

/// Log verbosity, in the reference's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Informational and above.
    Verbose,
    /// Errors only.
    Error,
    /// Nothing but crashes.
    Panic,
}

impl LogLevel {
    /// Reads a `logLevel` key (any case; missing or empty is error, the reference's default); an
    /// unknown value is described. The one vocabulary of the multus configuration, the daemon's
    /// and the shim's.
    pub fn from_key(key: Option<&str>) -> Result<LogLevel, String> {
        match key.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("error") => Ok(LogLevel::Error),
            Some("debug") => Ok(LogLevel::Debug),
            Some("verbose") => Ok(LogLevel::Verbose),
            Some("panic") => Ok(LogLevel::Panic),
            Some(other) => Err(format!(
                "\"logLevel\" {other:?} is not one of debug, verbose, error, panic"
            )),
        }
    }
}

fn default_conf_dir() -> PathBuf {
    DEFAULT_CONF_DIR.into()
}
fn default_cni_dir() -> PathBuf {
    DEFAULT_CNI_DIR.into()
}
fn default_bin_dir() -> String {
    DEFAULT_BIN_DIR.into()
}
fn default_system_namespaces() -> Vec<String> {
    vec!["kube-system".into()]
}
fn default_multus_namespace() -> String {
    "kube-system".into()
}

/// The keys that change nothing DEL or GC tears down: logging, and what only ADD or STATUS use
/// (readiness, API deadlines of ADD, the kubelet's device sources) or only bounds how long a
/// teardown may take. An invalid one is reported and replaced by its default for DEL and GC
/// ([`MultusConf::parse_for_teardown`]); ADD, CHECK and STATUS refuse it.
pub const TEARDOWN_NEUTRAL_KEYS: &[&str] = &[
    "logLevel",
    "logFile",
    "logToStderr",
    "logOptions",
    "readinessindicatorfile",
    "readinessTimeoutSeconds",
    "apiDeadlineSeconds",
    "delApiDeadlineSeconds",
    "delegateTimeoutSeconds",
    "podResourcesSocket",
    "deviceCheckpointFile",
];

impl MultusConf {
    /// Parses and validates the configuration read from stdin.
    pub fn parse(bytes: &[u8]) -> Result<MultusConf, ConfigError> {
        require_input(bytes)?;
        let conf: MultusConf = crate::explain::from_bytes(bytes)?;
        conf.validate(Purpose::Create)?;
        conf.log_level()?;
        Ok(conf)
    }

    /// Parses the configuration for a teardown (DEL, GC): an invalid value of one of the
    /// [`TEARDOWN_NEUTRAL_KEYS`] is dropped (its default applies) and described in the returned
    /// notes instead of failing the call; everything else is validated as [`MultusConf::parse`]
    /// does.
    pub fn parse_for_teardown(bytes: &[u8]) -> Result<(MultusConf, Vec<String>), ConfigError> {
        require_input(bytes)?;
        let (conf, notes) = Self::decode_for_teardown(bytes)?;
        conf.validate(Purpose::Teardown)?;
        Ok((conf, notes))
    }

    /// Decodes the configuration as a teardown reads it (see [`MultusConf::parse_for_teardown`]),
    /// without the checks of a configuration given to the plugin (for `multusctl`, which reads
    /// the node's file).
    pub fn decode_for_teardown(bytes: &[u8]) -> Result<(MultusConf, Vec<String>), ConfigError> {
        let (mut conf, mut notes): (MultusConf, _) =
            super::decode_tolerant(bytes, TEARDOWN_NEUTRAL_KEYS)?;
        if let Err(ConfigError::Invalid(e) | ConfigError::Decode { reason: e, .. }) =
            conf.log_level()
        {
            notes.push(format!("{e}; the default level (error) is used"));
            conf.log_level = None;
        }
        Ok((conf, notes))
    }

    fn validate(&self, purpose: Purpose) -> Result<(), ConfigError> {
        self.version()?;
        if self.plugin_type.is_empty() {
            return Err(ConfigError::Invalid("\"type\" is missing".into()));
        }
        if self.plugin_type != MULTUS_TYPE && self.plugin_type != SHIM_TYPE {
            return Err(ConfigError::Invalid(format!(
                "\"type\" is {}, not \"{MULTUS_TYPE}\" (thin mode) or \"{SHIM_TYPE}\" (thick mode): \
                 install the plugin under that name and write it as \"type\" (the name the runtime \
                 runs it by)",
                crate::explain::quote(&self.plugin_type)
            )));
        }
        // A teardown deletes what the cache recorded at ADD: a configuration edited since to
        // name no network (an operator's mistake) must not leave its pods stuck in
        // Terminating. Without a cache entry such a DEL finds nothing to delete.
        if purpose == Purpose::Create
            && self.delegates.is_empty()
            && self.cluster_network.as_deref().unwrap_or("").is_empty()
        {
            return Err(ConfigError::Invalid(
                "no \"delegates\" and no \"clusterNetwork\": multus needs at least one network to delegate to".into(),
            ));
        }
        if self.cni_dir.as_os_str().is_empty() || !self.cni_dir.is_absolute() {
            return Err(ConfigError::Invalid(format!(
                "\"cniDir\" must be an absolute path, not {}",
                crate::explain::quote(&self.cni_dir.display().to_string())
            )));
        }
        Ok(())
    }

    /// The version the runtime asked for (missing means 0.1.0).
    pub fn version(&self) -> Result<CniVersion, ConfigError> {
        Ok(CniVersion::parse_opt(self.cni_version.as_deref())?)
    }

    /// The inline delegates, validated.
    pub fn delegate_networks(&self) -> Result<Vec<NetworkConfig>, ConfigError> {
        self.delegates
            .iter()
            .enumerate()
            .map(|(i, v)| NetworkConfig::from_value(v.clone(), &format!("delegates[{i}]")))
            .collect()
    }

    /// The plugin search path: `binDir` first, then `CNI_PATH`.
    pub fn search_path(&self, cni_path: &[PathBuf]) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::env::split_paths(&self.bin_dir)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        for p in cni_path {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The configured log level (default: error).
    pub fn log_level(&self) -> Result<LogLevel, ConfigError> {
        LogLevel::from_key(self.log_level.as_deref()).map_err(ConfigError::Invalid)
    }

    /// Deadline of the API reads of ADD.
    pub fn api_deadline(&self) -> std::time::Duration {
        seconds(self.api_deadline_seconds, 10.0)
    }

    /// Deadline of the API work of DEL.
    pub fn del_api_deadline(&self) -> std::time::Duration {
        seconds(self.del_api_deadline_seconds, 1.0)
    }

    /// The namespaces usable by every pod under namespace isolation.
    pub fn global_namespace_list(&self) -> Vec<String> {
        let raw = self.global_namespaces.as_deref().unwrap_or("default");
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

fn require_input(bytes: &[u8]) -> Result<(), ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::Decode {
            path: String::new(),
            reason: "stdin is empty; expected the network configuration as JSON".into(),
        });
    }
    Ok(())
}

fn seconds(v: Option<f64>, default: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(v.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multus configuration's twin of the `sbr_conf` fuzz finding: invalid UTF-8 in a key
    /// multus ignores must not make DEL refuse what ADD accepted.
    #[test]
    fn teardown_accepts_what_add_accepts_even_with_invalid_utf8() {
        let input =
            b"{\"type\":\"multus\",\"delegates\":[{\"type\":\"bridge\"}],\"vendor\":\"\xc3\x28\"}";
        let add = MultusConf::parse(input);
        let del = MultusConf::parse_for_teardown(input);
        assert_eq!(add.is_ok(), del.is_ok(), "ADD: {add:?}, DEL: {del:?}");
        assert!(
            add.is_ok(),
            "invalid UTF-8 is read as Go reads it (U+FFFD): {add:?}"
        );
    }

    /// The configuration is kept whole for the delegates, so a number beyond f64's range is
    /// refused, by ADD and DEL alike, with where it is (the sbr_conf fuzz target found ADD and
    /// DEL disagreeing on such a number in the ebpf-sbr plugin's configuration).
    #[test]
    fn teardown_accepts_what_add_accepts_even_with_a_number_out_of_range() {
        let input = br#"{"type":"multus","delegates":[{"type":"bridge"}],"vendor":1e999}"#;
        let add = MultusConf::parse(input);
        let del = MultusConf::parse_for_teardown(input);
        assert_eq!(add.is_ok(), del.is_ok(), "ADD: {add:?}, DEL: {del:?}");
        let refused = format!("{:?}", add.unwrap_err());
        assert!(
            refused.contains("column 63: a number out of range"),
            "{refused}"
        );
    }

    #[test]
    fn log_options_are_typed() {
        let c = MultusConf::parse(br#"{"type":"multus","delegates":[{"type":"bridge"}],"logOptions":{"maxSize":10,"compress":false}}"#).unwrap();
        assert_eq!(
            c.log_options,
            Some(LogOptions {
                max_size: Some(10),
                compress: Some(false),
                ..LogOptions::default()
            })
        );
        let err = MultusConf::parse(
            br#"{"type":"multus","delegates":[{"type":"bridge"}],"logOptions":{"maxSize":-1}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("logOptions.maxSize"), "{err}");
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = MultusConf::parse(br#"{"cniVersion":"0.3.1","name":"multus","type":"multus","delegates":[{"type":"bridge"}],"x-vendor":7}"#).unwrap();
        assert_eq!(c.cni_dir, PathBuf::from(DEFAULT_CNI_DIR));
        assert_eq!(c.system_namespaces, vec!["kube-system"]);
        assert_eq!(c.extra["x-vendor"], 7);
        let round = serde_json::to_value(&c).unwrap();
        assert_eq!(round["x-vendor"], 7);
    }

    #[test]
    fn errors_name_the_field() {
        let e = MultusConf::parse(
            br#"{"type":"multus","delegates":[{"type":"b"}],"namespaceIsolation":"yes"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("namespaceIsolation"), "{e}");
        assert!(matches!(
            MultusConf::parse(br#"{"type":"multus"}"#),
            Err(ConfigError::Invalid(_))
        ));
        let e =
            MultusConf::parse(br#"{"type":"multus-cni","delegates":[{"type":"b"}]}"#).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid(m) if m.contains("\"multus-cni\", not \"multus\"")),
            "{e}"
        );
        assert!(matches!(
            MultusConf::parse(
                br#"{"cniVersion":"9.9.9","type":"multus","delegates":[{"type":"b"}]}"#
            ),
            Err(ConfigError::Version(_))
        ));
        assert!(matches!(
            MultusConf::parse(b"{not json"),
            Err(ConfigError::Decode { .. })
        ));
    }

    #[test]
    fn a_teardown_ignores_invalid_neutral_keys_only() {
        let bad = br#"{"type":"multus","delegates":[{"type":"b"}],"logLevel":"info",
            "logOptions":{"maxSize":-1},"logToStderr":"yes","delegateTimeoutSeconds":"60s"}"#;
        assert!(MultusConf::parse(bad).is_err());
        let (c, notes) = MultusConf::parse_for_teardown(bad).unwrap();
        assert_eq!(c.log_level().unwrap(), LogLevel::Error);
        assert_eq!(
            (c.log_options, c.log_to_stderr, c.delegate_timeout_seconds),
            (None, None, None)
        );
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("\"info\"")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("logOptions.maxSize")),
            "{notes:?}"
        );
        // Keys that decide what is torn down stay strict.
        for strict in [
            br#"{"type":"multus","delegates":[{"type":"b"}],"retryDeleteOnError":"yes"}"#
                .as_slice(),
            br#"{"type":"multus","delegates":[{"type":"b"}],"cniDir":"relative"}"#,
            br#"{"type":"multus","delegates":"x"}"#,
            br#"{"type":"multus","delegates":[{"type":"b"}],"ebpfSbr":{"replaceSbr":1}}"#,
        ] {
            assert!(MultusConf::parse_for_teardown(strict).is_err());
        }
        let (_, notes) = MultusConf::parse_for_teardown(
            br#"{"type":"multus","delegates":[{"type":"b"}],"logLevel":"debug"}"#,
        )
        .unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn search_path_puts_bin_dir_first() {
        let c =
            MultusConf::parse(br#"{"type":"multus","binDir":"/a:/b","delegates":[{"type":"b"}]}"#)
                .unwrap();
        assert_eq!(
            c.search_path(&["/b".into(), "/c".into()]),
            vec![PathBuf::from("/a"), "/b".into(), "/c".into()]
        );
    }
}
