//! Crash at every step (docs/reliability.md, "Crash at every step"): a call is SIGKILLed at each
//! step `multus::fault::STEPS` names (binaries built with the `fault-injection` feature,
//! `testkit::bins::fault_injection`), then the runtime's DEL, or GC, with the product binary must
//! leave nothing: no interface, host-local lease, cache file, pin, node-map entry, route,
//! neighbour entry, rp_filter change, anchor namespace or device-info file. Also the node
//! "rebooted" between ADD and DEL (the pod's namespace gone, bpffs emptied, cache and IPAM kept).
//!
//! The pod: eth0 from net-a (bridge + host-local, chained with `ebpf-sbr`, whose gateway is not
//! the pod's default: SBR makes its carrier and routes), net1 from net-b (bridge + host-local,
//! the default route), the pod known to the API stand-in (network-status is written), strict
//! rp_filter in the pod (SBR loosens eth0's). Cases run in parallel threads, each on a node of
//! its own.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use multus::fault::STEPS;
use serde_json::{json, Value};
use testkit::{
    bins,
    bpffs::Bpffs,
    cni,
    kube_api::{KubeApiServer, PodSeed},
    leaks, netns,
    thick::Daemon,
    CniCall, CniOutput, Netns, Node,
};

/// What a case does: the call that crashes, then the cleanup call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// ADD crashes, then DEL.
    AddThenDel,
    /// ADD crashes, then GC (no valid attachment).
    AddThenGc,
    /// ADD, then DEL crashes, then DEL.
    DelThenDel,
    /// ADD, then GC crashes, then GC.
    GcThenGc,
    /// ADD, then CHECK crashes, then DEL.
    CheckThenDel,
    /// ADD, the node reboots (pod namespace and bpffs gone), then DEL.
    RebootThenDel,
    /// ADD, the node reboots, then GC.
    RebootThenGc,
}

/// One case: a scenario and the step (with the hit) it crashes at.
#[derive(Clone, Debug)]
struct Case {
    scenario: Scenario,
    fault: Option<String>,
    /// Whether the crashing call must reach the step (and die by SIGKILL).
    must_crash: bool,
}

/// How many times one call reaches a delegate step: ADD, DEL and CHECK run three plugins
/// (bridge and ebpf-sbr of net-a, bridge of net-b); GC forwards to one 1.1.0 network.
fn hits(step: &str) -> u32 {
    match step {
        "gc.delegate-start" | "gc.delegate-end" => 1,
        s if s.ends_with(".delegate-start") || s.ends_with(".delegate-end") => 3,
        _ => 1,
    }
}

/// Every case: each step (each hit of it) in the scenarios whose crashing call reaches it.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for step in STEPS {
        let scenarios: &[(Scenario, bool)] = match step.split('.').next() {
            Some("add") => &[(Scenario::AddThenDel, true), (Scenario::AddThenGc, true)],
            // GC tears stale containers down the way DEL does (not reading the DEL's cache).
            Some("del") => &[
                (Scenario::DelThenDel, true),
                (
                    Scenario::GcThenGc,
                    !matches!(*step, "del.config-read" | "del.cache-read"),
                ),
            ],
            Some("check") => &[(Scenario::CheckThenDel, true)],
            Some("gc") => &[(Scenario::GcThenGc, true)],
            other => panic!("step {step}: unknown command {other:?}"),
        };
        for (scenario, must_crash) in scenarios {
            for nth in 1..=hits(step) {
                out.push(Case {
                    scenario: *scenario,
                    fault: Some(format!("{step}:{nth}")),
                    must_crash: *must_crash,
                });
            }
        }
    }
    for scenario in [Scenario::RebootThenDel, Scenario::RebootThenGc] {
        out.push(Case {
            scenario,
            fault: None,
            must_crash: false,
        });
    }
    out
}

