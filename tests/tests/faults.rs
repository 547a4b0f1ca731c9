//! Faults from outside (docs/reliability.md, "Faults from outside"): the API server slow past
//! the deadline, failing with 5xx, throttling with a long Retry-After, resetting the connection
//! mid-body, a stalled watch (thick), a wrong CA; a full disk under the cache, a read-only bpffs
//! for the SBR pins; a delegate that hangs, prints garbage, or is killed by a signal. Each must
//! give a CNI error with the right code and a message naming the cause, within a bound (generous:
//! 2 shared CPUs), and leave nothing: no interface, host-local lease, cache file, pin or process.
//! Thin mode for all; thick mode (the shim and the daemon) for the API faults and the hanging
//! delegate.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use testkit::{
    bins,
    bpffs::Bpffs,
    cni, confs,
    kube_api::{Fault, KubeApiServer, KubeconfigOptions, NadSeed, PodSeed},
    leaks, netns,
    thick::{self, Daemon},
    CniCall, CniOutput, Netns, Node,
};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
const STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
const NS: &str = "faults";
const NODE: &str = "fault-node";
/// `apiDeadlineSeconds` of every call here.
const API_DEADLINE: u64 = 1;
/// Upper bound of a call that meets one API deadline: the deadline, the delegates and their
/// rollback, on a loaded 2-CPU machine.
const API_BOUND: Duration = Duration::from_secs(6);
/// `delegateTimeoutSeconds` for the hanging delegate.
const DELEGATE_TIMEOUT: u64 = 2;

/// A node with the API stand-in in its namespace, the NAD `blue`, and the fault plugins.
struct F {
    node: Node,
    api: KubeApiServer,
    kubeconfig: PathBuf,
    /// Marks this node's hanging plugin's processes (`sleep <marker>`), to find any left.
    marker: u32,
}

/// A pod of the stand-in and its namespace.
struct Pod {
    netns: Netns,
    name: String,
    id: String,
    args: String,
}

impl F {
    fn new() -> F {
        let node = Node::new();
        node.install("multus", &bins::product("multus"));
        node.install("ebpf-sbr", &bins::product("ebpf-sbr"));
        let api = node.api_server();
        let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
        let config = json!({"cniVersion": "1.0.0", "name": "blue", "type": "bridge", "bridge": "fb-blue",
            "ipam": {"type": "host-local", "subnet": "10.131.0.0/24", "dataDir": node.ipam_dir()}});
        api.create_nad(NadSeed::new(NS, "blue", config.to_string()))
            .expect("nad");
        // Unique among the tests of this process and others running at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let marker = 1_000_000
            + (std::process::id() % 1000) * 1000
            + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let f = F {
            node,
            api,
            kubeconfig,
            marker,
        };
        f.install_fault_plugins();
        f
    }

    /// The delegates that misbehave on ADD (and answer DEL with success, as a plugin with
    /// nothing to remove does): `hang` sleeps (in a child, as a shell plugin would, so the
    /// child holds the pipes too), `garbage` prints bytes that are not JSON and exits 0,
    /// `segfault` is killed by SIGSEGV.
    fn install_fault_plugins(&self) {
        let scripts = [
            ("hang", format!("sleep {} & wait", self.marker)),
            ("garbage", "printf 'ok\\377\\000{{not json'".to_string()),
            ("segfault", "kill -SEGV $$".to_string()),
        ];
        for (name, add) in scripts {
            self.install_script(&format!("fault-{name}"), "ADD", &add);
        }
        self.install_script(
            "fault-hang-del",
            "DEL",
            &format!("sleep {} & wait", self.marker),
        );
    }

