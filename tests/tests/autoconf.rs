//! Auto-configuration with real processes in temporary directories (never the host's
//! /etc/cni): boot races of the thick daemon (started before any primary network exists; the
//! primary replaced by one of another CNI version and capabilities, overtaken by a file that
//! sorts first, removed), the generated file never empty or half-written at any observation, ADD
//! through the generated list; the thin agent's configuration and kubeconfig, a thin `multus` ADD
//! through them against the API stand-in, the projected token rotated (the next call uses the new
//! one, in thin and thick mode); `uninstall` removing exactly what was generated.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use testkit::{
    bins,
    chain::Runtime,
    cni, confs,
    kube_api::{KubeApiServer, KubeconfigOptions, PodSeed},
    leaks,
    thick::{self, Daemon},
    CniCall, Netns, Node,
};

const CONF: &str = "00-multus.conf";
const CONFLIST: &str = "00-multus.conflist";
const STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
/// A pass of auto-configuration runs every second; a change is seen well within this.
const SEEN: Duration = Duration::from_secs(10);

fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_json(path: &Path) -> Option<Value> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The stdin libcni gives the one plugin of a generated list.
fn single_plugin(list: &Value) -> Value {
    Runtime::plugin_conf(list, &list["plugins"][0], None)
}

/// Watches the generated files from another thread: every read of either file must be a whole
/// JSON document, and once one existed, one of the two always exists.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    violations: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(dir: &Path) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (s, r, v, dir) = (
            stop.clone(),
            reads.clone(),
            violations.clone(),
            dir.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            let mut seen_one = false;
            while !s.load(Ordering::SeqCst) {
                let mut present = 0;
                for name in [CONF, CONFLIST] {
                    match std::fs::read(dir.join(name)) {
                        Ok(bytes) => {
                            present += 1;
                            r.fetch_add(1, Ordering::SeqCst);
                            if serde_json::from_slice::<Value>(&bytes).is_err() {
                                v.lock().unwrap().push(format!(
                                    "{name}: {} bytes, not JSON: {:?}",
                                    bytes.len(),
                                    String::from_utf8_lossy(&bytes)
                                ));
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => v.lock().unwrap().push(format!("{name}: {e}")),
                    }
                }
                if present > 0 {
                    seen_one = true;
                } else if seen_one {
                    v.lock()
                        .unwrap()
                        .push("neither 00-multus.conf nor .conflist".into());
                }
            }
        });
        Reader {
            stop,
            reads,
            violations,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let v = self.violations.lock().unwrap().clone();
        (self.reads.load(Ordering::SeqCst), v)
    }
}

fn bridge_list(node: &Node, version: &str, bridge: &str, subnet: &str, caps: Value) -> Value {
    let mut b = confs::bridge("primary", bridge, subnet, version, &node.ipam_dir());
    b.as_object_mut().unwrap().remove("cniVersion");
    b.as_object_mut().unwrap().remove("name");
    json!({"cniVersion": version, "name": "primary", "plugins": [
        b, {"type": "portmap", "capabilities": caps}]})
}

/// The daemon's readiness answer: (status, body).
fn readyz(daemon: &Daemon) -> (u16, String) {
    daemon.get(multus::daemon::api::READY_PATH)
}

