//! The kubelet device-manager checkpoint (`devices/checkpoint.rs`, both `DeviceIDs` shapes):
//! `checkpoint::parse` for a pod UID (the part before a 0xFF, else the UID of the seeds), then
//! what device assignment asks of the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::devices::checkpoint;

/// The pod UID the seeds use.
const SEED_UID: &str = "8a1b2c3d-0000-4000-8000-000000000001";

fuzz_target!(|data: &[u8]| {
    let parts = fuzzkit::parts(data);
    let (uid, text) = match parts.as_slice() {
        [text] => (SEED_UID.to_string(), fuzzkit::text(text)),
        [uid, text, ..] => (fuzzkit::text(uid), fuzzkit::text(text)),
        [] => return,
    };
    let Ok(mut devices) = checkpoint::parse(&text, &uid) else {
        return;
    };
    let names: Vec<String> = devices.resources.keys().cloned().collect();
    for name in names {
        let listed = devices.ids(&name).len();
        let mut taken = 0;
        while devices.take_next(&name).is_some() {
            taken += 1;
            assert!(taken <= listed, "take_next gives more devices than listed");
        }
    }
});