    /// A shell plugin `name` that runs `action` on `command` and answers every other command
    /// with success (ADD with an empty result).
    fn install_script(&self, name: &str, command: &str, action: &str) {
        let path = self.node.bin_dir().join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = {command} ]; then\n{action}\nexit 0\nfi\n\
                 [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\"}}'\nexit 0\n"
            ),
        )
        .expect("write plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The cluster network (eth0): bridge + host-local, which the rollback must remove.
    fn cluster(&self) -> Value {
        confs::bridge(
            "cluster",
            "fb-c",
            "10.130.0.0/24",
            "1.0.0",
            &self.node.ipam_dir(),
        )
    }

    /// The multus configuration: the cluster network, the API, a 1 s API deadline.
    fn conf(&self) -> Value {
        let mut c = confs::multus(
            "1.0.0",
            &self.node.cache_dir(),
            &self.node.bin_dir(),
            vec![self.cluster()],
        );
        c["kubeconfig"] = json!(self.kubeconfig);
        c["apiDeadlineSeconds"] = json!(API_DEADLINE);
        c
    }

    /// A pod asking for `blue` (net1), on this node.
    fn pod(&self) -> Pod {
        self.pod_on(NODE)
    }

    /// A pod asking for `blue` (net1), on `node`.
    fn pod_on(&self, node: &str) -> Pod {
        let name = netns::unique_name("fp");
        let obj = self
            .api
            .create_pod(
                PodSeed::new(NS, &name)
                    .node_name(node)
                    .annotation(NETWORKS, "blue"),
            )
            .expect("pod");
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let id = netns::unique_name("fc");
        Pod {
            netns: Netns::new("fp"),
            args: cni::k8s_args(NS, &name, Some(&id), Some(uid)),
            name,
            id,
        }
    }

    fn call(&self, command: &str, pod: &Pod) -> CniCall {
        CniCall::new(&self.node, command, &pod.id, Some(&pod.netns), "eth0").args(&pod.args)
    }

    /// Everything left of `pod` on this node (empty: nothing), with the cache in `cache_dir`.
    fn leftovers_in(&self, pod: &Pod, cache_dir: &Path) -> Vec<String> {
        testkit::sbr::carriers_gone(&pod.netns);
        let mut left: Vec<String> = pod
            .netns
            .link_names()
            .into_iter()
            .map(|l| format!("pod link {l}"))
            .collect();
        // The bridges stay (the bridge plugin never deletes them); veths must not.
        left.extend(
            self.node
                .ns
                .link_names()
                .into_iter()
                .filter(|l| !l.starts_with("fb-"))
                .map(|l| format!("node link {l}")),
        );
        left.extend(
            leaks::host_local_leases(&self.node.ipam_dir())
                .into_iter()
                .map(|l| format!("lease {l}")),
        );
        left.extend(
            leaks::cache_files(cache_dir)
                .into_iter()
                .filter(|f| f != FILLER)
                .map(|f| format!("cache file {f}")),
        );
        left.extend(self.processes().into_iter().map(|p| format!("process {p}")));
        left
    }

    fn leftovers(&self, pod: &Pod) -> Vec<String> {
        self.leftovers_in(pod, &self.node.cache_dir())
    }

    /// Processes of this node's hanging plugin still running (pids).
    fn processes(&self) -> Vec<String> {
        let needle = format!("sleep\0{}\0", self.marker);
        let mut out = Vec::new();
        // A killed process group takes a moment to be reaped.
        for _ in 0..50 {
            out = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if out.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        out
    }

    /// The pod's network-status annotation, if written.
    fn status(&self, pod: &Pod) -> Option<String> {
        self.api.pod_annotation(NS, &pod.name, STATUS)
    }
}

/// The file that fills the small cache filesystem.
const FILLER: &str = "filler";

/// A failed call as expected: `code`, a message with every one of `says`, within `bound`.
fn assert_fails(case: &str, out: &CniOutput, code: u64, says: &[&str], bound: Duration) {
    let msg = out.err_msg();
    eprintln!(
        "faults: {case}: code {}, {:.2} s: {msg}",
        out.json
            .as_ref()
            .map(|j| j["code"].clone())
            .unwrap_or_default(),
        out.elapsed.as_secs_f64()
    );
    assert_eq!(
        out.err_code(),
        code,
        "{case}: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !msg.trim_end().ends_with(':'),
        "{case}: the message ends with nothing after its colon: {msg}"
    );
    for s in says {
        assert!(
            msg.to_lowercase().contains(&s.to_lowercase()),
            "{case}: the message does not say {s:?}: {msg}"
        );
    }
    assert!(
        out.elapsed < bound,
        "{case}: took {:?}, more than {bound:?}",
        out.elapsed
    );
}

fn assert_nothing_left(case: &str, left: Vec<String>) {
    assert!(left.is_empty(), "{case}: left behind: {left:?}");
}

/// Where an API fault is injected: the pod GET (before any delegate runs) or the
/// network-status PATCH (after the delegates: the rollback must undo them).
#[derive(Clone, Copy, Debug)]
enum Target {
    PodGet,
    StatusPatch,
}

impl Target {
    fn fault(self, fault: Fault, pod: &str) -> Fault {
        let path = format!("/api/v1/namespaces/{NS}/pods/{pod}");
        match self {
            Target::PodGet => fault.method("GET").path(&path),
            Target::StatusPatch => fault.method("PATCH").path(&path),
        }
    }
}

/// Each API fault: the fault, and what the message must name besides the deadline.
fn api_faults() -> Vec<(&'static str, Fault, &'static str)> {
    vec![
        (
            "slow past the deadline",
            Fault::delay(Duration::from_secs(30)),
            "timed out",
        ),
        ("persistent 503", Fault::status(503), "503"),
        (
            "429 with Retry-After: 3600",
            Fault::too_many_requests(3600),
            "429",
        ),
        (
            "reset mid-body",
            Fault::truncate_body(),
            // HTTP/2 (what the client negotiates): "... stream error detected"; HTTP/1.1: "...
            // peer closed connection without sending TLS close_notify"
            "error reading a body",
        ),
    ]
}

/// Thin mode: each API fault, on the pod GET and on the network-status PATCH, fails the ADD
/// with code 11 (try again later) naming the request and the cause, within the bound, and
/// leaves nothing (the cluster network the ADD made before the PATCH is rolled back).
#[test]
fn api_faults_fail_the_add_in_bounded_time_and_leave_nothing() {
    let f = F::new();
    let conf = f.conf();
    for target in [Target::PodGet, Target::StatusPatch] {
        for (what, fault, cause) in api_faults() {
            let case = format!("thin, {what} on {target:?}");
            let pod = f.pod();
            let id = f.api.inject(target.fault(fault, &pod.name).always());
            let out = f
                .call("ADD", &pod)
                .run(&f.node, &bins::product("multus"), &conf);
            f.api.remove_fault(id);
            let request = match target {
                Target::PodGet => "GET pod",
                Target::StatusPatch => "PATCH pod",
            };
            assert_fails(
                &case,
                &out,
                11,
                &[request, &pod.name, "no answer within", cause],
                API_BOUND,
            );
            assert_nothing_left(&case, f.leftovers(&pod));
            assert_eq!(f.status(&pod), None, "{case}: network-status left");
            // The runtime's DEL after the failed ADD: success, still nothing.
            f.call("DEL", &pod)
                .run(&f.node, &bins::product("multus"), &conf)
                .assert_ok();
            assert_nothing_left(&case, f.leftovers(&pod));
        }
    }
    // A transient reset mid-body is retried: the ADD succeeds.
    let pod = f.pod();
    f.api.inject(
        Target::PodGet
            .fault(Fault::truncate_body(), &pod.name)
            .times(1),
    );
    f.call("ADD", &pod)
        .run(&f.node, &bins::product("multus"), &conf)
        .ok();
    assert!(f.status(&pod).is_some_and(|s| s.contains("net1")));
    f.call("DEL", &pod)
        .run(&f.node, &bins::product("multus"), &conf)
        .assert_ok();
    assert_nothing_left("transient reset", f.leftovers(&pod));
}

/// A kubeconfig whose CA is another cluster's: the server's certificate cannot be verified.
fn wrong_ca_kubeconfig(f: &F) -> PathBuf {
    let other = KubeApiServer::start().expect("another stand-in");
    let mut kc = f.api.kubeconfig(&KubeconfigOptions::default());
    kc["clusters"][0]["cluster"]["certificate-authority-data"] = other
        .kubeconfig(&KubeconfigOptions::default())["clusters"][0]["cluster"]
        ["certificate-authority-data"]
        .clone();
    let path = f.node.root().join("wrong-ca.kubeconfig");
    std::fs::write(&path, kc.to_string()).expect("write kubeconfig");
    path
}

/// Thin mode: a kubeconfig with another cluster's CA: code 7 (the configuration is wrong) naming
/// the certificate at once, not retries until the deadline as for an outage; nothing left.
#[test]
fn a_wrong_ca_is_a_clear_certificate_error() {
    let f = F::new();
    let mut conf = f.conf();
    conf["kubeconfig"] = json!(wrong_ca_kubeconfig(&f));
    let pod = f.pod();
    let out = f
        .call("ADD", &pod)
        .run(&f.node, &bins::product("multus"), &conf);
    assert_fails(
        "thin, wrong CA",
        &out,
        7,
        &["GET pod", "certificate", "invalid peer certificate"],
        API_BOUND,
    );
    assert_nothing_left("thin, wrong CA", f.leftovers(&pod));
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(size: &str) -> SmallFs {
        let dir = tempfile::Builder::new()
            .prefix("fault-tmpfs-")
            .tempdir()
            .expect("tempdir");
        netns::run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "fault-tmpfs",
                &dir.path().to_string_lossy(),
            ],
        );
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem until `free` bytes are left (to a page), with the file [`FILLER`].
    fn fill_leaving(&self, free: u64) {
        let filler = self.path().join(FILLER);
        let _ = std::fs::remove_file(&filler);
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        let c = std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: statvfs with a valid path and an owned struct.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut stat) }, 0);
        let avail = stat.f_bavail * stat.f_frsize;
        std::fs::write(&filler, vec![0u8; avail.saturating_sub(free) as usize]).expect("fill");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.path().as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: umount2 with a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The cache directory (`cniDir`) on a full 64 KiB tmpfs, through `binary` with `conf`. With no
