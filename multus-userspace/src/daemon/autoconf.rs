//! The daemon's side of auto-configuration ([`crate::autoconf`]): `multusConfigFile` `"auto"`
//! runs a [`Generator`] on a thread of its own, once a second, for the daemon's lifetime, and
//! reports its state as a `/readyz` reason (no primary network, an unusable one, a write that
//! failed); a path is copied into `cniConfigDir` once. The generated file is a `multus-shim`
//! configuration whose `clusterNetwork` is the primary's file, with the daemon's log keys,
//! `cniDir` and `binDir` (so a DEL the shim does without the daemon uses the same cache) and
//! `daemonSocketDir`. It is left in place when the daemon stops.

use std::{path::PathBuf, sync::Arc};

use serde_json::{json, Map};

use super::{
    config::{DaemonConfig, DEFAULT_SOCKET_DIR},
    server::Shared,
};
use crate::autoconf::{fsio, generator::POLL, Flavor, Generator};

/// The `/readyz` reason key of auto-configuration.
pub const READY_KEY: &str = "configuration";

/// What the generated `multus-shim` configuration carries for this daemon.
pub fn thick_flavor(conf: &DaemonConfig) -> Flavor {
    let mut extra = Map::new();
    for key in ["logLevel", "logFile", "logToStderr", "cniDir", "binDir"] {
        if let Some(v) = conf.raw.get(key) {
            extra.insert(key.into(), v.clone());
        }
    }
    if conf.socket_dir != std::path::Path::new(DEFAULT_SOCKET_DIR) {
        extra.insert("daemonSocketDir".into(), json!(conf.socket_dir));
    }
    Flavor::Thick {
        version: conf.cni_version.clone(),
        extra,
    }
}

/// Starts the runtime configuration's upkeep as `multusConfigFile` says; readiness waits for it.
pub fn start(conf: &DaemonConfig, shared: Arc<Shared>) {
    shared.set_not_ready(
        READY_KEY,
        Some("the CNI configuration is not written yet".into()),
    );
    if conf.multus_config_file != "auto" {
        let reason = copy(conf);
        shared.set_not_ready(READY_KEY, reason);
        return;
    }
    let scan = conf
        .multus_autoconfig_dir
        .clone()
        .unwrap_or_else(|| conf.cni_config_dir.clone());
    let mut generator = Generator::new(
        scan,
        conf.cni_config_dir.clone(),
        conf.multus_master_cni.clone(),
        thick_flavor(conf),
    );
    let spawned = std::thread::Builder::new()
        .name("autoconf".into())
        .spawn(move || loop {
            let status = generator.step();
            shared.set_not_ready(READY_KEY, status.not_ready().map(String::from));
            std::thread::sleep(POLL);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start auto-configuration: {e}");
    }
}

/// Copies the `multusConfigFile` path into `cniConfigDir`; the reason it failed, if it did.
fn copy(conf: &DaemonConfig) -> Option<String> {
    let src = PathBuf::from(&conf.multus_config_file);
    let Some(name) = src.file_name() else {
        let reason = format!("multusConfigFile {} names no file", src.display());
        tracing::error!("{reason}");
        return Some(reason);
    };
    let dst = conf.cni_config_dir.join(name);
    match fsio::read_bounded(&src).and_then(|b| {
        if b.iter().all(u8::is_ascii_whitespace) {
            return Err(std::io::Error::other("it is empty"));
        }
        fsio::write_atomic(&dst, &b, 0o600)
    }) {
        Ok(()) => {
            tracing::info!(from = %src.display(), to = %dst.display(), "configuration copied");
            None
        }
        Err(e) => {
            let reason = format!(
                "cannot copy multusConfigFile {} to {}: {e}",
                src.display(),
                dst.display()
            );
            tracing::error!("{reason}");
            Some(reason)
        }
    }
}
