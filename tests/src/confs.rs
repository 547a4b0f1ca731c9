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

/// The two networks of the reliability suites (crash at every step, the soak): `net-a` (bridge
/// `br-a` + host-local 10.61.0.0/24, chained with `ebpf-sbr` pinning under `bpffs`: its gateway
/// is not the pod's default, so SBR makes its carrier, anchor namespace and routes) and `net-b`
/// (bridge `br-b` + host-local 10.62.0.0/24, the pod's default route).
pub fn sbr_pair(ipam_dir: &Path, bpffs: &Path) -> [Value; 2] {
    let net_a = json!({"cniVersion": "1.0.0", "name": "net-a", "plugins": [
        {"type": "bridge", "bridge": "br-a", "isGateway": true,
         "ipam": {"type": "host-local", "subnet": "10.61.0.0/24", "gateway": "10.61.0.1", "dataDir": ipam_dir}},
        {"type": "ebpf-sbr", "bpffsDir": bpffs}]});
    let net_b = json!({"cniVersion": "1.0.0", "name": "net-b", "type": "bridge", "bridge": "br-b",
        "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.62.0.0/24", "dataDir": ipam_dir,
        "routes": [{"dst": "0.0.0.0/0"}]}});
    [net_a, net_b]
}

/// The bridges [`sbr_pair`] makes on the node (the bridge plugin never deletes them).
pub const SBR_PAIR_BRIDGES: [&str; 2] = ["br-a", "br-b"];
