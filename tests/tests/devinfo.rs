//! Device IDs for attachments (issue 3, item 7), end to end: the product's PodResources client
//! against the kubelet stand-in (gRPC over HTTP/2 on a unix socket in a temporary directory),
//! its deadline, its checkpoint fallback, its errors, and the device-info files that follow.
//! Needs no privileges.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use multus::devices::{
    devinfo::{self, DevInfoDir, DeviceInfo},
    CheckpointError, DeviceError, DeviceSource, KubeletError, PodIdentity, Source,
};
use serde_json::json;
use testkit::kubelet_podresources::{
    FakeContainer, FakeDevices, FakePod, Fault, PodResourcesServer,
};

const SRIOV: &str = "intel.com/sriov_netdevice";

struct Env {
    dir: tempfile::TempDir,
    server: Option<PodResourcesServer>,
    source: DeviceSource,
}

impl Env {
    /// A stand-in kubelet with two pods, and a source pointing at it with a short deadline.
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = PodResourcesServer::start(&dir.path().join("kubelet.sock"));
        server.set_pods(vec![
            FakePod {
                namespace: "default".into(),
                name: "web".into(),
                containers: vec![
                    FakeContainer {
                        name: "app".into(),
                        devices: vec![
                            FakeDevices {
                                resource: SRIOV.into(),
                                ids: vec!["0000:18:02.5".into()],
                                numa: vec![0],
                            },
                            FakeDevices {
                                resource: "nvidia.com/gpu".into(),
                                ids: vec!["GPU-0".into()],
                                numa: vec![1],
                            },
                        ],
                        cpu_ids: vec![4, 5],
                    },
                    FakeContainer {
                        name: "sidecar".into(),
                        devices: vec![FakeDevices {
                            resource: SRIOV.into(),
                            ids: vec!["0000:18:02.6".into(), "0000:18:02.7".into()],
                            numa: vec![0, 1],
                        }],
                        cpu_ids: vec![],
                    },
                ],
            },
            FakePod::with_devices("other", "web", &[(SRIOV, &["0000:86:00.1"])]),
            FakePod::with_devices("default", "plain", &[]),
        ]);
        let source = DeviceSource {
            socket: server.socket().to_path_buf(),
            checkpoint: dir.path().join("kubelet_internal_checkpoint"),
            timeout: Duration::from_millis(400),
        };
        Env {
            dir,
            server: Some(server),
            source,
        }
    }

    fn server(&self) -> &PodResourcesServer {
        self.server.as_ref().expect("server running")
    }

    fn write_checkpoint(&self, text: &str) {
        fs::write(&self.source.checkpoint, text).expect("write checkpoint");
    }
}

fn pod(namespace: &str, name: &str) -> PodIdentity {
    PodIdentity {
        namespace: namespace.into(),
        name: name.into(),
        uid: "uid-web".into(),
    }
}

const CHECKPOINT: &str = r#"{"Data":{"PodDeviceEntries":[
    {"PodUID":"uid-web","ContainerName":"app","ResourceName":"intel.com/sriov_netdevice",
     "DeviceIDs":{"0":["0000:3b:02.0"]},"AllocResp":"CgA="}],
    "RegisteredDevices":{"intel.com/sriov_netdevice":["0000:3b:02.0","0000:3b:02.1"]}},"Checksum":3127351791}"#;

const OLD_CHECKPOINT: &str = r#"{"Data":{"PodDeviceEntries":[
    {"PodUID":"uid-web","ContainerName":"app","ResourceName":"intel.com/sriov_netdevice",
     "DeviceIDs":["0000:3b:02.3","0000:3b:02.4"],"AllocResp":"CgA="}],
    "RegisteredDevices":{}},"Checksum":1}"#;

#[test]
fn get_returns_the_devices_of_every_container() {
    let env = Env::new();
    let ids = env
        .source
        .device_ids(&pod("default", "web"), SRIOV)
        .expect("device IDs");
    assert_eq!(ids, ["0000:18:02.5", "0000:18:02.6", "0000:18:02.7"]);
    // the same name in another namespace is another pod
    assert_eq!(
        env.source.device_ids(&pod("other", "web"), SRIOV).unwrap(),
        ["0000:86:00.1"]
    );

    let calls = env.server().calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c.path, "/v1.PodResourcesLister/Get");
    assert_eq!(c.content_type, "application/grpc");
    assert_eq!(c.te, "trailers");
    assert_eq!(c.grpc_timeout.as_deref(), Some("400m"));
    assert_eq!(c.get, Some(("web".to_string(), "default".to_string())));

    let all = env.source.pod_devices(&pod("default", "web")).unwrap();
    assert_eq!(all.source, Source::Kubelet);
    assert_eq!(all.ids("nvidia.com/gpu"), ["GPU-0"]);
}