#[test]
fn the_daemon_started_before_the_primary_waits_then_follows_it_and_the_file_is_never_empty() {
    let node = Node::new();
    let mut daemon = Daemon::configure(&node, json!({}));
    let dir = daemon.cni_config_dir();
    std::fs::remove_file(dir.join(thick::DEFAULT_PRIMARY)).unwrap();
    daemon.spawn(&node);
    // Serving, not ready, and saying why; nothing generated.
    wait_until(
        "the first pass",
        SEEN,
        || readyz(&daemon).1.contains("no primary network"),
        || daemon.log(),
    );
    assert_eq!(readyz(&daemon).0, 503);
    assert!(!dir.join(CONF).exists() && !dir.join(CONFLIST).exists());
    assert!(daemon
        .status()
        .not_ready
        .iter()
        .any(|r| r.contains("no primary network")));
    let reader = Reader::start(&dir);

    // The primary arrives (CNI 0.3.1): 00-multus.conf, ready.
    let b = dir.join("20-b.conflist");
    std::fs::write(
        &b,
        bridge_list(
            &node,
            "0.3.1",
            "tkac0",
            "10.87.0.0/24",
            json!({"portMappings": true}),
        )
        .to_string(),
    )
    .unwrap();
    wait_until(
        "00-multus.conf",
        SEEN,
        || readyz(&daemon).0 == 200,
        || daemon.log(),
    );
    let conf = read_json(&dir.join(CONF)).unwrap();
    assert_eq!(conf["type"], "multus-shim", "{conf}");
    assert_eq!(conf["cniVersion"], "0.3.1", "{conf}");
    assert_eq!(conf["clusterNetwork"], json!(b), "{conf}");
    assert_eq!(
        conf["capabilities"],
        json!({"portMappings": true}),
        "{conf}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join(CONF))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Replaced in place (truncated, then written: a reader may see it empty) by CNI 1.0.0 with
    // other capabilities: the list form, the single form removed.
    std::fs::write(
        &b,
        bridge_list(
            &node,
            "1.0.0",
            "tkac0",
            "10.87.0.0/24",
            json!({"portMappings": true, "bandwidth": true}),
        )
        .to_string(),
    )
    .unwrap();
    wait_until(
        "00-multus.conflist",
        SEEN,
        || !dir.join(CONF).exists(),
        || daemon.log(),
    );
    let list = read_json(&dir.join(CONFLIST)).unwrap();
    assert_eq!(list["cniVersion"], "1.0.0", "{list}");
    assert_eq!(
        list["plugins"][0]["capabilities"],
        json!({"portMappings": true, "bandwidth": true}),
        "{list}"
    );

    // The shim as the single plugin of the list (stdin carries the list's name and version):
    // ADD and DEL through the daemon with the primary it names.
    let pod = Netns::new("acp");
    let add = CniCall::new(&node, "ADD", "ac-list", Some(&pod), "eth0");
    let out = add.run(&node, &thick::shim(), &single_plugin(&list));
    assert!(
        out.ok()["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.87.0."),
        "{}",
        out.stdout
    );
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &single_plugin(&list))
        .assert_ok();
    node.assert_pod_clean(&pod);

    // A file that sorts first appears (CNI 0.4.0): re-picked, single form again.
    let a = dir.join("10-a.conf");
    std::fs::write(
        &a,
        confs::bridge("a", "tkac1", "10.88.0.0/24", "0.4.0", &node.ipam_dir()).to_string(),
    )
    .unwrap();
    // (One pass writes the new form, then removes the other, then reports readiness.)
    wait_until(
        "re-picked",
        SEEN,
        || {
            read_json(&dir.join(CONF)).is_some_and(|c| c["clusterNetwork"] == json!(a))
                && !dir.join(CONFLIST).exists()
                && readyz(&daemon).0 == 200
        },
        || daemon.log(),
    );

    // It goes: back to the next one.
    std::fs::remove_file(&a).unwrap();
    wait_until(
        "back to 20-b",
        SEEN,
        || {
            read_json(&dir.join(CONFLIST))
                .is_some_and(|c| c["plugins"][0]["clusterNetwork"] == json!(b))
        },
        || daemon.log(),
    );

    // The last one goes: ours stays in place (pods wait at the shim instead of starting without
    // their networks), the daemon is not ready and says why.
    std::fs::remove_file(&b).unwrap();
    wait_until(
        "not ready",
        SEEN,
        || readyz(&daemon).0 == 503,
        || daemon.log(),
    );
    let (_, body) = readyz(&daemon);
    assert!(
        body.contains("00-multus.conflist is kept in place"),
        "{body}"
    );
    assert!(dir.join(CONFLIST).exists());
    // An ADD through the kept file is refused unprocessed (503) and the shim waits for readiness
    // (here 1 s), then fails with code 11: no delegate ran, nothing was cached.
    let mut waiting = single_plugin(&read_json(&dir.join(CONFLIST)).unwrap());
    waiting["daemonReadyTimeoutSeconds"] = json!(1);
    let pod = Netns::new("acw");
    let out = CniCall::new(&node, "ADD", "ac-wait", Some(&pod), "eth0").run(
        &node,
        &thick::shim(),
        &waiting,
    );
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(out.err_msg().contains("not ready"), "{}", out.stdout);
    assert!(
        out.elapsed >= std::time::Duration::from_millis(900),
        "{:?}",
        out.elapsed
    );
    assert_eq!(leaks::cache_files(&node.cache_dir()), Vec::<String>::new());
    node.assert_pod_clean(&pod);

    let (reads, violations) = reader.finish();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(reads > 100, "the reader observed only {reads} times");
    // The waits were logged, not each poll.
    let log = daemon.log();
    assert!(
        log.matches("waiting: no primary network").count() <= 3,
        "{log}"
    );

    // SIGTERM leaves it in place; uninstall removes it (and only it).
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(SEEN), Some(0), "{}", daemon.log());
    assert!(dir.join(CONFLIST).exists());
    std::fs::write(dir.join("README"), "operator's").unwrap();
    let un = uninstall(&dir);
    assert!(un.status.success(), "{un:?}");
    assert!(!dir.join(CONFLIST).exists());
    assert!(dir.join("README").exists());
}

