//! The delegate cache file as DEL, CHECK and GC read it (`delegate::cache::decode`): this
//! format, or the reference Multus's (`[]*DelegateNetConf`, `delegate/reference.rs`) converted
//! with libcni's result-cache records (the parts after the first 0xFF, `LibcniRecord::parse`),
//! with and without the runtime's request. Invariant: an entry of this format that was read,
//! written back as the cache writes it, reads back equal (what the cache writes, it can read).
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use multus::{
    cni::ContainerId,
    delegate::{
        cache::{self, CacheEntry, Origin},
        reference::{LibcniRecord, RequestView},
    },
};
use serde_json::{Map, Value};

/// The container the file is read for: the one it names (so seeds of any container reach the
/// conversion), else a fixed one.
fn container_of(file: &[u8]) -> ContainerId {
    serde_json::from_slice::<Value>(file)
        .ok()
        .and_then(|v| {
            v.get("containerID")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .and_then(|id| ContainerId::parse(&id).ok())
        .or_else(|| ContainerId::parse("fuzz0123456789").ok())
        .unwrap_or_else(|| unreachable!("a valid container id"))
}

fn check_written_reads_back(entry: &CacheEntry, path: &Path, id: &ContainerId) {
    let mut entry = entry.clone();
    entry.origin = Origin::Ours;
    let written = match serde_json::to_vec(&entry) {
        Ok(w) => w,
        Err(e) => panic!("a decoded entry cannot be written: {e}"),
    };
    match cache::decode(&written, path, id, None, || (Vec::new(), 0)) {
        Ok(again) => assert_eq!(again, entry, "an entry written back reads differently"),
        Err(e) => panic!(
            "an entry written back cannot be read: {e}\n{}",
            String::from_utf8_lossy(&written)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let parts = fuzzkit::parts(data);
    let file = parts[0];
    let id = container_of(file);
    let path = PathBuf::from("/run/multus-fuzz/cache").join(id.as_str());
    let records: Vec<LibcniRecord> = parts[1..]
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            LibcniRecord::parse(p, &PathBuf::from(format!("/results/r{i}")), id.as_str())
        })
        .collect();
    let runtime_config: Map<String, Value> =
        serde_json::from_str(r#"{"portMappings":[{"hostPort":80,"containerPort":80}]}"#)
            .unwrap_or_default();
    let request = RequestView {
        ifname: "eth0",
        cni_args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod",
        netns: Some(Path::new("/var/run/netns/fuzz")),
        runtime_config: &runtime_config,
        cni_version: "1.0.0",
    };
    for view in [None, Some(&request)] {
        if let Ok(entry) =
            cache::decode(file, &path, &id, view, || (records.clone(), 1_700_000_000))
        {
            let _ = entry.added();
            check_written_reads_back(&entry, &path, &id);
        }
    }
});