/// room at all the first cache write (before any delegate) fails; with one page free the first
/// write fits and the completed entry (after the delegates) does not: the ADD fails with code 5
/// naming the disk, the rollback removes what the delegates made, no network-status is
/// published, and nothing is left.
fn full_disk_cases(f: &F, mode: &str, fs: &SmallFs, binary: &Path, conf: &Value) {
    for (what, free) in [("no room", 0u64), ("one page free", 4096)] {
        let case = format!("{mode}, full disk, {what}");
        fs.fill_leaving(free);
        let pod = f.pod();
        let out = f.call("ADD", &pod).run(&f.node, binary, conf);
        assert_fails(&case, &out, 5, &["no space left"], API_BOUND);
        assert_nothing_left(&case, f.leftovers_in(&pod, fs.path()));
        assert!(f.status(&pod).is_none(), "{case}: network-status written");
        f.call("DEL", &pod).run(&f.node, binary, conf).assert_ok();
        assert_nothing_left(&case, f.leftovers_in(&pod, fs.path()));
    }
}

/// Thin mode: [`full_disk_cases`].
#[test]
fn a_full_disk_under_the_cache_fails_the_add_and_rolls_back() {
    let f = F::new();
    let fs = SmallFs::new("64k");
    let mut conf = f.conf();
    conf["cniDir"] = json!(fs.path());
    full_disk_cases(&f, "thin", &fs, &bins::product("multus"), &conf);
}

