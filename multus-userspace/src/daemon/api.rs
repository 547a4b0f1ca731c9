//! The daemon's wire format, the reference's (`pkg/server/api` of Multus): one JSON request per
//! CNI call, `{"env": {...}, "config": <stdin, base64>, "interfaceAttributes": {...}}`, answered
//! `200 {"Result": <result>}` (empty body for commands without a result) or `400 <CNI error>`.
//! Shared by the daemon and the shim, so it uses serde only. See docs/daemon-api.md.

use std::collections::BTreeMap;

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cni::{result::CniResult, CniVersion};

/// The CNI endpoint.
pub const CNI_PATH: &str = "/cni";
/// Liveness: 200 while the daemon serves.
pub const HEALTH_PATH: &str = "/healthz";
/// Readiness: 200 while the daemon takes new calls, 503 from SIGTERM on.
pub const READY_PATH: &str = "/readyz";
/// The daemon's own state (not in the reference): readiness, calls, caches.
pub const STATUS_PATH: &str = "/status";
/// The socket's file name inside `socketDir`.
pub const SOCKET_NAME: &str = "multus.sock";
/// The largest request body the daemon reads (a CNI configuration is a few KiB).
pub const MAX_BODY: usize = 4 << 20;

/// One CNI call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CniRequest {
    /// The runtime's environment (the shim sends all of it; the daemon reads the `CNI_*` keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The configuration the runtime gave on stdin, base64 as Go encodes a `[]byte`.
    #[serde(default, with = "bytes_b64", skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<u8>,
    /// Hot-plug attributes (`/delegate` in the reference); accepted and ignored on `/cni`.
    #[serde(
        rename = "interfaceAttributes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub interface_attributes: Option<Value>,
}

impl CniRequest {
    /// A request from an environment and stdin.
    pub fn new(env: impl IntoIterator<Item = (String, String)>, config: &[u8]) -> CniRequest {
        CniRequest {
            env: env.into_iter().collect(),
            config: config.to_vec(),
            interface_attributes: None,
        }
    }
}

/// A successful answer (`Result` has no JSON tag in the reference, hence the capital).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CniResponse {
    /// The result, in CNI 1.0.0 or newer (the shim converts it to the runtime's version).
    #[serde(rename = "Result")]
    pub result: Value,
}

/// What `GET /status` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's version.
    #[serde(default)]
    pub version: std::borrow::Cow<'static, str>,
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    /// Whether SIGTERM was received.
    pub draining: bool,
    /// Calls running or waiting.
    #[serde(rename = "inFlight")]
    pub in_flight: usize,
    /// Calls waiting for a slot.
    pub waiting: usize,
    /// Whether the daemon has an API client.
    pub kubernetes: bool,
    /// The watch caches.
    #[serde(default)]
    pub caches: Vec<CacheState>,
    /// Calls answered, by command and code.
    #[serde(default)]
    pub calls: Vec<CallCount>,
    /// Why `/readyz` fails (besides a drain): e.g. no primary network yet.
    #[serde(rename = "notReady", default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<String>,
    /// Missing node prerequisites that disable a feature without blocking readiness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

/// One watch cache in [`DaemonStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheState {
    /// The resource.
    pub resource: std::borrow::Cow<'static, str>,
    /// Whether the first list completed.
    pub synced: bool,
    /// Objects held.
    pub objects: usize,
    /// Seconds since the last list or watch event.
    #[serde(rename = "lastEventAgeSeconds")]
    pub last_event_age_seconds: Option<f64>,
    /// Watch errors so far.
    pub errors: u64,
}

/// Calls answered with one code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallCount {
    /// The command.
    pub command: std::borrow::Cow<'static, str>,
    /// The CNI code (0: success).
    pub code: u64,
    /// How many.
    pub count: u64,
}

/// The version a result travels in: the runtime's when it is 1.0.0 or newer (nothing is lost),
/// else 1.0.0, the version the reference's shim decodes.
pub fn wire_version(requested: CniVersion) -> CniVersion {
    requested.max(CniVersion::V1_0_0)
}

/// Converts a result from the wire to the runtime's version.
pub fn result_for_runtime(
    wire: &Value,
    requested: CniVersion,
) -> Result<Value, crate::cni::result::ResultError> {
    CniResult::convert(wire, requested)
}

mod bytes_b64 {
    use super::{Engine, STANDARD};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // Go encodes a nil []byte as null.
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(Vec::new()),
            Some(t) => STANDARD
                .decode(t.as_bytes())
                .map_err(|e| D::Error::custom(format!("\"config\" is not base64: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_the_reference_encoding() {
        // What the reference shim sends (Go: json.Marshal of api.Request with os.Environ()).
        let go = r#"{"env":{"CNI_COMMAND":"ADD","CNI_IFNAME":"eth0"},"config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAifQ=="}"#;
        let r: CniRequest = serde_json::from_str(go).unwrap();
        assert_eq!(r.config, br#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(r.env["CNI_COMMAND"], "ADD");
        assert_eq!(serde_json::to_string(&r).unwrap(), go);
        let with_attrs = r#"{"env":{},"config":null,"interfaceAttributes":{"ips":["10.0.0.5/24"],"cni-args":null}}"#;
        let r: CniRequest = serde_json::from_str(with_attrs).unwrap();
        assert!(r.config.is_empty());
        assert_eq!(r.interface_attributes.unwrap()["ips"][0], "10.0.0.5/24");
        assert!(serde_json::from_str::<CniRequest>(r#"{"config":"!!"}"#).is_err());
    }

    #[test]
    fn response_uses_the_untagged_go_field_name() {
        let r = CniResponse {
            result: serde_json::json!({"cniVersion":"1.0.0"}),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"Result":{"cniVersion":"1.0.0"}}"#
        );
    }

    #[test]
    fn results_travel_in_1_0_0_or_newer() {
        assert_eq!(wire_version(CniVersion::V0_3_1), CniVersion::V1_0_0);
        assert_eq!(wire_version(CniVersion::V1_1_0), CniVersion::V1_1_0);
    }
}
