//! CNI error objects and the spec's error codes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::version::CniVersion;

/// Error codes defined by the CNI specification (plus plugin-specific ones from 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables.
    InvalidEnvironment,
    /// 5: I/O failure.
    IoFailure,
    /// 6: failed to decode content.
    DecodingFailure,
    /// 7: invalid network config.
    InvalidNetworkConfig,
    /// 11: try again later.
    TryAgainLater,
    /// 50: the plugin is not available (STATUS).
    PluginNotAvailable,
    /// 51: the plugin is available with limited connectivity (STATUS).
    LimitedConnectivity,
    /// 100+: plugin-specific.
    Plugin(u32),
}

impl ErrorCode {
    /// Plugin-specific code: a delegate plugin failed.
    pub const DELEGATE_FAILED: ErrorCode = ErrorCode::Plugin(100);
    /// Plugin-specific code: the Kubernetes API could not be used.
    pub const KUBERNETES: ErrorCode = ErrorCode::Plugin(101);
    /// Plugin-specific code: the eBPF dataplane could not be set up.
    pub const EBPF: ErrorCode = ErrorCode::Plugin(102);
    /// Plugin-specific code: netlink work inside the pod failed.
    pub const NETLINK: ErrorCode = ErrorCode::Plugin(103);
    /// Plugin-specific code: CHECK found the eBPF SBR state different from what ADD set up.
    pub const SBR_DRIFT: ErrorCode = ErrorCode::Plugin(104);
    /// Plugin-specific code: ADD refused because the container already has an ADD (completed
    /// with another plan, unfinished, or unreadable); nothing was changed.
    pub const ALREADY_ADDED: ErrorCode = ErrorCode::Plugin(105);

    /// The numeric code.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Plugin(n) => n,
        }
    }

    /// The code for a number received from another plugin.
    pub fn from_u32(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::IoFailure,
            6 => ErrorCode::DecodingFailure,
            7 => ErrorCode::InvalidNetworkConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            n => ErrorCode::Plugin(n),
        }
    }
}

/// A CNI error as printed on stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    /// The spec code.
    pub code: ErrorCode,
    /// A short message a person can act on.
    pub msg: String,
    /// More detail (a delegate's stderr, a chain of causes).
    pub details: String,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cni_version: Option<String>,
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    details: String,
}

impl CniError {
    /// A new error.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object the spec prescribes.
    pub fn to_json(&self, version: CniVersion) -> Value {
        serde_json::to_value(Wire {
            cni_version: Some(version.as_str().to_string()),
            code: self.code.as_u32(),
            msg: self.msg.clone(),
            details: self.details.clone(),
        })
        .unwrap_or(Value::Null)
    }

    /// Parses an error printed by another plugin; `None` if `bytes` is not a CNI error object.
    pub fn parse(bytes: &[u8]) -> Option<CniError> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        if wire.code == 0 {
            return None;
        }
        Some(CniError {
            code: ErrorCode::from_u32(wire.code),
            msg: wire.msg,
            details: wire.details,
        })
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e =
            CniError::new(ErrorCode::InvalidEnvironment, "CNI_IFNAME is invalid").with_details("x");
        let j = e.to_json(CniVersion::V1_0_0);
        assert_eq!(j["code"], 4);
        assert_eq!(j["cniVersion"], "1.0.0");
        let back = CniError::parse(serde_json::to_vec(&j).unwrap().as_slice()).unwrap();
        assert_eq!(back, e);
    }
}
