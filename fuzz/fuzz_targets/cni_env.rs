//! The CNI environment (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`,
//! `CNI_PATH`): `Request::from_lookup` over fuzzed `KEY=VALUE` entries separated by NUL (as in
//! /proc/<pid>/environ). Invariants: a container id or interface name that is accepted can never
//! name another path (no `/`, no NUL, not `.` or `..`) and an interface name fits IFNAMSIZ.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use multus::cni::{ContainerId, IfName, Request};

fn check_path_safe(what: &str, s: &str) {
    assert!(
        !s.is_empty() && !s.contains('/') && !s.contains('\0') && s != "." && s != "..",
        "an accepted {what} can name another path: {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut env: HashMap<String, String> = HashMap::new();
    for entry in data.split(|b| *b == 0) {
        let entry = fuzzkit::text(entry);
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        env.insert(k.to_string(), v.to_string());
    }
    if let Ok(request) = Request::from_lookup(|k| env.get(k).cloned()) {
        let _ = request.container_label();
        if let Ok(id) = request.container_id() {
            check_path_safe("container id", id.as_str());
        }
        if let Ok(ifname) = request.ifname() {
            check_path_safe("interface name", ifname.as_str());
            assert!(
                ifname.as_str().len() < 16,
                "an interface name over IFNAMSIZ: {ifname:?}"
            );
        }
    }
    for v in env.values() {
        if let Ok(id) = ContainerId::parse(v) {
            check_path_safe("container id", id.as_str());
        }
        if let Ok(ifname) = IfName::parse(v) {
            check_path_safe("interface name", ifname.as_str());
            assert!(
                ifname.as_str().len() < 16,
                "an interface name over IFNAMSIZ: {ifname:?}"
            );
        }
    }
});
