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
        /// Key path of the offending field (`ipam.routes[0].gw`), empty for the whole document.
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
        format!(": {path}")
    }
}

impl From<crate::explain::Explained> for ConfigError {
    fn from(e: crate::explain::Explained) -> Self {
        ConfigError::Decode {
            path: e.path,
            reason: e.reason,
        }
    }
}
