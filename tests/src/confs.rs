//! Network configurations built from the reference plugins, for tests, benchmarks and the demo.

use std::path::Path;

use serde_json::{json, Value};

/// A bridge network with host-local IPAM in `subnet` (a /24), data under `ipam_dir`.
pub fn bridge(name: &str, bridge: &str, subnet: &str, version: &str, ipam_dir: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": ipam_dir, "routes": [{"dst": "0.0.0.0/0"}]}
    })
}

/// A conflist: bridge + host-local, then tuning (sets the MTU).
pub fn bridge_tuning_list(
    name: &str,
    bridge: &str,
    subnet: &str,
    version: &str,
    ipam_dir: &Path,
) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "ipam": {"type": "host-local", "subnet": subnet, "dataDir": ipam_dir}},
            {"type": "tuning", "mtu": 1400}
        ]
    })
}

/// A multus configuration delegating to `delegates`, with its cache under `cache_dir`.
pub fn multus(version: &str, cache_dir: &Path, bin_dir: &Path, delegates: Vec<Value>) -> Value {
    json!({
        "cniVersion": version,
        "name": "multus-cni-network",
        "type": "multus",
        "cniDir": cache_dir,
        "binDir": bin_dir,
        "logLevel": "debug",
        "logToStderr": true,
        "delegates": delegates
    })
}