/// One node with its API stand-in, a pod, and a private bpffs.
struct Pod {
    node: Node,
    _api: KubeApiServer,
    kubeconfig: PathBuf,
    pod: Netns,
    bpffs: Bpffs,
    id: String,
    args: String,
    routes_before: Vec<String>,
}

const POD_NAMESPACE: &str = "crash";

impl Pod {
    fn new() -> Pod {
        let node = Node::new();
        node.install("multus", &bins::product("multus"));
        node.install("ebpf-sbr", &bins::product("ebpf-sbr"));
        node.install(
            "cni-recorder",
            Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
        );
        // The crashing call's plugin directory: the same plugins, built with fault injection.
        let fault_bin = node.root().join("fault-bin");
        std::fs::create_dir_all(&fault_bin).expect("mkdir");
        for (name, path) in [
            ("multus", bins::fault_injection("multus")),
            ("ebpf-sbr", bins::fault_injection("ebpf-sbr")),
            ("multus-daemon", bins::fault_injection("multus-daemon")),
            (
                "cni-recorder",
                PathBuf::from(env!("CARGO_BIN_EXE_cni-recorder")),
            ),
        ] {
            std::os::unix::fs::symlink(path, fault_bin.join(name)).expect("symlink");
        }
        let api = node.api_server();
        let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
        let name = netns::unique_name("p");
        let obj = api
            .create_pod(PodSeed::new(POD_NAMESPACE, &name))
            .expect("pod");
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let id = netns::unique_name("crash");
        let args = cni::k8s_args(POD_NAMESPACE, &name, Some(&id), Some(uid));
        let pod = Netns::new("cp");
        pod.sysctl("net.ipv4.conf.all.rp_filter", "1");
        pod.sysctl("net.ipv4.conf.default.rp_filter", "1");
        let routes_before = pod.all_routes();
        std::fs::create_dir_all(node.root().join("devinfo")).expect("mkdir");
        Pod {
            node,
            _api: api,
            kubeconfig,
            pod,
            bpffs: Bpffs::new(),
            id,
            args,
            routes_before,
        }
    }

    /// multus's configuration; GC's names one more network, a 1.1.0 one (the Debian plugins
    /// stop at 1.0.0) so that GC is forwarded to a delegate.
    fn conf(&self, gc: bool, bin_dir: &Path) -> Value {
        let ipam = self.node.ipam_dir();
        let [net_a, net_b] = testkit::confs::sbr_pair(&ipam, self.bpffs.path());
        let mut delegates = vec![net_a, net_b];
        if gc {
            delegates
                .push(json!({"cniVersion": "1.1.0", "name": "gc-probe", "type": "cni-recorder"}));
        }
        let mut c = testkit::confs::multus("1.1.0", &self.node.cache_dir(), bin_dir, delegates);
        c["kubeconfig"] = json!(self.kubeconfig);
        c["deviceInfoDir"] = json!(self.node.root().join("devinfo"));
        if gc {
            c["cni.dev/valid-attachments"] = json!([]);
        }
        c
    }

    /// Runs `command` with the product binary, or with the fault-injection one crashing at `fault`.
    fn call(&self, command: &str, fault: Option<&str>) -> CniOutput {
        let mut call =
            CniCall::new(&self.node, command, &self.id, Some(&self.pod), "eth0").args(&self.args);
        let Some(fault) = fault else {
            let conf = self.conf(command == "GC", &self.node.bin_dir());
            let conf = serde_json::to_vec(&conf).expect("json");
            return call.run_bytes(&self.node, &bins::product("multus"), &conf);
        };
        let bin = self.node.root().join("fault-bin");
        call.path = format!("{}:{}", bin.display(), bins::REFERENCE_PLUGINS);
        let conf = serde_json::to_vec(&self.conf(command == "GC", &bin)).expect("json");
        call.run_bytes_with_env(
            &self.node,
            &bin.join("multus"),
            &conf,
            &[(multus::fault::ENV, fault)],
        )
    }

