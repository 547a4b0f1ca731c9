//! The multus configuration (stdin of every call): `MultusConf::parse` (ADD, CHECK),
//! `parse_for_teardown` (DEL, GC), `decode_for_teardown` (multusctl), then everything a call
//! derives from it. Invariant: a configuration ADD accepts, DEL accepts too (DEL must not fail
//! where ADD succeeded).
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use multus::config::MultusConf;

fn exercise(conf: &MultusConf) {
    let _ = conf.version();
    if let Ok(networks) = conf.delegate_networks() {
        for n in &networks {
            let _ = n.plugin_types();
            let _ = n.cni_version(multus::cni::CniVersion::LATEST);
        }
    }
    let _ = conf.search_path(&[PathBuf::from("/opt/cni/bin")]);
    let _ = conf.log_level();
    let _ = conf.api_deadline();
    let _ = conf.del_api_deadline();
    let _ = conf.global_namespace_list();
}

fuzz_target!(|data: &[u8]| {
    let for_add = MultusConf::parse(data);
    if let Ok(conf) = &for_add {
        exercise(conf);
    }
    let for_del = MultusConf::parse_for_teardown(data);
    if let Ok((conf, _notes)) = &for_del {
        exercise(conf);
    }
    if let Ok((conf, _notes)) = MultusConf::decode_for_teardown(data) {
        exercise(&conf);
    }
    if for_add.is_ok() {
        if let Err(e) = &for_del {
            panic!("ADD accepts the configuration but DEL refuses it: {e}");
        }
    }
});
