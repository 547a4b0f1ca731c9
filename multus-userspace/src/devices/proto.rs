//! The kubelet PodResources API v1 messages this client uses (`k8s.io/kubelet/pkg/apis/
//! podresources/v1/api.proto`), as `prost`-derived structs annotated by hand: no protoc, no
//! build-time code generation.
//!
//! Only the fields the client reads are declared. The others (CPU IDs, memory, NUMA topology,
//! dynamic resources) are skipped on decode, as protobuf requires of unknown fields; skipping
//! them also keeps the client indifferent to the shapes those fields have had across kubelet
//! versions (`DynamicResource` changed its field 3 from `cdi_devices` to `claim_namespace`).

/// `GetPodResourcesRequest { string pod_name = 1; string pod_namespace = 2; }`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GetPodResourcesRequest {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub pod_name: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub pod_namespace: String,
}

/// `GetPodResourcesResponse { PodResources pod_resources = 1; }`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GetPodResourcesResponse {
    /// Field 1.
    #[prost(message, optional, tag = "1")]
    pub pod_resources: Option<PodResources>,
}

/// `ListPodResourcesRequest {}`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ListPodResourcesRequest {}

/// `ListPodResourcesResponse { repeated PodResources pod_resources = 1; }`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ListPodResourcesResponse {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResources>,
}

/// `PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PodResources {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub namespace: String,
    /// Field 3.
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

/// `ContainerResources { string name = 1; repeated ContainerDevices devices = 2; ... }`
/// (fields 3-5, CPU IDs, memory and dynamic resources, are skipped).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ContainerResources {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Field 2.
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
}

/// `ContainerDevices { string resource_name = 1; repeated string device_ids = 2; TopologyInfo topology = 3; }`
/// (the topology is skipped).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ContainerDevices {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub resource_name: String,
    /// Field 2.
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Bytes written by hand from the proto3 wire format, not by prost's encoder.
    fn key(field: u8, wire: u8) -> u8 {
        (field << 3) | wire
    }

    fn len_field(field: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 16384);
        let mut v = vec![key(field, 2)];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.extend([(body.len() as u8 & 0x7f) | 0x80, (body.len() >> 7) as u8]);
        }
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn get_request_golden_bytes() {
        let req = GetPodResourcesRequest {
            pod_name: "p".into(),
            pod_namespace: "ns".into(),
        };
        assert_eq!(
            req.encode_to_vec(),
            [0x0a, 0x01, b'p', 0x12, 0x02, b'n', b's']
        );
        assert_eq!(
            GetPodResourcesRequest::decode(req.encode_to_vec().as_slice()).unwrap(),
            req
        );
        // proto3 leaves empty strings out
        assert!(GetPodResourcesRequest::default().encode_to_vec().is_empty());
        assert!(ListPodResourcesRequest {}.encode_to_vec().is_empty());
    }

    #[test]
    fn list_response_with_every_field_kubelet_sends() {
        // ContainerDevices { resource_name, device_ids x2, topology { nodes { ID: 1 } } }
        let mut devices = len_field(1, b"intel.com/sriov");
        devices.extend(len_field(2, b"0000:18:02.5"));
        devices.extend(len_field(2, b"0000:18:02.6"));
        devices.extend(len_field(3, &len_field(1, &[key(1, 0), 1])));
        // ContainerResources { name, devices, cpu_ids packed [2, 300], memory {..}, dynamic_resources {..} }
        let mut container = len_field(1, b"app");
        container.extend(len_field(2, &devices));
        container.extend(len_field(3, &[0x02, 0xac, 0x02]));
        let mut memory = len_field(1, b"hugepages-1Gi");
        memory.extend([key(2, 0), 0x80, 0x80, 0x80, 0x80, 0x04]);
        container.extend(len_field(4, &memory));
        container.extend(len_field(5, &len_field(1, b"gpu-class")));
        // an unknown fixed64 and fixed32 field a future kubelet might add
        container.extend([key(9, 1), 1, 2, 3, 4, 5, 6, 7, 8, key(10, 5), 1, 2, 3, 4]);
        let mut pod = len_field(1, b"web");
        pod.extend(len_field(2, b"default"));
        pod.extend(len_field(3, &container));
        pod.extend(len_field(3, &len_field(1, b"sidecar")));
        let mut other = len_field(1, b"db");
        other.extend(len_field(2, b"prod"));
        let mut list = len_field(1, &pod);
        list.extend(len_field(1, &other));

        let resp = ListPodResourcesResponse::decode(list.as_slice()).unwrap();
        assert_eq!(resp.pod_resources.len(), 2);
        let p = &resp.pod_resources[0];
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("web", "default"));
        assert_eq!(p.containers.len(), 2);
        assert_eq!(p.containers[0].name, "app");
        assert_eq!(
            p.containers[0].devices,
            [ContainerDevices {
                resource_name: "intel.com/sriov".into(),
                device_ids: vec!["0000:18:02.5".into(), "0000:18:02.6".into()],
            }]
        );
        assert_eq!(p.containers[1].name, "sidecar");
        assert_eq!(resp.pod_resources[1].name, "db");
        // what is encoded decodes to the same, minus the skipped fields
        let again = ListPodResourcesResponse::decode(resp.encode_to_vec().as_slice()).unwrap();
        assert_eq!(again, resp);
    }

    #[test]
    fn get_response_merges_a_repeated_singular_message() {
        let mut buf = len_field(1, &len_field(1, b"web"));
        buf.extend(len_field(1, &len_field(2, b"default")));
        let resp = GetPodResourcesResponse::decode(buf.as_slice()).unwrap();
        let p = resp.pod_resources.unwrap();
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("web", "default"));
        assert_eq!(
            GetPodResourcesResponse::decode(&[][..])
                .unwrap()
                .pod_resources,
            None
        );
    }

    #[test]
    fn malformed_protobuf_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            &[0x0a],                   // truncated varint
            &[0x0a, 0x05, b'a'],       // a length beyond the buffer
            &[0x0b],                   // a string sent as a group
            &[0x02, 0x00],             // field number 0
            &[0x0a, 0x02, 0xc3, 0x28], // not UTF-8
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ], // a varint longer than 10 bytes
        ];
        for bytes in cases {
            // as a PodResources inside a List answer
            let err = ListPodResourcesResponse::decode(len_field(1, bytes).as_slice());
            assert!(err.is_err(), "{bytes:?}");
        }
        // a string field sent as a varint
        assert!(GetPodResourcesRequest::decode(&[key(1, 0), 1][..]).is_err());
        // every prefix of a valid message either parses or errors
        let full = ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "web".into(),
                namespace: "default".into(),
                containers: vec![ContainerResources {
                    name: "c".into(),
                    devices: vec![ContainerDevices {
                        resource_name: "r/x".into(),
                        device_ids: vec!["a".into()],
                    }],
                }],
            }],
        }
        .encode_to_vec();
        for n in 0..full.len() {
            let _ = ListPodResourcesResponse::decode(&full[..n]);
        }
    }
}