    /// The node reboots: the pod's namespace and everything pinned in bpffs go; files stay.
    fn reboot(&mut self) {
        self.pod.delete();
        let path =
            std::ffi::CString::new(self.bpffs.path().as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: umount2 with a valid NUL-terminated path.
        let rc = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        assert_eq!(rc, 0, "unmount bpffs: {}", std::io::Error::last_os_error());
        netns::run(
            "mount",
            &["-t", "bpf", "bpffs", &self.bpffs.path().to_string_lossy()],
        );
    }

    /// Everything left of the pod, as readable lines (empty: nothing left).
    fn leftovers(&self, pod_exists: bool) -> Vec<String> {
        let mut left = Vec::new();
        if pod_exists {
            left.extend(leaks::pod_leftovers(
                &self.pod,
                &self.routes_before,
                Some("1"),
            ));
        }
        // A deleted pod namespace (the reboots) takes its veths' peers along in the kernel's
        // background cleanup, which is slow under load: wait for it up to 10 s.
        let waited = std::time::Instant::now();
        while !pod_exists
            && self
                .node
                .ns
                .link_names()
                .iter()
                .any(|l| !testkit::confs::SBR_PAIR_BRIDGES.contains(&l.as_str()))
            && waited.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        left.extend(leaks::node_leftovers(
            &self.node,
            &testkit::confs::SBR_PAIR_BRIDGES,
            self.bpffs.path(),
            &self.node.root().join("devinfo"),
        ));
        left
    }
}

/// What a case found wrong (empty: it passed), and whether the call was killed at the step.
fn run_case(case: &Case) -> (Vec<String>, bool) {
    let mut p = Pod::new();
    let mut wrong = Vec::new();
    let fault = case.fault.as_deref();
    let crashed = |out: &CniOutput| out.status.signal() == Some(libc::SIGKILL);
    let mut killed = false;
    let mut crash = |p: &Pod, command: &str, wrong: &mut Vec<String>| {
        let out = p.call(command, fault);
        killed = crashed(&out);
        if case.must_crash && !killed {
            wrong.push(format!(
                "{command} did not die by SIGKILL at the step: {:?} {} {}",
                out.status,
                out.stdout,
                out.stderr
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    };
    let must_pass = |out: CniOutput, command: &str, wrong: &mut Vec<String>| {
        if !out.status.success() {
            wrong.push(format!(
                "{command} failed: {:?} {} {}",
                out.status,
                out.stdout,
                out.stderr
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    };
    let mut pod_exists = true;
    match case.scenario {
        Scenario::AddThenDel | Scenario::AddThenGc => {
            crash(&p, "ADD", &mut wrong);
            let cleanup = if case.scenario == Scenario::AddThenDel {
                "DEL"
            } else {
                "GC"
            };
            must_pass(p.call(cleanup, None), cleanup, &mut wrong);
        }
        Scenario::DelThenDel | Scenario::GcThenGc | Scenario::CheckThenDel => {
            must_pass(p.call("ADD", None), "ADD", &mut wrong);
            let (first, then) = match case.scenario {
                Scenario::DelThenDel => ("DEL", "DEL"),
                Scenario::GcThenGc => ("GC", "GC"),
                _ => ("CHECK", "DEL"),
            };
            crash(&p, first, &mut wrong);
            must_pass(p.call(then, None), then, &mut wrong);
        }
        Scenario::RebootThenDel | Scenario::RebootThenGc => {
            must_pass(p.call("ADD", None), "ADD", &mut wrong);
            p.reboot();
            pod_exists = false;
            let then = if case.scenario == Scenario::RebootThenDel {
                "DEL"
            } else {
                "GC"
            };
            must_pass(p.call(then, None), then, &mut wrong);
        }
    }
    wrong.extend(
        p.leftovers(pod_exists)
            .into_iter()
            .map(|l| format!("left: {l}")),
    );
    (wrong, killed)
}

/// The cases whose scenario or step contains `CRASH_STEPS_ONLY` (all when unset; debugging).
fn selected(cases: Vec<Case>) -> Vec<Case> {
    let only = std::env::var("CRASH_STEPS_ONLY").unwrap_or_default();
    cases
        .into_iter()
        .filter(|c| format!("{:?} {:?}", c.scenario, c.fault).contains(&only))
        .collect()
}

/// Runs `run` (what a case found wrong, and whether its call was killed at the step) on every
/// case in parallel threads (`CRASH_STEPS_THREADS`, 4 by default), one node each; prints the
/// summary under `title` and fails with every wrong case.
fn run_all(title: &str, all: &[Case], run: impl Fn(&Case) -> (Vec<String>, bool) + Sync) {
    let threads: usize = std::env::var("CRASH_STEPS_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(4);
    let queue = Mutex::new(all.iter().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    let kills = Mutex::new(0usize);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some(case) = queue.lock().unwrap().pop() else {
                    return;
                };
                let (wrong, killed) = run(case);
                if killed {
                    *kills.lock().unwrap() += 1;
                }
                if !wrong.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "{:?} at {:?}:\n  {}",
                        case.scenario,
                        case.fault,
                        wrong.join("\n  ")
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{title}: {} steps, {} cases, {} calls killed, {} failed, {:.1} s",
        STEPS.len(),
        all.len(),
        kills.into_inner().unwrap(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every case, each on a node of its own.
#[test]
fn every_step_crashed_then_del_or_gc_leaves_nothing() {
    let all = selected(cases());
    // Built before the threads start (once per run).
    bins::fault_injection("multus");
    run_all("crash_steps", &all, run_case);
}

/// The product binaries have no fault injection: the feature is not a default one, and the
/// binaries the tests run (built without it) carry none of its strings, which the
/// fault-injection build does.
#[test]
fn product_binaries_have_no_fault_injection() {
    let manifest =
        std::fs::read_to_string(bins::workspace_root().join("multus-userspace/Cargo.toml"))
            .expect("manifest");
    let defaults = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("default"))
        .unwrap_or("");
    assert!(
        !defaults.contains("fault-injection"),
        "fault-injection is a default feature: {defaults}"
    );
    let needle = multus::fault::ENV.as_bytes();
    let has = |p: &Path| {
        std::fs::read(p)
            .expect("binary")
            .windows(needle.len())
            .any(|w| w == needle)
    };
    for name in [
        "multus",
        "ebpf-sbr",
        "multus-daemon",
        "multus-shim",
        "multusctl",
    ] {
        assert!(!has(&bins::product(name)), "{name} carries fault injection");
    }
    assert!(
        has(&bins::fault_injection("multus")),
        "the fault-injection build has no {}",
        multus::fault::ENV
    );
}

/// Thick mode: the daemon killed at each step of ADD, DEL, CHECK and GC (each hit) while the
/// shim waits for its answer, in the thin cases' scenarios (the reboots aside); the shim must
/// not report the crashed call a success it was not, the daemon must be dead, then a restarted
/// (product) daemon's DEL or GC through the shim must leave nothing.
#[test]
fn daemon_crashed_at_every_step_then_del_or_gc_through_the_shim_leaves_nothing() {
    let all = selected(cases().into_iter().filter(|c| c.fault.is_some()).collect());
    bins::fault_injection("multus-daemon");
    run_all("crash_steps (daemon)", &all, run_daemon_case);
}

/// A daemon (the fault-injection build crashing at `fault`, or the product's) for `p`'s node.
fn daemon(p: &Pod, fault: Option<&str>) -> Daemon {
    let bin_dir = match fault {
        Some(_) => p.node.root().join("fault-bin"),
        None => p.node.bin_dir(),
    };
    let mut d = Daemon::configure(
        &p.node,
        json!({"kubeconfig": p.kubeconfig, "apiDeadlineSeconds": 3, "binDir": bin_dir,
            "deviceInfoDir": p.node.root().join("devinfo")}),
    );
    let binary = match fault {
        Some(_) => bins::fault_injection("multus-daemon"),
        None => bins::product("multus-daemon"),
    };
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(d.log_path())
        .expect("daemon log");
    let mut cmd = p.node.ns.command(binary);
    cmd.arg("-config")
        .arg(d.config_path())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("MULTUS_NODE_NAME", "crash-node")
        .stderr(log);
    if let Some(f) = fault {
        cmd.env(multus::fault::ENV, f);
    }
    d.spawn_command(cmd);
    d.wait_ready(std::time::Duration::from_secs(20));
    d
}

/// A daemon case: the crashing call through the shim to the fault-injection daemon, then the
/// cleanup call through the shim to a restarted product daemon.
fn run_daemon_case(case: &Case) -> (Vec<String>, bool) {
    let p = Pod::new();
    let mut wrong = Vec::new();
    let conf_for = |d: &Daemon, command: &str| {
        let gc = command == "GC";
        let full = p.conf(gc, &p.node.bin_dir());
        let mut conf = d.shim_conf(
            "1.1.0",
            full["delegates"].as_array().cloned().unwrap_or_default(),
        );
        if gc {
            conf["cni.dev/valid-attachments"] = json!([]);
        }
        conf
    };
    let through_shim = |d: &Daemon, command: &str, fault_path: bool| {
        let mut call = CniCall::new(&p.node, command, &p.id, Some(&p.pod), "eth0").args(&p.args);
        if fault_path {
            call.path = format!(
                "{}:{}",
                p.node.root().join("fault-bin").display(),
                bins::REFERENCE_PLUGINS
            );
        }
        let mut conf = conf_for(d, command);
        // The shim waits this long for a daemon that is gone.
        conf["daemonReadyTimeoutSeconds"] = json!(2);
        call.run(&p.node, &testkit::thick::shim(), &conf)
    };
    let must_pass = |out: CniOutput, command: &str, wrong: &mut Vec<String>| {
        if !out.status.success() {
            wrong.push(format!(
                "{command} failed: {} {}",
                out.stdout,
                out.stderr
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    };
    let (before, first, then) = match case.scenario {
        Scenario::AddThenDel => (None, "ADD", "DEL"),
        Scenario::AddThenGc => (None, "ADD", "GC"),
        Scenario::DelThenDel => (Some("ADD"), "DEL", "DEL"),
        Scenario::GcThenGc => (Some("ADD"), "GC", "GC"),
        Scenario::CheckThenDel => (Some("ADD"), "CHECK", "DEL"),
        Scenario::RebootThenDel | Scenario::RebootThenGc => {
            panic!("the reboots are thin cases only")
        }
    };
    if let Some(command) = before {
        let d = daemon(&p, None);
        must_pass(through_shim(&d, command, false), command, &mut wrong);
    }
    let killed;
    {
        let mut d = daemon(&p, case.fault.as_deref());
        let out = through_shim(&d, first, true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while d.running() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        killed = !d.running();
        if case.must_crash && !killed {
            wrong.push(format!("the daemon did not die at the step:\n{}", d.log()));
        }
        // A call the daemon died in: ADD, CHECK and GC wait for it and fail; DEL without a
        // daemon tears down from the cache itself (the shim's fallback), so its success is
        // checked by what is left.
        if killed && first != "DEL" && out.status.success() {
            wrong.push(format!(
                "the shim reported {first} a success: {}",
                out.stdout
            ));
        }
    }
    let d = daemon(&p, None);
    must_pass(through_shim(&d, then, false), then, &mut wrong);
    wrong.extend(p.leftovers(true).into_iter().map(|l| format!("left: {l}")));
    (wrong, killed)
}