#[test]
fn an_unusable_primary_keeps_the_previous_file() {
    let node = Node::new();
    let mut daemon = Daemon::configure(&node, json!({}));
    let dir = daemon.cni_config_dir();
    daemon.spawn(&node);
    daemon.wait_ready(SEEN);
    let primary = dir.join(thick::DEFAULT_PRIMARY);
    let before = std::fs::read(dir.join(CONFLIST)).unwrap();
    // Emptied (the reference's #1155 wrote an empty 00-multus.conf here).
    std::fs::write(&primary, b"").unwrap();
    wait_until(
        "not ready",
        SEEN,
        || readyz(&daemon).0 == 503,
        || daemon.log(),
    );
    let (_, body) = readyz(&daemon);
    assert!(body.contains("is unusable"), "{body}");
    assert_eq!(std::fs::read(dir.join(CONFLIST)).unwrap(), before);
    // Repaired: ready again.
    std::fs::write(
        &primary,
        json!({"cniVersion": "1.0.0", "name": "p", "plugins": [{"type": "loopback"}]}).to_string(),
    )
    .unwrap();
    wait_until("ready", SEEN, || readyz(&daemon).0 == 200, || daemon.log());
    assert!(
        daemon.log().matches("is unusable").count() <= 2,
        "logged once per change"
    );
}

#[test]
fn a_pinned_primary_is_used_even_when_another_sorts_first() {
    let node = Node::new();
    let mut daemon = Daemon::configure(&node, json!({"multusMasterCNI": "50-pinned.conf"}));
    let dir = daemon.cni_config_dir();
    std::fs::write(
        dir.join("50-pinned.conf"),
        confs::bridge("p", "tkac2", "10.89.0.0/24", "0.3.1", &node.ipam_dir()).to_string(),
    )
    .unwrap();
    daemon.spawn(&node);
    daemon.wait_ready(SEEN);
    let conf = read_json(&dir.join(CONF)).unwrap();
    assert_eq!(
        conf["clusterNetwork"],
        json!(dir.join("50-pinned.conf")),
        "{conf}"
    );
}

#[test]
fn missing_node_prerequisites_degrade_without_blocking_readiness() {
    let node = Node::new();
    let missing = node.root().join("no-kubelet/kubelet.sock");
    let daemon = Daemon::start(&node, json!({"podResourcesSocket": missing}));
    let status = daemon.status();
    assert!(status.ready);
    let degraded = status.degraded.join("\n");
    assert!(
        degraded.contains(&format!("{} does not exist", missing.display())),
        "{degraded}"
    );
    let (code, body) = readyz(&daemon);
    assert_eq!(code, 200);
    assert!(body.contains("podResources"), "{body}");
    assert_eq!(
        daemon
            .log()
            .matches("no-kubelet/kubelet.sock does not exist")
            .count(),
        1,
        "{}",
        daemon.log()
    );
}

fn uninstall(dir: &Path) -> std::process::Output {
    Command::new(bins::product("multus-daemon"))
        .args(["uninstall", "--cni-conf-dir"])
        .arg(dir)
        .output()
        .expect("multus-daemon uninstall")
}

/// A thin agent process; SIGKILLed on drop if still running.
struct Agent {
    child: Child,
    log: PathBuf,
}

/// The thin agent's memory (MiB) and CPU (millicores) requests in deploy/thin/daemonset.yaml.
fn thin_agent_requests() -> (f64, f64) {
    let manifest: Value = serde_norway::from_str(
        &std::fs::read_to_string(bins::workspace_root().join("deploy/thin/daemonset.yaml"))
            .unwrap(),
    )
    .unwrap();
    let agent = manifest["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kube-multus")
        .expect("the agent's container");
    let requests = &agent["resources"]["requests"];
    let memory = requests["memory"].as_str().unwrap();
    let cpu = requests["cpu"].as_str().unwrap();
    (
        memory.strip_suffix("Mi").unwrap().parse().unwrap(),
        cpu.strip_suffix('m').unwrap().parse().unwrap(),
    )
}

