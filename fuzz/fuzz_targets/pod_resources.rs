//! The kubelet PodResources answers (`devices/proto.rs`, prost): the gRPC frame (`unframe`),
//! `GetPodResourcesResponse` and `ListPodResourcesResponse` decoded from it and from the raw
//! bytes, the devices collected from them, and the `grpc-message` trailer (`percent_decode`).
//! Invariant: a decoded message encoded again decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multus::devices::{
    podresources::{collect, percent_decode, unframe},
    proto::{GetPodResourcesResponse, ListPodResourcesResponse},
    PodDevices, Source,
};
use prost::Message;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let again = M::decode(m.encode_to_vec().as_slice());
    assert_eq!(
        again.as_ref().ok(),
        Some(m),
        "a message encoded again decodes differently"
    );
}

fn decode(bytes: &[u8]) {
    if let Ok(get) = GetPodResourcesResponse::decode(bytes) {
        round_trip(&get);
        let mut devices = PodDevices::new(Source::Kubelet);
        if let Some(p) = &get.pod_resources {
            collect(&mut devices, p);
        }
    }
    if let Ok(list) = ListPodResourcesResponse::decode(bytes) {
        round_trip(&list);
        let mut devices = PodDevices::new(Source::Kubelet);
        for p in &list.pod_resources {
            collect(&mut devices, p);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    decode(data);
    if let Ok(message) = unframe(data) {
        decode(&message);
    }
    let _ = percent_decode(data);
});
