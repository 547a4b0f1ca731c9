//! The PodResources client and the kubelet stand-in, each against a gRPC
//! implementation that is not ours: grpcio (gRPC C-core, Debian's `python3-grpcio`, installed by
//! `cargo xtask setup`), driven by tests/interop/grpcio_podresources.py. The kubelet itself uses
//! grpc-go, which cannot run here; this checks the framing, HTTP/2 settings, trailers and status
//! handling against an independent implementation rather than against ourselves.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use multus::devices::{DeviceError, DeviceSource, KubeletError, PodIdentity};
use testkit::kubelet_podresources::{FakePod, PodResourcesServer};

const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/grpcio_podresources.py")
}

fn require_grpcio() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} cannot import grpc: run `cargo xtask setup` (installs python3-grpcio)"
    );
}

/// A grpcio server in `mode`, killed on drop.
struct GrpcioServer {
    child: Child,
    _dir: tempfile::TempDir,
    source: DeviceSource,
}

impl GrpcioServer {
    fn start(mode: &str) -> GrpcioServer {
        require_grpcio();
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("kubelet.sock");
        let mut child = Command::new(PYTHON)
            .arg(script())
            .args(["server".as_ref(), socket.as_os_str(), mode.as_ref()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the grpcio server");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read READY");
        assert_eq!(line.trim(), "READY", "grpcio server did not start");
        let source = DeviceSource {
            socket,
            checkpoint: dir.path().join("checkpoint"),
            timeout: Duration::from_secs(2),
        };
        GrpcioServer {
            child,
            _dir: dir,
            source,
        }
    }
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pod(namespace: &str, name: &str) -> PodIdentity {
    PodIdentity {
        namespace: namespace.into(),
        name: name.into(),
        uid: String::new(),
    }
}

const SRIOV: &str = "intel.com/sriov";

#[test]
fn client_against_a_grpcio_server() {
    // "get": Get served; "list": Get unknown to the server (UNIMPLEMENTED), List used
    for mode in ["get", "list"] {
        let server = GrpcioServer::start(mode);
        let src = &server.source;
        assert_eq!(
            src.device_ids(&pod("default", "web"), SRIOV).unwrap(),
            ["0000:18:02.5", "0000:18:02.6"],
            "{mode}"
        );
        assert_eq!(
            src.device_ids(&pod("other", "x"), SRIOV).unwrap(),
            ["0000:86:00.1"],
            "{mode}"
        );
        let err = src.device_ids(&pod("default", "ghost"), SRIOV).unwrap_err();
        assert!(
            matches!(err, DeviceError::NotAllocated { .. }),
            "{mode}: {err}"
        );
    }
}

#[test]
fn client_reports_grpcio_errors_and_bounds_a_hang() {
    let server = GrpcioServer::start("error");
    let err = server
        .source
        .device_ids(&pod("default", "web"), SRIOV)
        .unwrap_err();
    let DeviceError::Unavailable(u) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(u.kubelet, KubeletError::Status { code: 7, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(r#"(PERMISSION_DENIED): denied: 100% "no""#),
        "{err}"
    );

    let server = GrpcioServer::start("hang");
    let source = DeviceSource {
        timeout: Duration::from_millis(500),
        ..server.source.clone()
    };
    let started = Instant::now();
    let err = source
        .device_ids(&pod("default", "web"), SRIOV)
        .unwrap_err();
    // Either side may end the call first: our own deadline, or grpcio enforcing the grpc-timeout
    // header we sent (status 4, DEADLINE_EXCEEDED). Both bound the hang.
    let bounded = |k: &KubeletError| {
        matches!(
            k,
            KubeletError::Timeout(_) | KubeletError::Status { code: 4, .. }
        )
    };
    assert!(
        matches!(&err, DeviceError::Unavailable(u) if bounded(&u.kubelet)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn standin_against_a_grpcio_client() {
    require_grpcio();
    let dir = tempfile::tempdir().expect("temp dir");
    let server = PodResourcesServer::start(&dir.path().join("kubelet.sock"));
    server.set_pods(vec![FakePod::with_devices(
        "default",
        "web",
        &[(SRIOV, &["0000:18:02.5"])],
    )]);
    let out = Command::new(PYTHON)
        .arg(script())
        .arg("client")
        .arg(server.socket())
        .output()
        .expect("run the grpcio client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    // both answers carry the pod: name "web", namespace "default", the device ID
    for (line, prefix) in lines[..2].iter().zip(["LIST ", "GET "]) {
        let hex = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line}"));
        for needle in ["web", "default", "0000:18:02.5", SRIOV] {
            let h: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(hex.contains(&h), "{prefix}lacks {needle}: {line}");
        }
    }
    assert_eq!(
        lines[2],
        "ERR UNKNOWN pod ghost in namespace default not found"
    );
    let paths = server.paths();
    assert_eq!(
        paths,
        [
            "/v1.PodResourcesLister/List",
            "/v1.PodResourcesLister/Get",
            "/v1.PodResourcesLister/Get"
        ]
    );
}