#[test]
fn list_is_used_when_get_is_refused() {
    for fault in [Fault::NoGet, Fault::GetDisabled] {
        let env = Env::new();
        env.server().set_fault(fault.clone());
        let ids = env
            .source
            .device_ids(&pod("default", "web"), SRIOV)
            .expect("device IDs");
        assert_eq!(
            ids,
            ["0000:18:02.5", "0000:18:02.6", "0000:18:02.7"],
            "{fault:?}"
        );
        assert_eq!(
            env.server().paths(),
            ["/v1.PodResourcesLister/Get", "/v1.PodResourcesLister/List"],
            "{fault:?}"
        );
    }
}

#[test]
fn a_pod_without_the_resource_is_a_clear_error() {
    let env = Env::new();
    // known pod, no such device
    let err = env
        .source
        .device_ids(&pod("default", "plain"), SRIOV)
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::NotAllocated {
                from: Source::Kubelet,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("default/plain") && text.contains(SRIOV) && text.contains("kubelet"),
        "{text}"
    );
    // unknown pod: Get says "not found", List does not have it either
    let err = env
        .source
        .device_ids(&pod("default", "ghost"), SRIOV)
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::NotAllocated {
                from: Source::Kubelet,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        env.server().paths().last().map(String::as_str),
        Some("/v1.PodResourcesLister/List")
    );
}

#[test]
fn a_hanging_kubelet_is_bounded_by_the_deadline() {
    for fault in [
        Fault::Hang,
        Fault::Mute,
        Fault::Delay(Duration::from_secs(5)),
    ] {
        let env = Env::new();
        env.server().set_fault(fault.clone());
        let started = Instant::now();
        let err = env
            .source
            .device_ids(&pod("default", "web"), SRIOV)
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{fault:?}: {took:?}"
        );
        let DeviceError::Unavailable(u) = &err else {
            panic!("{fault:?}: {err}")
        };
        assert!(
            matches!(u.kubelet, KubeletError::Timeout(_)),
            "{fault:?}: {err}"
        );
        assert!(
            matches!(u.checkpoint, CheckpointError::Missing),
            "{fault:?}: {err}"
        );
        assert!(err.to_string().contains("no answer within 400ms"), "{err}");

        // with a checkpoint, the deadline leads to it
        env.write_checkpoint(CHECKPOINT);
        let started = Instant::now();
        assert_eq!(
            env.source
                .device_ids(&pod("default", "web"), SRIOV)
                .unwrap(),
            ["0000:3b:02.0"],
            "{fault:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // a delay inside the deadline is just slow
    let env = Env::new();
    env.server()
        .set_fault(Fault::Delay(Duration::from_millis(100)));
    assert_eq!(
        env.source.device_ids(&pod("other", "web"), SRIOV).unwrap(),
        ["0000:86:00.1"]
    );
}

#[test]
fn without_the_socket_the_checkpoint_answers_in_both_formats() {
    let mut env = Env::new();
    env.server = None; // stops the stand-in and removes its socket
    assert!(!env.source.socket.exists());
    for (text, want) in [
        (CHECKPOINT, vec!["0000:3b:02.0"]),
        (OLD_CHECKPOINT, vec!["0000:3b:02.3", "0000:3b:02.4"]),
    ] {
        env.write_checkpoint(text);
        let started = Instant::now();
        let devices = env.source.pod_devices(&pod("default", "web")).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "no wait when the socket is absent"
        );
        assert_eq!(devices.source, Source::Checkpoint);
        assert_eq!(devices.ids(SRIOV), want.as_slice());
    }
    // the checkpoint is keyed by UID
    let other = PodIdentity {
        uid: "uid-other".into(),
        ..pod("default", "web")
    };
    let err = env.source.device_ids(&other, SRIOV).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::NotAllocated {
                from: Source::Checkpoint,
                ..
            }
        ),
        "{err}"
    );
    // nothing at all
    fs::remove_file(&env.source.checkpoint).unwrap();
    let err = env
        .source
        .device_ids(&pod("default", "web"), SRIOV)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the socket does not exist") && text.contains("the file does not exist"),
        "{text}"
    );
    assert!(
        text.contains(&env.dir.path().display().to_string()),
        "paths named: {text}"
    );
}

