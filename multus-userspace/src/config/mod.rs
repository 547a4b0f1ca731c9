//! Configuration: the multus NetConf (`00-multus.conf`) and lossless delegate network configs.

pub mod netconf;
pub mod network;

pub use netconf::{LogLevel, LogOptions, MultusConf};
pub use network::NetworkConfig;

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or a field of the wrong type (CNI code 6).
    #[error("cannot decode the network configuration{}: {reason}", at_path(.path))]
    Decode {
        /// JSON path of the offending field, when known.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Well-formed but unusable (CNI code 7).
    #[error("invalid network configuration: {0}")]
    Invalid(String),
    /// A version this implementation does not speak (CNI code 1).
    #[error("incompatible CNI version: {0}")]
    Version(#[from] crate::cni::version::UnsupportedVersion),
}

fn at_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!(" at `{path}`")
    }
}

impl ConfigError {
    pub(crate) fn decode(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        ConfigError::Decode {
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        }
    }
}
