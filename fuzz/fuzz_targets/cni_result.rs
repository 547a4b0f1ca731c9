//! CNI results of every version (a delegate's stdout, a prevResult, the daemon's answer) and
//! their conversions. Invariants: parsing and converting to each version never panic; a result
//! rendered in any version parses again, and re-rendering that gives the same JSON (one round
//! trip reaches a fixed point); a rendered result converts to every version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::cni::{CniResult, CniVersion};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = CniResult::version_of(&raw);
    for v in CniVersion::ALL {
        let _ = CniResult::convert(&raw, v);
    }
    let Ok(result) = CniResult::parse(&raw) else {
        return;
    };
    let _ = result.interface_index("eth0");
    for v in CniVersion::ALL {
        let rendered = result.to_json(v);
        let again = match CniResult::parse(&rendered) {
            Ok(r) => r,
            Err(e) => panic!("a result rendered in {v} does not parse again: {e}\n{rendered}"),
        };
        assert_eq!(
            again.to_json(v),
            rendered,
            "a result rendered in {v}, parsed and rendered again, changed"
        );
        for to in CniVersion::ALL {
            if let Err(e) = CniResult::convert(&rendered, to) {
                panic!("a result rendered in {v} does not convert to {to}: {e}\n{rendered}");
            }
        }
    }
});
