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

/// Decodes `bytes` as `T`, dropping every key of `neutral` whose value does not decode (the
/// default is used instead) and describing each one dropped. For the commands that must run
/// whatever those keys say (DEL and GC: a typo in a logging key never blocks a teardown); any
/// other decoding failure is returned as usual.
pub(crate) fn decode_tolerant<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    neutral: &[&str],
) -> Result<(T, Vec<String>), ConfigError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Decode {
            path: String::new(),
            reason: e.to_string(),
        })?;
    let mut dropped = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(decoded) => return Ok((decoded, dropped)),
            Err(e) => e,
        };
        let key = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) if neutral.contains(&key.as_str()) => {
                key.clone()
            }
            _ => {
                return Err(ConfigError::Decode {
                    path: e.path().to_string(),
                    reason: e.inner().to_string(),
                })
            }
        };
        match value.as_object_mut().and_then(|o| o.remove(&key)) {
            Some(_) => dropped.push(format!(
                "{:?} is ignored: {} (at `{}`)",
                key,
                e.inner(),
                e.path()
            )),
            // Nothing left to drop: report the failure as it is.
            None => {
                return Err(ConfigError::Decode {
                    path: e.path().to_string(),
                    reason: e.inner().to_string(),
                })
            }
        }
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