/// Thick mode: [`full_disk_cases`], the daemon's `cniDir` on the small tmpfs.
#[test]
fn thick_a_full_disk_under_the_cache_fails_the_add_and_rolls_back() {
    let f = F::new();
    let fs = SmallFs::new("64k");
    let d = daemon_with(&f, json!({"cniDir": fs.path()}));
    let conf = d.shim_conf("1.0.0", vec![f.cluster()]);
    full_disk_cases(&f, "thick", &fs, &thick::shim(), &conf);
}

/// `ebpf-sbr` chained on the cluster network with its bpffs read-only, through `binary` with
/// `conf` (from `delegates`): the ADD fails with code 5 naming the bpffs directory, and nothing
/// is left (no pin, no interface, no lease).
fn read_only_bpffs_case(f: &F, case: &str, bpffs: &Bpffs, binary: &Path, conf: &Value) {
    netns::run(
        "mount",
        &["-o", "remount,ro", &bpffs.path().to_string_lossy()],
    );
    let pod = f.pod();
    let out = f.call("ADD", &pod).run(&f.node, binary, conf);
    assert_fails(
        case,
        &out,
        5,
        &["read-only", &bpffs.path().to_string_lossy()],
        API_BOUND,
    );
    assert_nothing_left(case, f.leftovers(&pod));
    assert_eq!(bpffs.entries(), Vec::<String>::new(), "{case}: pins left");
    f.call("DEL", &pod).run(&f.node, binary, conf).assert_ok();
    assert_nothing_left(case, f.leftovers(&pod));
    netns::run(
        "mount",
        &["-o", "remount,rw", &bpffs.path().to_string_lossy()],
    );
}