impl Agent {
    fn start(conf_dir: &Path, sa_dir: &Path, api: &KubeApiServer, log: PathBuf) -> Agent {
        let child = Command::new(bins::product("multus-daemon"))
            .args(["thin", "--cni-conf-dir"])
            .arg(conf_dir)
            .arg("--node-cni-conf-dir")
            .arg(conf_dir)
            .arg("--service-account-dir")
            .arg(sa_dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", api.addr().port().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("multus-daemon thin");
        Agent { child, log }
    }

    /// Peak RSS (MiB), and the CPU used during `idle` from now, per second (millicores; all
    /// threads' time on CPU from /proc/<pid>/schedstat, in ns).
    fn usage(&self, idle: Duration) -> (f64, f64) {
        let pid = self.child.id();
        let on_cpu_ns = || -> f64 {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .map(|t| {
                    let stat =
                        std::fs::read_to_string(t.unwrap().path().join("schedstat")).unwrap();
                    stat.split_whitespace()
                        .next()
                        .unwrap()
                        .parse::<f64>()
                        .unwrap()
                })
                .sum()
        };
        let before = on_cpu_ns();
        std::thread::sleep(idle);
        let millicores = (on_cpu_ns() - before) / idle.as_secs_f64() / 1e6;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let peak_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmHWM");
        (peak_kib / 1024.0, millicores)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces a service-account file the way the kubelet does (a new file renamed over it).
fn rotate(sa_dir: &Path, name: &str, content: &str) {
    let tmp = sa_dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, sa_dir.join(name)).unwrap();
}

/// Pod `name` created in the API, then the runtime's ADD of it through `plugin` with `stdin`, in
/// a new namespace (`role` names it): the namespace, the call (for its DEL) and the ADD's output.
fn add_pod(
    api: &KubeApiServer,
    node: &Node,
    name: &str,
    role: &str,
    plugin: &Path,
    stdin: &Value,
) -> (Netns, CniCall, testkit::CniOutput) {
    let obj = api.create_pod(PodSeed::new("default", name)).unwrap();
    let uid = obj["metadata"]["uid"].as_str().unwrap().to_string();
    let pod = Netns::new(role);
    let call = CniCall::new(node, "ADD", name, Some(&pod), "eth0").args(&cni::k8s_args(
        "default",
        name,
        Some(name),
        Some(&uid),
    ));
    let out = call.run(node, plugin, stdin);
    (pod, call, out)
}

#[test]
fn the_thin_agent_writes_conf_and_kubeconfig_an_add_works_and_a_rotated_token_is_used() {
    let node = Node::new();
    node.install("multus", &bins::product("multus"));
    let api = node.api_server();
    let conf_dir = node.root().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let sa = api.write_service_account(&node.root().join("sa")).unwrap();
    let primary = bridge_list(
        &node,
        "1.0.0",
        "tkac3",
        "10.90.0.0/24",
        json!({"portMappings": true}),
    );
    std::fs::write(conf_dir.join("10-primary.conflist"), primary.to_string()).unwrap();
    let mut agent = Agent::start(&conf_dir, &sa, &api, node.root().join("agent.log"));
    let kubeconfig = conf_dir.join("multus.d/multus.kubeconfig");
    wait_until(
        "conf and kubeconfig",
        SEEN,
        || conf_dir.join(CONFLIST).exists(),
        || agent.log(),
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let list = read_json(&conf_dir.join(CONFLIST)).unwrap();
    let plugin = &list["plugins"][0];
    assert_eq!(plugin["type"], "multus", "{list}");
    assert_eq!(plugin["kubeconfig"], json!(kubeconfig), "{list}");
    assert_eq!(plugin["delegates"][0], primary, "{list}");
    assert_eq!(
        plugin["capabilities"],
        json!({"portMappings": true}),
        "{list}"
    );

    // A thin multus ADD through that list, as libcni runs its one plugin; the cache and plugin
    // directories point into the test node (the generated file names the host's defaults).
    let mut stdin = single_plugin(&list);
    stdin["cniDir"] = json!(node.cache_dir());
    stdin["binDir"] = json!(node.bin_dir());
    let pod_add = |name: &str| add_pod(&api, &node, name, "act", &bins::product("multus"), &stdin);
    let (pod1, call1, out) = pod_add("thin-1");
    out.assert_ok();
    assert!(api.pod_annotation("default", "thin-1", STATUS).is_some());

    // The projected token rotates and the API accepts only the new one: the kubeconfig follows
    // within a pass, and the next call uses it.
    let old = api.token().to_string();
    api.rotate_token("rotated-token-2");
    rotate(&sa, "token", "rotated-token-2\n");
    wait_until(
        "kubeconfig rewritten",
        SEEN,
        || {
            read_json(&kubeconfig)
                .is_some_and(|k| k["users"][0]["user"]["token"] == "rotated-token-2")
        },
        || agent.log(),
    );
    let (pod2, call2, out) = pod_add("thin-2");
    out.assert_ok();
    assert!(api.pod_annotation("default", "thin-2", STATUS).is_some());
    let log = agent.log();
    assert!(
        !log.contains(&old) && !log.contains("rotated-token-2"),
        "the token is never logged:\n{log}"
    );

    // What the agent costs, against what the thin manifest gives it: its peak RSS within half the
    // memory request (2x headroom), its CPU while idle (3 s of polling) within the CPU request.
    let (peak_mib, cpu_millicores) = agent.usage(Duration::from_secs(3));
    let (memory_request_mib, cpu_request_millicores) = thin_agent_requests();
    eprintln!(
        "thin agent: peak RSS {peak_mib:.1} MiB (request {memory_request_mib} MiB), CPU {cpu_millicores:.2}m (request {cpu_request_millicores}m)"
    );
    assert!(
        peak_mib * 2.0 <= memory_request_mib,
        "peak RSS {peak_mib:.1} MiB"
    );
    assert!(
        cpu_millicores <= cpu_request_millicores,
        "{cpu_millicores:.2} millicores"
    );

    // SIGTERM: exits, files stay.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < SEEN,
            "the agent did not stop:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}\n{}", agent.log());
    assert!(conf_dir.join(CONFLIST).exists() && kubeconfig.exists());

    for call in [&call1, &call2] {
        let mut del = call.clone();
        del.command = "DEL".into();
        del.run(&node, &bins::product("multus"), &stdin).assert_ok();
    }
    node.assert_pod_clean(&pod1);
    node.assert_pod_clean(&pod2);

    // Uninstall removes exactly ours; a second run is a no-op.
    std::fs::write(conf_dir.join("multus.d/keep.json"), "{}").unwrap();
    let un = uninstall(&conf_dir);
    assert!(un.status.success(), "{un:?}");
    assert!(!conf_dir.join(CONFLIST).exists() && !kubeconfig.exists());
    assert!(conf_dir.join("10-primary.conflist").exists());
    assert!(conf_dir.join("multus.d/keep.json").exists());
    assert!(uninstall(&conf_dir).status.success());
}

#[test]
fn the_thick_daemon_uses_a_rotated_token_file_on_the_next_call() {
    let node = Node::new();
    let api = node.api_server();
    // A kubeconfig whose user reads its token from a file (as the in-cluster configuration does).
    let sa = api.write_service_account(&node.root().join("sa")).unwrap();
    let mut kc = api.kubeconfig(&KubeconfigOptions::default());
    kc["users"][0]["user"] = json!({"tokenFile": sa.join("token")});
    let kubeconfig = node.root().join("kubeconfig");
    std::fs::write(&kubeconfig, kc.to_string()).unwrap();
    let daemon = Daemon::start(
        &node,
        json!({"kubeconfig": kubeconfig, "apiDeadlineSeconds": 3}),
    );
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![confs::bridge(
            "c",
            "tkac4",
            "10.91.0.0/24",
            "1.0.0",
            &node.ipam_dir(),
        )],
    );
    let add = |name: &str| add_pod(&api, &node, name, "acr", &thick::shim(), &conf);
    let (pod1, call1, out) = add("rot-1");
    out.assert_ok();
    assert!(api.pod_annotation("default", "rot-1", STATUS).is_some());
    api.rotate_token("rotated-thick-2");
    rotate(&sa, "token", "rotated-thick-2");
    let (pod2, call2, out) = add("rot-2");
    out.assert_ok();
    assert!(
        api.pod_annotation("default", "rot-2", STATUS).is_some(),
        "{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains("rotated-thick-2"),
        "the token is never logged"
    );
    for call in [&call1, &call2] {
        let mut del = call.clone();
        del.command = "DEL".into();
        del.run(&node, &thick::shim(), &conf).assert_ok();
    }
    node.assert_pod_clean(&pod1);
    node.assert_pod_clean(&pod2);
}

#[test]
fn the_thin_agent_without_the_api_address_or_with_bad_flags_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bins::product("multus-daemon"))
        .args(["thin", "--cni-conf-dir"])
        .arg(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KUBERNETES_SERVICE_HOST is not set"), "{err}");
    let out = Command::new(bins::product("multus-daemon"))
        .args(["thin", "--cni-conf-dir"])
        .arg(dir.path())
        .args(["--master-cni", "../../etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a path"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
