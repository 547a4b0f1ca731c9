//! The auxiliary CNI chain (`auxiliaryCNIChainName`, Multus 4.2): plugins an operator drops into
//! `<directory of clusterNetwork>/<name>/` (one plugin configuration per `.conf`/`.json` file, in
//! file-name order) run for every pod as one more attachment, after its networks, as the conflist
//! `{"name": <name>, "plugins": [{"type": "passthru"}, ...]}`: `passthru` (built in, see
//! [`crate::delegate::PASSTHRU`]) starts the chain with an empty result. DEL runs it first (it
//! is the last attachment); CHECK skips it, as the reference does. Vendors use it for
//! plugins that act on every pod without touching the operator-managed network configuration
//! (service-mesh CNI plugins, for example). No files, no chain.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{
    config::{network::validate_plugin_type, ConfigError, MultusConf, NetworkConfig},
    delegate::PASSTHRU,
};

/// The chain's name, when one is configured and valid (it becomes a directory name).
pub fn name(conf: &MultusConf) -> Result<Option<&str>, ConfigError> {
    match conf.auxiliary_cni_chain_name.as_deref() {
        None | Some("") => Ok(None),
        Some(n) => {
            validate_plugin_type(n).map_err(|_| {
                ConfigError::Invalid(format!(
                    "\"auxiliaryCNIChainName\" {} must be a plain directory name",
                    crate::explain::quote(n)
                ))
            })?;
            Ok(Some(n))
        }
    }
}

/// Where the chain's plugin configurations are: `<name>/` in the directory of the
/// `clusterNetwork` file (or in the `clusterNetwork` directory); in `confDir` otherwise (inline
/// `delegates`, or a cluster network that is a NAD or a name).
pub fn dir(conf: &MultusConf, name: &str) -> PathBuf {
    let base = match conf.cluster_network.as_deref().map(Path::new) {
        Some(p) if p.is_absolute() && p.is_dir() => p.to_path_buf(),
        Some(p) if p.is_absolute() => p
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| conf.conf_dir.clone()),
        _ => conf.conf_dir.clone(),
    };
    base.join(name)
}

/// The chain as a network in `version`, or `None` when no chain is configured or its directory
/// holds no plugin configuration.
pub fn load(conf: &MultusConf, version: &str) -> Result<Option<NetworkConfig>, ConfigError> {
    let Some(name) = name(conf)? else {
        return Ok(None);
    };
    let dir = dir(conf, name);
    let read = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::Invalid(format!(
                "auxiliary CNI chain {}: cannot read {}: {e}",
                crate::explain::quote(name),
                dir.display()
            )))
        }
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conf" | "json")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Ok(None);
    }
    let mut plugins = vec![json!({"type": PASSTHRU})];
    for file in &files {
        let what = format!(
            "auxiliary CNI chain {}: {}",
            crate::explain::quote(name),
            file.display()
        );
        let bytes =
            std::fs::read(file).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
        let plugin: Value = crate::explain::from_bytes(&bytes)
            .map_err(|e| ConfigError::Invalid(format!("{what}: not JSON: {e}")))?;
        if plugin.get("plugins").is_some() {
            return Err(ConfigError::Invalid(format!(
                "{what}: one plugin configuration per file (this is a conflist)"
            )));
        }
        // Validates the object and its type.
        NetworkConfig::from_value(plugin.clone(), &what)?;
        plugins.push(plugin);
    }
    // Not CHECKed (`disableCheck`): the reference never checks the chain, and plugins that
    // verify interfaces (bandwidth, for one) fail CHECK on the chain's empty result.
    let chain =
        json!({"cniVersion": version, "name": name, "disableCheck": true, "plugins": plugins});
    NetworkConfig::from_value(
        chain,
        &format!("auxiliary CNI chain {}", crate::explain::quote(name)),
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: Value) -> MultusConf {
        let mut v = json!({"type": "multus", "delegates": [{"type": "bridge"}]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        MultusConf::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn names_that_would_escape_are_refused() {
        for bad in ["..", ".", "a/b", "/abs"] {
            let c = conf(json!({"auxiliaryCNIChainName": bad}));
            assert!(name(&c).is_err(), "{bad}");
        }
        assert_eq!(name(&conf(json!({}))).unwrap(), None);
        assert_eq!(
            name(&conf(json!({"auxiliaryCNIChainName": ""}))).unwrap(),
            None
        );
    }

    #[test]
    fn loads_plugins_in_file_order_after_passthru() {
        let d = tempfile::tempdir().unwrap();
        let cluster = d.path().join("10-cluster.conf");
        std::fs::write(
            &cluster,
            r#"{"cniVersion":"1.0.0","name":"c","type":"bridge"}"#,
        )
        .unwrap();
        let c = conf(json!({"clusterNetwork": cluster, "auxiliaryCNIChainName": "vendor-chain"}));
        assert_eq!(dir(&c, "vendor-chain"), d.path().join("vendor-chain"));
        assert!(
            load(&c, "1.0.0").unwrap().is_none(),
            "no directory: no chain"
        );
        let chain = d.path().join("vendor-chain");
        std::fs::create_dir(&chain).unwrap();
        assert!(
            load(&c, "1.0.0").unwrap().is_none(),
            "empty directory: no chain"
        );
        std::fs::write(chain.join("20-b.conf"), r#"{"type":"tuning","x":1}"#).unwrap();
        std::fs::write(chain.join("10-a.json"), r#"{"type":"portmap"}"#).unwrap();
        std::fs::write(chain.join("README"), "not a conf").unwrap();
        let net = load(&c, "1.0.0").unwrap().unwrap();
        assert_eq!(net.plugin_types(), ["passthru", "portmap", "tuning"]);
        assert_eq!(net.name(), Some("vendor-chain"));
        assert_eq!(net.plugins()[2]["x"], 1, "keys kept");
        std::fs::write(chain.join("30-bad.conf"), r#"{"plugins":[{"type":"x"}]}"#).unwrap();
        assert!(load(&c, "1.0.0")
            .unwrap_err()
            .to_string()
            .contains("one plugin configuration per file"));
        std::fs::write(chain.join("30-bad.conf"), r#"{"type":"../x"}"#).unwrap();
        assert!(load(&c, "1.0.0").is_err());
    }

    #[test]
    fn without_a_cluster_network_file_the_chain_is_in_conf_dir() {
        let c = conf(json!({"confDir": "/etc/cni/multus/net.d", "auxiliaryCNIChainName": "v"}));
        assert_eq!(dir(&c, "v"), Path::new("/etc/cni/multus/net.d/v"));
        let c = conf(
            json!({"confDir": "/etc/cni/multus/net.d", "clusterNetwork": "flannel-nad", "auxiliaryCNIChainName": "v"}),
        );
        assert_eq!(dir(&c, "v"), Path::new("/etc/cni/multus/net.d/v"));
    }
}