/// The cluster network chained with `ebpf-sbr` pinning in `bpffs`.
fn cluster_with_sbr(f: &F, bpffs: &Bpffs) -> Value {
    json!({"cniVersion": "1.0.0", "name": "cluster", "plugins": [
        f.cluster(), {"type": "ebpf-sbr", "bpffsDir": bpffs.path()}]})
}

/// Thin mode: [`read_only_bpffs_case`].
#[test]
fn a_read_only_bpffs_fails_the_sbr_add_and_leaves_nothing() {
    let f = F::new();
    let bpffs = Bpffs::new();
    let mut conf = f.conf();
    conf["delegates"] = json!([cluster_with_sbr(&f, &bpffs)]);
    read_only_bpffs_case(
        &f,
        "thin, read-only bpffs",
        &bpffs,
        &bins::product("multus"),
        &conf,
    );
}

/// Thick mode: [`read_only_bpffs_case`], `ebpf-sbr` running inside the daemon.
#[test]
fn thick_a_read_only_bpffs_fails_the_sbr_add_and_leaves_nothing() {
    let f = F::new();
    let bpffs = Bpffs::new();
    let d = daemon(&f, &f.kubeconfig);
    let conf = d.shim_conf("1.0.0", vec![cluster_with_sbr(&f, &bpffs)]);
    read_only_bpffs_case(&f, "thick, read-only bpffs", &bpffs, &thick::shim(), &conf);
}

/// The multus configuration with the cluster network, then the fault plugin `plugin` (net1).
fn with_fault_delegate(f: &F, mut conf: Value, plugin: &str) -> Value {
    conf["delegates"] = json!([f.cluster(),
        {"cniVersion": "1.0.0", "name": format!("net-{plugin}"), "type": format!("fault-{plugin}")}]);
    conf["delegateTimeoutSeconds"] = json!(DELEGATE_TIMEOUT);
    conf
}

/// Each delegate fault: the plugin, the code, what the message names, the bound.
fn delegate_faults() -> Vec<(&'static str, u64, Vec<&'static str>, Duration)> {
    vec![
        (
            "hang",
            100,
            vec!["fault-hang", "did not finish within 2s", "killed"],
            Duration::from_secs(DELEGATE_TIMEOUT + 5),
        ),
        (
            "garbage",
            100,
            vec!["fault-garbage", "invalid result"],
            API_BOUND,
        ),
        (
            "segfault",
            100,
            vec!["fault-segfault", "SIGSEGV"],
            API_BOUND,
        ),
    ]
}

