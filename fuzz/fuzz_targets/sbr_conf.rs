//! The `ebpf-sbr` chained plugin's configuration (its stdin, from a conflist): `SbrNetConf::parse`
//! (ADD, CHECK), `parse_for_teardown` (DEL, GC), then its prevResult as ADD reads it (the result
//! model, the interface's addresses checked against the configured gateways). Invariant: a
//! configuration ADD accepts, DEL accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::{
    cni::CniResult,
    sbrplugin::{config::SbrNetConf, interface_spec},
};
use serde_json::Value;

fn exercise(conf: &SbrNetConf) {
    let Some(prev) = &conf.prev_result else {
        return;
    };
    let mut prev = prev.clone();
    if let Some(obj) = prev.as_object_mut() {
        obj.entry("cniVersion")
            .or_insert_with(|| Value::from(conf.version.as_str()));
    }
    if let Ok(result) = CniResult::parse(&prev) {
        for ifname in ["eth0", "net1"] {
            let _ = interface_spec(&result, ifname, &conf.sbr);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let for_add = SbrNetConf::parse(data);
    if let Ok(conf) = &for_add {
        exercise(conf);
    }
    let for_del = SbrNetConf::parse_for_teardown(data);
    if let Ok((conf, _notes)) = &for_del {
        exercise(conf);
    }
    if for_add.is_ok() {
        if let Err(e) = &for_del {
            panic!("ADD accepts the configuration but DEL refuses it: {e}");
        }
    }
});