#[test]
fn kubelet_errors_are_reported_with_their_status() {
    let env = Env::new();
    env.server().set_fault(Fault::Status(
        7,
        "access to pod resources denied: 100%".into(),
    ));
    let err = env
        .source
        .device_ids(&pod("default", "web"), SRIOV)
        .unwrap_err();
    let DeviceError::Unavailable(u) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(
            u.kubelet,
            KubeletError::Status {
                method: "List",
                code: 7,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("List failed with gRPC status 7 (PERMISSION_DENIED): access to pod resources denied: 100%"),
        "{err}"
    );

    env.server().set_fault(Fault::Garbage);
    let err = env
        .source
        .device_ids(&pod("default", "web"), SRIOV)
        .unwrap_err();
    assert!(err.to_string().contains("malformed answer to Get"), "{err}");

    env.server().set_fault(Fault::Http(503));
    let err = env
        .source
        .device_ids(&pod("default", "web"), SRIOV)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("gRPC status 14 (UNAVAILABLE): HTTP status 503"),
        "{err}"
    );

    // the checkpoint still answers when the kubelet errs
    env.write_checkpoint(CHECKPOINT);
    assert_eq!(
        env.source
            .device_ids(&pod("default", "web"), SRIOV)
            .unwrap(),
        ["0000:3b:02.0"]
    );
}

#[test]
fn a_large_node_and_parallel_callers() {
    let env = Env::new();
    // ~2000 pods: a List answer of several HTTP/2 frames and flow-control windows
    let mut pods: Vec<FakePod> = (0..2000)
        .map(|i| {
            let id = format!("0000:{:02x}:{:02x}.{}", i / 256, i % 256 / 8, i % 8);
            FakePod::with_devices("bulk", &format!("pod-{i}"), &[(SRIOV, &[id.as_str()])])
        })
        .collect();
    pods.push(FakePod::with_devices(
        "default",
        "web",
        &[(SRIOV, &["0000:18:02.5"])],
    ));
    env.server().set_pods(pods);
    env.server().set_fault(Fault::NoGet);
    let source = DeviceSource {
        timeout: Duration::from_secs(10),
        ..env.source.clone()
    };
    assert_eq!(
        source.device_ids(&pod("bulk", "pod-1999"), SRIOV).unwrap(),
        ["0000:07:19.7"]
    );
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let source = &source;
                s.spawn(move || source.device_ids(&pod("bulk", &format!("pod-{}", i * 100)), SRIOV))
            })
            .collect();
        for h in handles {
            let ids = h.join().expect("no panic").expect("device IDs");
            assert_eq!(ids.len(), 1);
        }
    });
}

#[test]
fn async_callers_share_the_runtime() {
    let env = Env::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let d = rt
        .block_on(env.source.pod_devices_async(&pod("default", "web")))
        .unwrap();
    assert_eq!(d.ids(SRIOV).len(), 3);
    // the synchronous API inside a runtime does not panic
    let ids = rt
        .block_on(async { env.source.device_ids(&pod("other", "web"), SRIOV) })
        .unwrap();
    assert_eq!(ids, ["0000:86:00.1"]);
}

/// What the meta-plugin does with a device ID: the device plugin's file is copied to the
/// attachment's CNI file (whose path goes to the delegate as `CNIDeviceInfoFile`), read back for
/// network-status, and removed on DEL.
#[test]
fn device_ids_lead_to_device_info_files() {
    let env = Env::new();
    let dir = DevInfoDir::new(env.dir.path().join("devinfo"));
    let mut devices = env.source.pod_devices(&pod("default", "web")).unwrap();
    let first = devices.take_next(SRIOV).unwrap();
    let second = devices.take_next(SRIOV).unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("0000:18:02.5", "0000:18:02.6")
    );

    let written = json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": first}});
    let dp = dir.dp_path(SRIOV, &first).unwrap();
    assert!(
        dp.ends_with("dp/intel.com-sriov_netdevice-0000:18:02.5-device.json"),
        "{}",
        dp.display()
    );
    devinfo::save(
        &dp,
        &serde_json::from_value::<DeviceInfo>(written.clone()).unwrap(),
    )
    .unwrap();

    let cni1 = dir
        .cni_path(
            "default/sriov-a",
            &multus::cni::ContainerId::parse("c0ffee").unwrap(),
            "net1",
        )
        .unwrap();
    let cni2 = dir
        .cni_path(
            "default/sriov-b",
            &multus::cni::ContainerId::parse("c0ffee").unwrap(),
            "net2",
        )
        .unwrap();
    assert!(
        cni1.ends_with("cni/default-sriov-a-c0ffee_net1"),
        "{}",
        cni1.display()
    );
    assert!(dir.copy_dp_to_cni(SRIOV, &first, &cni1).unwrap());
    assert!(
        !dir.copy_dp_to_cni(SRIOV, &second, &cni2).unwrap(),
        "no plugin file for the second device"
    );

    let info = devinfo::load(&cni1).unwrap().expect("copied");
    assert_eq!(info.pci_address(), Some("0000:18:02.5"));
    assert_eq!(serde_json::to_value(&info).unwrap(), written);
    assert_eq!(devinfo::load(&cni2).unwrap(), None);

    for p in [&cni1, &cni2, &cni1] {
        devinfo::remove(p).unwrap();
    }
    assert!(!Path::new(&cni1).exists());
}