/// Thin mode: a delegate that hangs (killed at `delegateTimeoutSeconds`, with the child it
/// started), prints garbage, or is killed by SIGSEGV: code 100 naming the plugin and what it
/// did, within the bound; the cluster network made before it is rolled back; nothing left.
#[test]
fn a_delegate_that_hangs_prints_garbage_or_dies_fails_cleanly() {
    let f = F::new();
    for (plugin, code, says, bound) in delegate_faults() {
        let case = format!("thin, delegate {plugin}");
        let conf = with_fault_delegate(&f, f.conf(), plugin);
        let pod = f.pod();
        let out = f
            .call("ADD", &pod)
            .run(&f.node, &bins::product("multus"), &conf);
        assert_fails(&case, &out, code, &says, bound);
        assert_nothing_left(&case, f.leftovers(&pod));
        assert!(f.status(&pod).is_none(), "{case}: network-status written");
        f.call("DEL", &pod)
            .run(&f.node, &bins::product("multus"), &conf)
            .assert_ok();
        assert_nothing_left(&case, f.leftovers(&pod));
    }
}

/// A delegate that hangs on DEL, through `binary` (the thin plugin or the shim) with `conf`:
/// DEL is bounded by `delegateTimeoutSeconds` too and fails with code 100 naming the plugin (the
/// runtime retries), the plugin and its child killed; the other delegate's DEL still ran; with
/// `retryDeleteOnError` the cache entry stays for the retry (without it, it is removed: see
/// docs/configuration.md). Once the plugin answers, DEL succeeds and nothing is left.
fn del_hang_case(f: &F, case: &str, binary: &Path, conf: &Value) {
    let mut conf = conf.clone();
    conf["retryDeleteOnError"] = json!(true);
    let conf = &conf;
    let pod = f.pod();
    f.call("ADD", &pod).run(&f.node, binary, conf).ok();
    let out = f.call("DEL", &pod).run(&f.node, binary, conf);
    assert_fails(
        case,
        &out,
        100,
        &["fault-hang-del", "did not finish within 2s", "killed"],
        Duration::from_secs(DELEGATE_TIMEOUT + 5),
    );
    assert_eq!(
        f.processes(),
        Vec::<String>::new(),
        "{case}: processes left"
    );
    testkit::sbr::carriers_gone(&pod.netns);
    assert_eq!(
        pod.netns.link_names(),
        Vec::<String>::new(),
        "{case}: the cluster network's DEL did not run"
    );
    assert_eq!(
        leaks::cache_files(&f.node.cache_dir()).len(),
        1,
        "{case}: the cache entry is kept for the retry"
    );
    // The plugin answers again: the runtime's retry finishes the job.
    f.install_script("fault-hang-del", "NONE", "");
    f.call("DEL", &pod).run(&f.node, binary, conf).assert_ok();
    assert_nothing_left(case, f.leftovers(&pod));
}

/// Thin mode: a delegate that hangs on DEL ([`del_hang_case`]).
#[test]
fn a_delegate_that_hangs_on_del_is_bounded_and_del_can_be_retried() {
    let f = F::new();
    let conf = with_fault_delegate(&f, f.conf(), "hang-del");
    del_hang_case(
        &f,
        "thin, delegate hangs on DEL",
        &bins::product("multus"),
        &conf,
    );
}

/// Thick mode: a delegate that hangs on DEL ([`del_hang_case`]), through the shim and the daemon.
#[test]
fn thick_a_delegate_that_hangs_on_del_is_bounded_and_del_can_be_retried() {
    let f = F::new();
    let d = daemon(&f, &f.kubeconfig);
    let conf = with_fault_delegate(&f, d.shim_conf("1.0.0", vec![f.cluster()]), "hang-del");
    del_hang_case(&f, "thick, delegate hangs on DEL", &thick::shim(), &conf);
}

