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

/// Decodes `bytes` as `T`, dropping every key of `neutral` whose value does not decode (the
/// default is used instead) and describing each one dropped. For the commands that must run
/// whatever those keys say (DEL and GC: a typo in a logging key never blocks a teardown); any
/// other decoding failure is returned as usual.
///
/// What the commands that create (ADD, decoding `T` straight from the bytes) accept is accepted
/// here unchanged, first: a JSON value read as a whole is stricter than `T` is about the keys `T`
/// skips (a number beyond f64's range under a key nobody reads fails as a `Value`; Go's decoder
/// skips it too), and a configuration ADD took must never be one DEL refuses.
pub(crate) fn decode_tolerant<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    neutral: &[&str],
) -> Result<(T, Vec<String>), ConfigError> {
    if let Ok(decoded) = crate::explain::from_bytes::<T>(bytes) {
        return Ok((decoded, Vec::new()));
    }
    let mut value: serde_json::Value = crate::explain::from_bytes(bytes)?;
    let mut dropped = Vec::new();
    loop {
        let e = match crate::explain::from_value::<T>(&value) {
            Ok(decoded) => return Ok((decoded, dropped)),
            Err(e) => e,
        };
        let key = e
            .path
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        let removed = neutral.contains(&key.as_str())
            && value.as_object_mut().and_then(|o| o.remove(&key)).is_some();
        if !removed {
            return Err(e.into());
        }
        dropped.push(format!("{} is ignored: {e}", crate::explain::quote(&key)));
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
