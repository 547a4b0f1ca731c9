//! A NetworkAttachmentDefinition as the API server sends it: the object decoded as the API
//! client decodes it (`DynamicObject`), then `Resolver::network_of_nad` (`spec.config`, its name,
//! the `resourceName` annotation). A second part (after 0xFF) is taken as `spec.config` alone, so
//! the configuration inside the object is fuzzed without JSON string escaping in the way.
#![no_main]

use std::{sync::OnceLock, time::Instant};

use kube::api::DynamicObject;
use libfuzzer_sys::fuzz_target;
use multus::{config::MultusConf, kube::resolve::Resolver};
use serde_json::json;

/// A configuration whose `confDir` does not exist (a NAD with an empty `spec.config` then
/// resolves to nothing, without reading the host's files).
fn conf() -> &'static MultusConf {
    static CONF: OnceLock<MultusConf> = OnceLock::new();
    CONF.get_or_init(|| {
        let raw = json!({
            "cniVersion": "1.0.0",
            "name": "multus-cni-network",
            "type": "multus",
            "confDir": "/nonexistent/multus-fuzz/net.d",
            "clusterNetwork": "default",
        });
        match MultusConf::parse(raw.to_string().as_bytes()) {
            Ok(conf) => conf,
            Err(e) => panic!("the fuzz target's own configuration is refused: {e}"),
        }
    })
}

fn resolve(nad: &DynamicObject) {
    let resolver = Resolver::new(conf(), None, Instant::now());
    if let Ok(resolved) = resolver.network_of_nad("fuzz-ns", "fuzz-nad", nad) {
        let _ = resolved.network.plugin_types();
        let _ = resolved
            .network
            .cni_version(multus::cni::CniVersion::LATEST);
    }
}

fuzz_target!(|data: &[u8]| {
    let parts = fuzzkit::parts(data);
    if let Ok(nad) = serde_json::from_slice::<DynamicObject>(parts[0]) {
        resolve(&nad);
    }
    if let Some(config) = parts.get(1) {
        let object = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "fuzz-nad", "namespace": "fuzz-ns",
                "annotations": {"k8s.v1.cni.cncf.io/resourceName": fuzzkit::text(parts.get(2).copied().unwrap_or_default())}},
            "spec": {"config": fuzzkit::text(config)},
        });
        if let Ok(nad) = serde_json::from_value::<DynamicObject>(object) {
            resolve(&nad);
        }
    }
});