/// A daemon for `f`'s node: the node's name, the API with a 1 s deadline, `kubeconfig`.
fn daemon(f: &F, kubeconfig: &Path) -> Daemon {
    daemon_with(f, json!({"kubeconfig": kubeconfig}))
}

/// A daemon for `f`'s node, its configuration's keys `extra` (the API of `f` unless named).
fn daemon_with(f: &F, extra: Value) -> Daemon {
    let mut config = json!({"kubeconfig": f.kubeconfig, "apiDeadlineSeconds": API_DEADLINE});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let mut d = Daemon::configure(&f.node, config);
    d.env.push(("MULTUS_NODE_NAME".into(), NODE.into()));
    d.spawn(&f.node);
    d.wait_ready(Duration::from_secs(20));
    d
}

/// Thick mode: the same API faults through the shim and the daemon: code 11 naming the
/// request and the cause, within the bound, nothing left; the daemon keeps serving. The pod is
/// another node's (the daemon's cache does not hold it), so its GET reaches the API.
#[test]
fn thick_api_faults_fail_the_add_in_bounded_time_and_leave_nothing() {
    let f = F::new();
    let d = daemon(&f, &f.kubeconfig);
    let conf = d.shim_conf("1.0.0", vec![f.cluster()]);
    for target in [Target::PodGet, Target::StatusPatch] {
        for (what, fault, cause) in api_faults() {
            let case = format!("thick, {what} on {target:?}");
            let pod = f.pod_on("another-node");
            let id = f.api.inject(target.fault(fault, &pod.name).always());
            let out = f.call("ADD", &pod).run(&f.node, &thick::shim(), &conf);
            f.api.remove_fault(id);
            let request = match target {
                Target::PodGet => "GET pod",
                Target::StatusPatch => "PATCH pod",
            };
            assert_fails(
                &case,
                &out,
                11,
                &[request, &pod.name, "no answer within", cause],
                API_BOUND,
            );
            assert_nothing_left(&case, f.leftovers(&pod));
            assert_eq!(f.status(&pod), None, "{case}: network-status left");
            f.call("DEL", &pod)
                .run(&f.node, &thick::shim(), &conf)
                .assert_ok();
            assert_nothing_left(&case, f.leftovers(&pod));
        }
    }
    assert_eq!(d.get(multus::daemon::api::READY_PATH).0, 200, "{}", d.log());
}

