//! A delegate's network configuration (a conf or a conflist, from `delegates`, `confDir` or a
//! NAD): `NetworkConfig::from_bytes` and what the plan does with one (version, plugins, types,
//! the chain rewrite, appending a plugin). Invariant: a configuration re-serialised parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::{cni::CniVersion, config::NetworkConfig};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(mut network) = NetworkConfig::from_bytes(data, "fuzz") else {
        return;
    };
    let _ = network.is_list();
    let _ = network.name();
    for v in CniVersion::ALL {
        let _ = network.cni_version(v);
    }
    let _ = network.plugins();
    for t in network.plugin_types() {
        let _ = multus::config::network::validate_plugin_type(t);
    }
    let _ = network.is_master();
    let _ = network.disable_check();
    let _ = network.disable_gc();
    let raw = Value::Object(network.raw_mut().clone());
    if let Err(e) = NetworkConfig::from_value(raw, "fuzz") {
        panic!("a parsed configuration re-serialised is refused: {e}");
    }
    let first = network.plugin_types().first().map(|t| t.to_string());
    if let Some(t) = first {
        network.replace_plugin_type(&t, "ebpf-sbr");
    }
    let mut plugin = Map::new();
    plugin.insert("type".into(), Value::String("ebpf-sbr".into()));
    network.append_plugin(plugin);
    network.set_name("fuzz");
    let _ = network.plugin_types();
});
