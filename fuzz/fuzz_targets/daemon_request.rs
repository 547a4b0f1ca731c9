//! The daemon's HTTP request body (`daemon::api::CniRequest`, decoded as `daemon/server.rs`
//! decodes it), then what the handler does before any plugin runs: the command, the CNI
//! environment from `env`, the daemon configuration overlaid on `config` (stdin), the multus
//! configuration parsed for that command, and the refusal a bad call gets. Invariant: a request
//! written again (as the shim writes it) reads back with the same `env` and `config`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use multus::{
    cni::{ErrorCode, Request},
    daemon::{
        api::CniRequest,
        config::{overlay, DaemonConfig},
        handler::{command_of, refusal},
    },
    metaplugin::parse_conf,
};
use serde_json::{Map, Value};

/// A daemon configuration with call keys (so `overlay` rewrites stdin).
fn daemon() -> &'static Map<String, Value> {
    static DAEMON: OnceLock<Map<String, Value>> = OnceLock::new();
    DAEMON.get_or_init(|| {
        let file = br#"{"chrootDir":"/hostroot","socketDir":"/run/multus","cniVersion":"1.0.0",
            "clusterNetwork":"default","confDir":"/nonexistent/multus-fuzz/net.d","multusNamespace":"kube-system"}"#;
        match DaemonConfig::parse(file) {
            Ok(conf) => conf.raw,
            Err(e) => panic!("the fuzz target's daemon configuration is refused: {e}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<CniRequest>(data) else {
        return;
    };
    match serde_json::to_vec(&req).map(|w| serde_json::from_slice::<CniRequest>(&w)) {
        // Every field, numbers in `interfaceAttributes` included (the workspace's serde_json
        // parses correctly rounded: `float_roundtrip`, the fix of this target's finding).
        Ok(Ok(again)) => assert!(
            again.env == req.env
                && again.config == req.config
                && again.interface_attributes == req.interface_attributes,
            "a request written again reads differently: {again:?} vs {req:?}"
        ),
        Ok(Err(e)) => panic!("a request written again is refused: {e}"),
        Err(e) => panic!("a request cannot be written: {e}"),
    }
    let _ = refusal(ErrorCode::TryAgainLater, "fuzz", &req.config);
    let command = command_of(&req);
    let _ = Request::from_lookup(|k| req.env.get(k).cloned());
    let Ok(stdin) = overlay(&req.config, daemon()) else {
        return;
    };
    if let Some(command) = command {
        let _ = parse_conf(command, &stdin);
    }
});