/// Thick mode: the daemon's watches stall (headers, then nothing) from its start: its caches
/// hold what the first LIST gave and never hear of a later pod or NAD; ADD of such a pod still
/// succeeds through GETs, within the bound, and DEL leaves nothing.
#[test]
fn a_stalled_watch_falls_back_to_gets() {
    let f = F::new();
    f.api.inject(Fault::stall_watch().method("GET").path("/**"));
    let d = daemon(&f, &f.kubeconfig);
    let conf = d.shim_conf("1.0.0", vec![f.cluster()]);
    // The first LIST done (ready does not wait for it): what follows reaches only the watches.
    d.wait_cache("network-attachment-definitions", 1, Duration::from_secs(15));
    d.wait_cache("pods", 0, Duration::from_secs(15));
    // Created after the watches stalled.
    let config = json!({"cniVersion": "1.0.0", "name": "green", "type": "bridge", "bridge": "fb-green",
        "ipam": {"type": "host-local", "subnet": "10.132.0.0/24", "dataDir": f.node.ipam_dir()}});
    f.api
        .create_nad(NadSeed::new(NS, "green", config.to_string()))
        .expect("nad");
    let name = netns::unique_name("fp");
    let obj = f
        .api
        .create_pod(
            PodSeed::new(NS, &name)
                .node_name(NODE)
                .annotation(NETWORKS, "green"),
        )
        .expect("pod");
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let id = netns::unique_name("fc");
    let pod = Pod {
        netns: Netns::new("fp"),
        args: cni::k8s_args(NS, &name, Some(&id), Some(uid)),
        name,
        id,
    };
    std::thread::sleep(Duration::from_millis(500));
    let caches = d.status().caches;
    assert!(
        caches
            .iter()
            .any(|c| c.resource == "pods" && c.objects == 0),
        "the pod reached the cache: the watch did not stall: {caches:?}"
    );
    let gets = f
        .api
        .request_count("GET", &format!("/api/v1/namespaces/{NS}/pods/{}", pod.name));
    let out = f.call("ADD", &pod).run(&f.node, &thick::shim(), &conf);
    eprintln!(
        "faults: thick, stalled watch: ADD {:.2} s",
        out.elapsed.as_secs_f64()
    );
    out.ok();
    assert!(out.elapsed < API_BOUND, "took {:?}", out.elapsed);
    assert_eq!(pod.netns.link_names(), vec!["eth0", "net1"]);
    assert!(f.status(&pod).is_some_and(|s| s.contains("net1")));
    assert_eq!(
        f.api
            .request_count("GET", &format!("/api/v1/namespaces/{NS}/pods/{}", pod.name)),
        gets + 1,
        "one GET of the pod the cache did not hold"
    );
    f.call("DEL", &pod)
        .run(&f.node, &thick::shim(), &conf)
        .assert_ok();
    assert_nothing_left("thick, stalled watch", f.leftovers(&pod));
}

/// Thick mode: a delegate that hangs is killed at `delegateTimeoutSeconds` (with its child);
/// the shim answers code 100 naming it within the bound; nothing left; the daemon keeps serving.
#[test]
fn thick_a_hanging_delegate_is_killed_and_rolled_back() {
    let f = F::new();
    let d = daemon(&f, &f.kubeconfig);
    let mut conf = d.shim_conf("1.0.0", vec![f.cluster()]);
    conf = with_fault_delegate(&f, conf, "hang");
    let pod = f.pod();
    let out = f.call("ADD", &pod).run(&f.node, &thick::shim(), &conf);
    let (_, _, says, bound) = delegate_faults().remove(0);
    assert_fails("thick, delegate hang", &out, 100, &says, bound);
    assert_nothing_left("thick, delegate hang", f.leftovers(&pod));
    f.call("DEL", &pod)
        .run(&f.node, &thick::shim(), &conf)
        .assert_ok();
    assert_nothing_left("thick, delegate hang", f.leftovers(&pod));
    assert_eq!(d.get(multus::daemon::api::READY_PATH).0, 200, "{}", d.log());
}

/// Thick mode: a daemon whose kubeconfig has another cluster's CA: the ADD of a pod fails with
/// a clear certificate error within the bound; nothing left.
#[test]
fn thick_a_wrong_ca_is_a_clear_certificate_error() {
    let f = F::new();
    let kubeconfig = wrong_ca_kubeconfig(&f);
    let mut d = Daemon::configure(
        &f.node,
        json!({"kubeconfig": kubeconfig, "apiDeadlineSeconds": API_DEADLINE}),
    );
    d.env.push(("MULTUS_NODE_NAME".into(), NODE.into()));
    d.spawn(&f.node);
    d.wait_ready(Duration::from_secs(20));
    let conf = d.shim_conf("1.0.0", vec![f.cluster()]);
    let pod = f.pod();
    let started = Instant::now();
    let out = f.call("ADD", &pod).run(&f.node, &thick::shim(), &conf);
    assert_fails(
        "thick, wrong CA",
        &out,
        7,
        &["GET pod", "certificate", "invalid peer certificate"],
        API_BOUND,
    );
    assert!(started.elapsed() < API_BOUND);
    assert_nothing_left("thick, wrong CA", f.leftovers(&pod));
}
