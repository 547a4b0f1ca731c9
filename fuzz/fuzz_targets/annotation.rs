//! The NPWG network-selection annotations, both syntaxes (`ns/name@if,...` and the JSON list):
//! `k8s.v1.cni.cncf.io/networks` and `v1.multus-cni.io/default-network`. Invariant: what the
//! default-network parser accepts is a one-element list to the networks parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::kube::annotations::{
    is_dns1123_label, is_dns1123_subdomain, parse_default_network, parse_networks,
};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let networks = parse_networks(value);
    if let Ok(list) = &networks {
        for s in list {
            let _ = is_dns1123_label(&s.name);
            let _ = is_dns1123_subdomain(&s.name);
        }
    }
    if let Ok(one) = parse_default_network(value) {
        match networks {
            Ok(list) => assert_eq!(list, vec![one], "the two parsers disagree"),
            Err(e) => {
                panic!("the default-network parser accepts what the networks parser refuses: {e}")
            }
        }
    }
});
