//! The runtime's configuration for thick mode, as the reference's daemon writes it
//! (`multusConfigFile`): `"auto"` picks the primary network in `cniConfigDir` (or
//! `multusAutoconfigDir`; `multusMasterCNI` pins it) and writes `00-multus.conf`, a
//! `multus-shim` configuration whose `clusterNetwork` is the primary's file and whose
//! capabilities are the union of the primary's (plus the daemon's log keys, `cniDir` and
//! `binDir`, so that the shim's DEL without the daemon uses the same cache); a path is copied into
//! `cniConfigDir` instead.
//! Both are written atomically (0600) and left in place when the daemon stops.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{json, Map, Value};

use super::config::{DaemonConfig, DEFAULT_SOCKET_DIR};
use crate::delegate::cache::write_atomic;

/// The file written in `cniConfigDir`.
pub const GENERATED: &str = "00-multus.conf";
/// Polls for a primary network before giving up (the reference's 120 × 1 s).
const PRIMARY_POLLS: u32 = 120;

/// The primary network among `names` (files of the directory): `master` when given and
/// present, else the first `.conf`/`.conflist` in name order that is not multus's own.
pub fn pick_primary(names: &[String], master: Option<&str>) -> Option<String> {
    if let Some(m) = master.filter(|m| !m.is_empty()) {
        return names.iter().find(|n| n.as_str() == m).cloned();
    }
    let mut candidates: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("00-multus"))
        .filter(|n| n.ends_with(".conf") || n.ends_with(".conflist"))
        .collect();
    candidates.sort();
    candidates.first().map(|n| (*n).clone())
}

/// The `00-multus.conf` for the primary at `path` (its JSON `primary`).
pub fn generate(conf: &DaemonConfig, path: &Path, primary: &Value) -> Value {
    let mut capabilities = Map::new();
    let plugins: Vec<&Value> = match primary.get("plugins").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![primary],
    };
    for plugin in plugins {
        if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
            for (k, v) in caps {
                if v.as_bool() == Some(true) {
                    capabilities.insert(k.clone(), Value::Bool(true));
                }
            }
        }
    }
    let version = conf
        .cni_version
        .clone()
        .or_else(|| {
            primary
                .get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| "1.0.0".into());
    let mut out = json!({
        "cniVersion": version,
        "name": "multus-cni-network",
        "type": "multus-shim",
        "clusterNetwork": path,
    });
    let o = out.as_object_mut().expect("an object");
    // The log keys for the shim; cniDir and binDir so that a DEL the shim does without the
    // daemon finds the same cache and plugins.
    for key in ["logLevel", "logFile", "logToStderr", "cniDir", "binDir"] {
        if let Some(v) = conf.raw.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    if conf.socket_dir != Path::new(DEFAULT_SOCKET_DIR) {
        o.insert("daemonSocketDir".into(), json!(conf.socket_dir));
    }
    if !capabilities.is_empty() {
        o.insert("capabilities".into(), Value::Object(capabilities));
    }
    out
}

/// Writes the runtime's configuration as `multusConfigFile` says; blocks while it waits for a
/// primary network (run it off the server's thread). Errors are logged.
pub fn install(conf: &DaemonConfig) {
    if conf.multus_config_file != "auto" {
        let src = PathBuf::from(&conf.multus_config_file);
        let Some(name) = src.file_name() else {
            tracing::error!("multusConfigFile {:?} names no file", src);
            return;
        };
        let dst = conf.cni_config_dir.join(name);
        match std::fs::read(&src).and_then(|b| write_atomic(&dst, &b, 0o600)) {
            Ok(()) => {
                tracing::info!(from = %src.display(), to = %dst.display(), "configuration copied")
            }
            Err(e) => tracing::error!(
                "cannot copy multusConfigFile {} to {}: {e}",
                src.display(),
                dst.display()
            ),
        }
        return;
    }
    let dir = conf
        .multus_autoconfig_dir
        .clone()
        .unwrap_or_else(|| conf.cni_config_dir.clone());
    for attempt in 0..PRIMARY_POLLS {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(name) = pick_primary(&names, conf.multus_master_cni.as_deref()) {
            let path = dir.join(&name);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
            {
                Ok(primary) => {
                    let out = generate(conf, &path, &primary);
                    let dst = conf.cni_config_dir.join(GENERATED);
                    let bytes = serde_json::to_vec_pretty(&out).unwrap_or_default();
                    match write_atomic(&dst, &bytes, 0o600) {
                        Ok(()) => {
                            tracing::info!(primary = %path.display(), file = %dst.display(), "configuration written")
                        }
                        Err(e) => tracing::error!("cannot write {}: {e}", dst.display()),
                    }
                    return;
                }
                Err(e) => tracing::warn!("primary network {} is unreadable: {e}", path.display()),
            }
        } else if attempt == 0 {
            tracing::info!(dir = %dir.display(), "waiting for a primary network configuration");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    tracing::error!(dir = %dir.display(), "no primary network configuration appeared; {GENERATED} not written");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_primary_is_the_first_foreign_conf_or_the_pinned_one() {
        let n = names(&[
            "99-z.conf",
            "00-multus.conf",
            "10-calico.conflist",
            "README",
            "05-x.json",
        ]);
        assert_eq!(
            pick_primary(&n, None).as_deref(),
            Some("10-calico.conflist")
        );
        assert_eq!(
            pick_primary(&n, Some("99-z.conf")).as_deref(),
            Some("99-z.conf")
        );
        assert_eq!(pick_primary(&n, Some("missing.conf")), None);
        assert_eq!(pick_primary(&names(&["00-multus.conf"]), None), None);
    }

    #[test]
    fn the_generated_file_is_a_shim_conf_with_the_primarys_capabilities() {
        let conf = DaemonConfig::parse(
            br#"{"socketDir":"/run/m","logLevel":"verbose","logToStderr":true,"cniDir":"/x"}"#,
        )
        .unwrap();
        let primary = json!({"cniVersion": "0.3.1", "name": "k8s", "plugins": [
            {"type": "calico"}, {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true, "x": false}}]});
        let out = generate(
            &conf,
            Path::new("/etc/cni/net.d/10-calico.conflist"),
            &primary,
        );
        assert_eq!(
            out,
            json!({"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus-shim",
                "clusterNetwork": "/etc/cni/net.d/10-calico.conflist", "logLevel": "verbose",
                "logToStderr": true, "cniDir": "/x", "daemonSocketDir": "/run/m",
                "capabilities": {"portMappings": true, "bandwidth": true}})
        );
    }
}
