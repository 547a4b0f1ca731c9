//! Thick mode as real processes: `multus-daemon` in a test node's namespace, `multus-shim` called
//! the way a runtime calls a plugin, Debian's bridge and host-local as the delegates. Covers the
//! shim's behaviour with the daemon down (wait, then code 11; DEL from the cache), SIGKILL during
//! an ADD, SIGTERM's drain, the peer check, and a burst of concurrent pods.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use testkit::{
    confs, leaks,
    podman::Podman,
    thick::{self, Daemon},
    CniCall, Netns, Node,
};

fn bridge(node: &Node, name: &str, br: &str, subnet: &str) -> Value {
    confs::bridge(name, br, subnet, "1.0.0", &node.ipam_dir())
}

fn recorder(node: &Node, extra: Value) -> Value {
    let mut r = json!({"cniVersion": "1.0.0", "name": "slow", "type": "cni-recorder", "recordDir": node.records_dir()});
    if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    r
}

fn node_with_recorder() -> Node {
    let node = Node::new();
    node.install(
        "cni-recorder",
        Path::new(env!("CARGO_BIN_EXE_cni-recorder")),
    );
    node
}

/// The shim's configuration of a pod with a cluster network and a second network chained with
/// Debian's `sbr` (which `ebpfSbr.replaceSbr` in the daemon configuration replaces): bridges
/// `<prefix>c` and `<prefix>b`, subnets `10.<net>.0.0/24` and `10.<net + 1>.0.0/24`.
fn sbr_conf(daemon: &Daemon, node: &Node, prefix: &str, net: u8) -> Value {
    let net1 = json!({"cniVersion": "1.0.0", "name": "net-sbr", "plugins": [
        {"type": "bridge", "bridge": format!("{prefix}b"), "isGateway": true,
         "ipam": {"type": "host-local", "subnet": format!("10.{}.0.0/24", net + 1),
                  "dataDir": node.ipam_dir()}},
        {"type": "sbr"}]});
    daemon.shim_conf(
        "1.0.0",
        vec![
            bridge(
                node,
                "cluster",
                &format!("{prefix}c"),
                &format!("10.{net}.0.0/24"),
            ),
            net1,
        ],
    )
}

fn pod_args(name: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={name}")
}

#[test]
fn add_check_del_through_the_shim_and_the_daemon() {
    let node = Node::new();
    let daemon = Daemon::start(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf(
        "0.3.1",
        vec![confs::bridge(
            "net-a",
            "tkbr0",
            "10.91.0.0/24",
            "0.3.1",
            &node.ipam_dir(),
        )],
    );
    let add =
        CniCall::new(&node, "ADD", "thick-basic", Some(&pod), "eth0").args(&pod_args("basic"));
    let out = add.run(&node, &thick::shim(), &conf);
    let result = out.ok().clone();
    // The daemon sends 1.0.0; the shim answers in the runtime's 0.3.1 (ips carry "version").
    assert_eq!(result["cniVersion"], "0.3.1", "{result}");
    assert_eq!(result["ips"][0]["version"], "4", "{result}");
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.91.0."),
        "{result}"
    );
    assert_eq!(pod.link_names(), vec!["eth0".to_string()]);
    assert_eq!(leaks::cache_files(&node.cache_dir()).len(), 1);
    let check_conf = {
        let mut c = conf.clone();
        c["cniVersion"] = json!("0.4.0");
        c["delegates"][0]["cniVersion"] = json!("0.4.0");
        c
    };
    let mut check = add.clone();
    check.command = "CHECK".into();
    check.run(&node, &thick::shim(), &check_conf).assert_ok();
    let mut del = add.clone();
    del.command = "DEL".into();
    let out = del.run(&node, &thick::shim(), &conf);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "", "DEL prints nothing");
    node.assert_pod_clean(&pod);
    // The calls went through the daemon, not a local fallback.
    let log = daemon.log();
    assert!(log.contains("ADD") && log.contains("DEL"), "{log}");
}

/// CNI_ARGS values that hold `=` (the reference's thick mode refuses them) reach the delegate
/// through the shim and the daemon unchanged, and DEL works with them too.
#[test]
fn cni_args_values_with_equals_signs_pass_through_the_shim() {
    let node = node_with_recorder();
    let daemon = Daemon::start(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf("1.0.0", vec![recorder(&node, json!({"name": "args"}))]);
    let args = format!("{};LABELS=a=b==c", pod_args("eq"));
    let add = CniCall::new(&node, "ADD", "thick-eq", Some(&pod), "eth0").args(&args);
    add.run(&node, &thick::shim(), &conf).ok();
    let record = |command: &str| -> Value {
        let path = node
            .records_dir()
            .join(format!("{command}-thick-eq-eth0.json"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("record")).expect("json")
    };
    assert_eq!(record("ADD")["env"]["CNI_ARGS"], args);
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    assert_eq!(record("DEL")["env"]["CNI_ARGS"], args);
    node.assert_pod_clean(&pod);
}

#[test]
fn errors_come_back_as_cni_errors_in_the_runtimes_version() {
    let node = Node::new();
    let daemon = Daemon::start(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf(
        "0.4.0",
        vec![json!({"cniVersion": "0.4.0", "name": "x", "type": "no-such-plugin"})],
    );
    let out = CniCall::new(&node, "ADD", "thick-err", Some(&pod), "eth0")
        .args(&pod_args("err"))
        .run(&node, &thick::shim(), &conf);
    let code = out.err_code();
    assert_eq!(out.json.as_ref().unwrap()["cniVersion"], "0.4.0");
    assert!(
        out.err_msg().contains("no-such-plugin"),
        "{code}: {}",
        out.stdout
    );
    node.assert_pod_clean(&pod);
}

#[test]
fn add_waits_for_the_daemon_then_fails_with_code_11_naming_the_socket() {
    let node = Node::new();
    let daemon = Daemon::configure(&node, json!({}));
    let pod = Netns::new("pod");
    let mut conf = daemon.shim_conf("1.0.0", vec![bridge(&node, "n", "tkbr1", "10.92.0.0/24")]);
    conf["daemonReadyTimeoutSeconds"] = json!(0.6);
    let started = Instant::now();
    let out = CniCall::new(&node, "ADD", "thick-down", Some(&pod), "eth0")
        .args(&pod_args("down"))
        .run(&node, &thick::shim(), &conf);
    let waited = started.elapsed();
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(
        out.err_msg()
            .contains(&daemon.socket().display().to_string()),
        "{}",
        out.err_msg()
    );
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    node.assert_pod_clean(&pod);
}

#[test]
fn add_waits_for_a_daemon_that_starts_late() {
    let node = Node::new();
    let mut daemon = Daemon::configure(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf("1.0.0", vec![bridge(&node, "n", "tkbr2", "10.93.0.0/24")]);
    let call = CniCall::new(&node, "ADD", "thick-late", Some(&pod), "eth0").args(&pod_args("late"));
    let out = std::thread::scope(|s| {
        let shim = s.spawn(|| call.run(&node, &thick::shim(), &conf));
        std::thread::sleep(Duration::from_millis(800));
        daemon.spawn(&node);
        shim.join().unwrap()
    });
    out.ok();
    assert_eq!(pod.link_names(), vec!["eth0".to_string()]);
    let mut del = call.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&pod);
}

#[test]
fn del_with_the_daemon_down_tears_down_from_the_cache() {
    let node = Node::new();
    let mut daemon = Daemon::start(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![
            bridge(&node, "a", "tkbr3", "10.94.0.0/24"),
            bridge(&node, "b", "tkbr4", "10.95.0.0/24"),
        ],
    );
    let add = CniCall::new(&node, "ADD", "thick-deldown", Some(&pod), "eth0").args(&pod_args("dd"));
    add.run(&node, &thick::shim(), &conf).ok();
    assert_eq!(pod.link_names().len(), 2);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        !thick::exists(&daemon.socket()),
        "the socket goes with the daemon"
    );
    let mut del = add.clone();
    del.command = "DEL".into();
    let out = del.run(&node, &thick::shim(), &conf);
    out.assert_ok();
    assert!(out.stderr.contains("without the daemon"), "{}", out.stderr);
    node.assert_pod_clean(&pod);
    // Repeated DEL: still fine.
    del.run(&node, &thick::shim(), &conf).assert_ok();
}

#[test]
fn del_with_the_daemon_down_reports_what_it_could_not_remove() {
    let node = node_with_recorder();
    let mut daemon = Daemon::start(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![
            bridge(&node, "a", "tkbr5", "10.96.0.0/24"),
            recorder(&node, json!({"failOn": "DEL"})),
        ],
    );
    let add = CniCall::new(&node, "ADD", "thick-delfail", Some(&pod), "eth0").args(&pod_args("df"));
    add.run(&node, &thick::shim(), &conf).ok();
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(5));
    let mut del = add.clone();
    del.command = "DEL".into();
    let out = del.run(&node, &thick::shim(), &conf);
    assert_ne!(out.err_code(), 0);
    assert!(
        out.err_msg().contains("recorder told to fail")
            || out.stdout.contains("recorder told to fail"),
        "{}",
        out.stdout
    );
}

#[test]
fn sigkill_during_add_then_the_runtimes_del_leaves_nothing() {
    let node = node_with_recorder();
    let daemon = Daemon::start(&node, json!({}));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![
            bridge(&node, "a", "tkbr6", "10.97.0.0/24"),
            recorder(&node, json!({"sleepMs": 4000})),
        ],
    );
    let add = CniCall::new(&node, "ADD", "thick-kill", Some(&pod), "eth0").args(&pod_args("kill"));
    let out = std::thread::scope(|s| {
        let shim = s.spawn(|| add.run(&node, &thick::shim(), &conf));
        // Kill once the first delegate is done (its lease exists) and the second runs.
        let started = Instant::now();
        while leaks::host_local_leases(&node.ipam_dir()).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "bridge never ran: {}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        daemon.signal(libc::SIGKILL);
        shim.join().unwrap()
    });
    assert_eq!(out.err_code(), 11, "{}", out.stdout);
    assert!(
        !leaks::cache_files(&node.cache_dir()).is_empty(),
        "the cache was written before the first delegate"
    );
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&pod);
}

/// A shim that connected just before SIGTERM, its call not read yet (not in flight): the daemon
/// must answer it before exiting (a refusal the shim retries on the next daemon), never close it
/// unanswered — the shim could not tell whether its ADD ran. (Found by the upgrade test: an ADD
/// sent as the old daemon got SIGTERM failed with "the connection closed before the answer".)
#[test]
fn sigterm_answers_a_connection_accepted_but_not_yet_read() {
    use std::io::{Read, Write};
    let node = Node::new();
    let mut daemon = Daemon::start(&node, json!({}));
    let mut early = std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap();
    // Accepted by the daemon (a request on another connection is answered after it), nothing
    // sent on it yet.
    assert_eq!(daemon.get("/healthz").0, 200);
    daemon.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let body = json!({"env": {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "late", "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}, "config": ""}).to_string();
    let sent = write!(
        early,
        "POST /cni HTTP/1.1\r\nHost: multus\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    let read = early.read_to_string(&mut answer);
    assert!(
        sent.is_ok() && read.is_ok() && answer.starts_with("HTTP/1.1 503"),
        "an answer (503, not processed), not a closed connection: {sent:?} {read:?} {answer:?}\n{}",
        daemon.log()
    );
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A daemon exiting after SIGTERM while connects keep coming (kubelet's probes, the shims of an
/// upgrade under load): each connect is refused (the shim waits for the next daemon) or gets an
/// answer; none is queued and then closed unanswered as the process exits. (Found by the upgrade
/// test: a connect in the last milliseconds, after the final accept and before exit, was reset.)
#[test]
fn a_daemon_exiting_after_sigterm_refuses_or_answers_every_connection() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    let node = Node::new();
    for round in 0..5 {
        let mut daemon = Daemon::start(&node, json!({}));
        let socket = daemon.socket();
        let exited = AtomicBool::new(false);
        let (answered, refused, failures) = std::thread::scope(|s| {
            let probe = || {
                let (mut answered, mut refused, mut failures) = (0, 0, Vec::new());
                while !exited.load(Ordering::SeqCst) {
                    let mut stream = match std::os::unix::net::UnixStream::connect(&socket) {
                        Ok(stream) => stream,
                        Err(_) => {
                            refused += 1;
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                    };
                    let sent = stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: multus\r\n\r\n");
                    let mut answer = String::new();
                    let read = stream.read_to_string(&mut answer);
                    if sent.is_ok() && read.is_ok() && answer.starts_with("HTTP/1.1 ") {
                        answered += 1;
                    } else {
                        failures.push(format!("{sent:?} {read:?} {answer:?}"));
                    }
                }
                (answered, refused, failures)
            };
            let probers: Vec<_> = (0..3).map(|_| s.spawn(probe)).collect();
            std::thread::sleep(Duration::from_millis(100 + 37 * round));
            daemon.signal(libc::SIGTERM);
            let code = daemon.wait_exit(Duration::from_secs(10));
            exited.store(true, Ordering::SeqCst);
            assert_eq!(code, Some(0), "{}", daemon.log());
            probers.into_iter().fold((0, 0, Vec::new()), |mut all, p| {
                let (a, r, f) = p.join().unwrap();
                all.0 += a;
                all.1 += r;
                all.2.extend(f);
                all
            })
        });
        assert!(
            failures.is_empty(),
            "round {round}: {} connections closed unanswered ({answered} answered, {refused} refused): {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert!(
            answered > 0 && refused > 0,
            "round {round}: {answered} answered, {refused} refused"
        );
    }
}

/// An operator who starts the daemon a second time by hand (the DaemonSet's still runs): the
/// second refuses to start, naming the socket, instead of taking the socket from the first; the
/// first keeps serving and, when it stops, removes its socket. A socket left by a killed daemon
/// is not "in use": the next daemon starts over it.
#[test]
fn a_second_daemon_on_a_served_socket_refuses_to_start_and_the_first_keeps_serving() {
    let node = Node::new();
    let mut first = Daemon::start(&node, json!({}));
    let mut second = node
        .ns
        .command(testkit::bins::product("multus-daemon"))
        .arg("-config")
        .arg(first.config_path())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while second.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let running = second.try_wait().unwrap().is_none();
    if running {
        second.kill().unwrap();
    }
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !running && !out.status.success(),
        "the second daemon must refuse to start: running={running} {:?}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains(&first.socket().display().to_string())
            && stderr.contains("another multus-daemon"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "stdout is the CNI result's, never logs"
    );
    assert_eq!(first.get("/healthz").0, 200, "the first still serves");
    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        !thick::exists(&first.socket()),
        "the first removed its socket"
    );

    // A killed daemon's socket file stays, and nothing answers on it: not "in use".
    first.spawn(&node);
    first.wait_ready(Duration::from_secs(10));
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10));
    assert!(thick::exists(&first.socket()));
    first.spawn(&node);
    first.wait_ready(Duration::from_secs(10));
}

/// An operator's typo in `logLevel` ("verbos"): the daemon serves, logging errors only (the
/// reference's default), and says so at start instead of going silent.
#[test]
fn a_log_level_typo_is_reported_at_start() {
    let node = Node::new();
    let daemon = Daemon::start(&node, json!({"logLevel": "verbos"}));
    assert!(
        daemon
            .log()
            .contains("ERROR \"logLevel\" \"verbos\" is not one of debug, verbose, error, panic"),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.get("/healthz").0, 200);
}

#[test]
fn sigterm_fails_readyz_finishes_the_call_in_flight_and_keeps_the_config() {
    let node = node_with_recorder();
    let mut daemon = Daemon::configure(&node, json!({}));
    // The primary network in the runtime's directory; the daemon generates 00-multus.conf
    // (multusConfigFile "auto") and the calls below use that file as the runtime would.
    let primary = daemon.cni_config_dir().join("10-primary.conflist");
    std::fs::write(
        &primary,
        json!({"cniVersion": "1.0.0", "name": "primary", "plugins": [
            {"type": "bridge", "bridge": "tkbr7", "isGateway": true,
             "ipam": {"type": "host-local", "subnet": "10.98.0.0/24", "dataDir": node.ipam_dir()}},
            {"type": "cni-recorder", "recordDir": node.records_dir(), "sleepMs": 1500,
             "capabilities": {"portMappings": true}}]})
        .to_string(),
    )
    .unwrap();
    daemon.spawn(&node);
    daemon.wait_ready(Duration::from_secs(10));
    // CNI 1.0.0: the list form, its one plugin run by the runtime with the list's name and
    // version (as libcni does).
    let generated = daemon.cni_config_dir().join("00-multus.conflist");
    assert!(thick::exists(&generated), "{}", daemon.log());
    assert!(!thick::exists(
        &daemon.cni_config_dir().join("00-multus.conf")
    ));
    let list: Value = serde_json::from_slice(&std::fs::read(&generated).unwrap()).unwrap();
    assert_eq!(list["cniVersion"], "1.0.0", "{list}");
    let mut conf = list["plugins"][0].clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    assert_eq!(conf["type"], "multus-shim", "{conf}");
    assert_eq!(conf["clusterNetwork"], json!(primary), "{conf}");
    assert_eq!(
        conf["daemonSocketDir"],
        json!(daemon.socket_dir()),
        "{conf}"
    );
    assert_eq!(
        conf["capabilities"],
        json!({"portMappings": true}),
        "{conf}"
    );
    let pod = Netns::new("pod");
    let add = CniCall::new(&node, "ADD", "thick-term", Some(&pod), "eth0").args(&pod_args("term"));
    let pod2 = Netns::new("pod");
    let mut late_conf = conf.clone();
    late_conf["daemonReadyTimeoutSeconds"] = json!(0.5);
    let late =
        CniCall::new(&node, "ADD", "thick-term2", Some(&pod2), "eth0").args(&pod_args("term2"));
    let (first, second, ready_during) = std::thread::scope(|s| {
        let shim = s.spawn(|| add.run(&node, &thick::shim(), &conf));
        let started = Instant::now();
        while leaks::host_local_leases(&node.ipam_dir()).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon.signal(libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(100));
        let ready_during = daemon.get("/readyz").0;
        let second = late.run(&node, &thick::shim(), &late_conf);
        (shim.join().unwrap(), second, ready_during)
    });
    assert_eq!(ready_during, 503, "/readyz fails from SIGTERM on");
    first.ok();
    assert_eq!(
        second.err_code(),
        11,
        "a new ADD waits, then tries again later: {}",
        second.stdout
    );
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        daemon.log()
    );
    assert!(thick::exists(&generated), "00-multus.conf stays in place");
    assert_eq!(pod2.link_names(), Vec::<String>::new());
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&pod);
}

#[test]
fn a_peer_that_is_not_root_is_refused() {
    let node = Node::new();
    let daemon = Daemon::start(&node, json!({}));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&daemon.socket_dir()), 0o700);
    assert_eq!(mode(&daemon.socket()), 0o600);
    // Loosen the file modes so that only the daemon's own check stands between nobody and it.
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(daemon.socket_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(daemon.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let curl = |cmd: &mut std::process::Command| {
        let out = cmd
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
            ])
            .arg(daemon.socket())
            .arg("http://dummy/healthz")
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        curl(&mut std::process::Command::new("curl")),
        "200",
        "root is served"
    );
    assert_eq!(
        curl(&mut thick::as_nobody("curl")),
        "403",
        "uid 65534 is refused"
    );
}

#[test]
fn sixty_four_pods_added_and_deleted_concurrently_through_the_shim() {
    let node = Node::new();
    let daemon = Daemon::start(&node, json!({"logLevel": "error"}));
    let conf = daemon.shim_conf(
        "1.0.0",
        vec![confs::bridge(
            "burst",
            "tkbr8",
            "10.99.0.0/24",
            "1.0.0",
            &node.ipam_dir(),
        )],
    );
    let pods: Vec<Netns> = (0..64).map(|_| Netns::new("pod")).collect();
    let calls: Vec<CniCall> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            CniCall::new(&node, "ADD", &format!("thick-burst-{i}"), Some(p), "eth0")
                .args(&pod_args(&format!("burst{i}")))
        })
        .collect();
    let run_all = |command: &str| {
        std::thread::scope(|s| {
            let handles: Vec<_> = calls
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c.command = command.to_string();
                    let conf = &conf;
                    let node = &node;
                    s.spawn(move || c.run(node, &thick::shim(), conf))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    for out in run_all("ADD") {
        out.ok();
    }
    assert_eq!(leaks::host_local_leases(&node.ipam_dir()).len(), 64);
    for out in run_all("DEL") {
        out.assert_ok();
    }
    for p in &pods {
        node.assert_pod_clean(p);
    }
    assert!(daemon.log().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn podman_runs_containers_through_the_shim_and_the_daemon() {
    let node = Node::new();
    node.install("multus-shim", &thick::shim());
    let podman = Podman::new(&node);
    let daemon = Daemon::configure(&node, json!({}));
    let mut plugin = daemon.shim_conf(
        "1.0.0",
        vec![
            bridge(&node, "net-a", "tkpa", "10.88.10.0/24"),
            confs::bridge_tuning_list("net-b", "tkpb", "10.88.11.0/24", "1.0.0", &node.ipam_dir()),
        ],
    );
    plugin.as_object_mut().unwrap().remove("cniVersion");
    plugin.as_object_mut().unwrap().remove("name");
    podman.network(
        "thicknet",
        &json!({"cniVersion": "1.0.0", "name": "thicknet", "plugins": [plugin]}),
    );
    // The daemon runs in podman's mount namespace, as on a node where the daemon and the runtime
    // see the same /run/netns.
    let out = podman.script(&format!(
        "{daemon} &\nDPID=$!\n\
         podman run --rm --network thicknet localhost/bb ip -o addr\n\
         echo '--- detached'\npodman run -d --name keep --network thicknet localhost/bb sleep 60 >/dev/null\n\
         podman exec keep ip -o -4 addr\necho \"--- cache $(ls {cache})\"\n\
         podman rm -f -t 0 keep >/dev/null\necho \"--- after $(ls {cache})\"\n\
         kill -TERM $DPID\nwait $DPID\necho \"--- daemon exit $?\"",
        daemon = daemon.command_line(),
        cache = node.cache_dir().display()
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman failed:\n{stdout}\n{}\ndaemon:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    let run = stdout.split("--- detached").next().unwrap();
    assert!(
        run.contains("eth0") && run.contains("inet 10.88.10."),
        "{run}"
    );
    assert!(
        run.contains("net1") && run.contains("inet 10.88.11."),
        "{run}"
    );
    let detached = stdout.split("--- detached").nth(1).unwrap();
    assert!(detached.contains("inet 10.88.11."), "{detached}");
    let cached = stdout
        .split("--- cache")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim();
    assert_eq!(
        cached.len(),
        64,
        "one cache entry while the container runs: {cached:?}"
    );
    let after = stdout
        .split("--- after")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim();
    assert_eq!(after, "", "podman's DEL through the shim emptied the cache");
    assert!(stdout.contains("--- daemon exit 0"), "{stdout}");
    assert!(
        daemon.log().contains("ADD"),
        "the calls went through the daemon"
    );
    assert_eq!(
        leaks::host_local_leases(&node.ipam_dir()),
        Vec::<String>::new()
    );
    let veths: Vec<String> = node
        .ns
        .link_names()
        .into_iter()
        .filter(|n| n.starts_with("veth"))
        .collect();
    assert_eq!(veths, Vec::<String>::new(), "no host-side veth left");
}

#[test]
fn delegates_run_chrooted_into_chroot_dir() {
    let node = Node::new();
    let hostroot = tempfile::Builder::new()
        .prefix("multus-hostroot-")
        .tempdir()
        .unwrap();
    let mut daemon = Daemon::configure(&node, json!({"chrootDir": hostroot.path()}));
    // The daemon's own view lacks the plugins (as a container image does); the host's root is
    // mounted at chrootDir, as the reference's DaemonSet mounts / at /hostroot; new host mounts
    // (the pod's netns) reach the daemon through slave propagation, as with HostToContainer.
    let script = format!(
        "mount --rbind / {root}\nmount -t tmpfs tmpfs {plugins}\nexec {daemon}",
        root = hostroot.path().display(),
        plugins = testkit::bins::REFERENCE_PLUGINS,
        daemon = daemon.command_line()
    );
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net={}", node.ns.path().display()))
        .args([
            "unshare",
            "-m",
            "--propagation",
            "slave",
            "sh",
            "-c",
            &script,
        ]);
    daemon.spawn_command(cmd);
    daemon.wait_ready(Duration::from_secs(10));
    let pod = Netns::new("pod");
    let conf = daemon.shim_conf("1.0.0", vec![bridge(&node, "n", "tkbr9", "10.87.0.0/24")]);
    let add =
        CniCall::new(&node, "ADD", "thick-chroot", Some(&pod), "eth0").args(&pod_args("chroot"));
    add.run(&node, &thick::shim(), &conf).ok();
    assert_eq!(pod.link_names(), vec!["eth0".to_string()]);
    assert_eq!(
        leaks::host_local_leases(&node.ipam_dir()).len(),
        1,
        "IPAM state is the host's"
    );
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&pod);
    assert!(
        daemon.log().contains("delegates run chrooted"),
        "{}",
        daemon.log()
    );
}

#[test]
fn sbr_steps_run_in_the_daemon_without_a_plugin_process() {
    let node = Node::new();
    let bpffs = testkit::bpffs::Bpffs::new();
    let mut daemon = Daemon::start(
        &node,
        json!({"metricsPort": 9109, "ebpfSbr": {"replaceSbr": true, "bpffsDir": bpffs.path()}}),
    );
    // The programs are loaded when the daemon starts, before any pod, and held.
    let held = |entries: &[String]| {
        entries
            .iter()
            .any(|e| e.starts_with("_sbr-") && !e.contains('/'))
    };
    assert!(
        held(&bpffs.entries()),
        "programs held at start: {:?}",
        bpffs.entries()
    );
    assert!(
        daemon.log().contains("ebpf-sbr programs held"),
        "{}",
        daemon.log()
    );
    let pod = Netns::new("pod");
    // Neither ebpf-sbr nor sbr is on this node's path for the daemon to run as a process:
    // CNI_PATH is the node's empty bin dir and Debian's plugins, whose `sbr` the plan replaces.
    let conf = sbr_conf(&daemon, &node, "tks", 84);
    // ebpfSbr comes from the daemon configuration, node-wide (the overlay replaces the key whole).
    let add = CniCall::new(&node, "ADD", "thick-sbr", Some(&pod), "eth0").args(&pod_args("sbr"));
    add.run(&node, &thick::shim(), &conf).ok();
    assert!(
        bpffs.entries().iter().any(|e| e == "thick-sbr"),
        "the pod's SBR pins: {:?}",
        bpffs.entries()
    );
    assert!(
        pod.rules().iter().all(|r| !r.contains("lookup 100")),
        "Debian's sbr did not run: {:?}",
        pod.rules()
    );
    assert!(
        daemon.log().contains("delegate returned (in-process)"),
        "{}",
        daemon.log()
    );
    let mut check = add.clone();
    check.command = "CHECK".into();
    check.run(&node, &thick::shim(), &conf).assert_ok();
    // /metrics (in the node's namespace, where the daemon listens): the SBR counters of the pod
    // read from the maps, and the delegate latencies by plugin type.
    let scrape = node
        .ns
        .command("curl")
        .args(["-s", "http://127.0.0.1:9109/metrics"])
        .output()
        .expect("curl");
    let metrics = String::from_utf8_lossy(&scrape.stdout).to_string();
    for series in [
        "multus_daemon_sbr_packets_total{container=\"thick-sbr\",pod=\"default/sbr\",interface=\"net1\",counter=\"seen\"}",
        "multus_daemon_delegate_duration_seconds_count{plugin=\"ebpf-sbr\",command=\"ADD\"} 1",
        "multus_daemon_delegate_duration_seconds_count{plugin=\"bridge\",command=\"ADD\"} 2",
        "multus_daemon_requests_total{command=\"ADD\",code=\"0\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&pod);
    // The pod's pins are gone; the programs stay held while the daemon runs, with no pod.
    assert!(
        bpffs.entries().iter().all(|e| e.starts_with("_sbr-")),
        "only the held programs are left: {:?}",
        bpffs.entries()
    );
    assert!(held(&bpffs.entries()), "{:?}", bpffs.entries());
    // The daemon releases them when it stops.
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(bpffs.entries(), Vec::<String>::new(), "no pin left");
}

#[test]
fn calls_beyond_the_slots_and_the_queue_are_refused_with_code_11() {
    let node = node_with_recorder();
    let daemon = Daemon::start(
        &node,
        json!({"maxConcurrentCalls": 1, "requestQueueLimit": 1}),
    );
    let conf = daemon.shim_conf("1.0.0", vec![recorder(&node, json!({"sleepMs": 1500}))]);
    let pods: Vec<Netns> = (0..3).map(|_| Netns::new("pod")).collect();
    let calls: Vec<CniCall> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            CniCall::new(&node, "ADD", &format!("thick-q{i}"), Some(p), "eth0")
                .args(&pod_args(&format!("q{i}")))
        })
        .collect();
    // One runs, one waits for its slot, the third finds the queue full.
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|c| {
                let h = s.spawn(|| c.run(&node, &thick::shim(), &conf));
                std::thread::sleep(Duration::from_millis(300));
                h
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        outs[0].status.success() && outs[1].status.success(),
        "{outs:?}"
    );
    assert_eq!(outs[2].err_code(), 11, "{}", outs[2].stdout);
    assert!(
        outs[2].err_msg().contains("requestQueueLimit"),
        "{}",
        outs[2].err_msg()
    );
    assert!(
        outs[2].elapsed < Duration::from_secs(1),
        "refused at once: {:?}",
        outs[2].elapsed
    );
    for c in &calls {
        let mut del = c.clone();
        del.command = "DEL".into();
        del.run(&node, &thick::shim(), &conf).assert_ok();
    }
    assert_eq!(leaks::cache_files(&node.cache_dir()), Vec::<String>::new());
}

/// The daemon in a container runs in a mount namespace of its own; here one as `ip netns exec`
/// makes it (`/` rslave, a fresh sysfs on `/sys`, so no bpffs on `/sys/fs/bpf`). What its
/// in-process `ebpf-sbr` step makes that outlives a call (pins, the carrier's anchor namespace)
/// lives in the node's mount namespace, so it survives the daemon: killed (SIGKILL) and started
/// again in another private namespace, the daemon's CHECK finds the pod intact and its DEL leaves
/// nothing.
#[test]
fn sbr_state_made_by_a_daemon_in_a_private_mount_namespace_outlives_its_restart() {
    let node = Node::new();
    let bpffs = testkit::bpffs::Bpffs::new();
    let mut daemon = Daemon::configure(
        &node,
        json!({"ebpfSbr": {"replaceSbr": true, "bpffsDir": bpffs.path()}}),
    );
    let in_private_mount_ns = |daemon: &Daemon| {
        let mut cmd = node.ns.command("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "slave",
            "sh",
            "-c",
            &format!(
                "umount -l /sys && mount -t sysfs sysfs /sys && exec {}",
                daemon.command_line()
            ),
        ]);
        cmd
    };
    daemon.spawn_command(in_private_mount_ns(&daemon));
    daemon.wait_ready(Duration::from_secs(10));
    let pod = Netns::new("pod");
    let conf = sbr_conf(&daemon, &node, "tkm", 86);
    let add = CniCall::new(&node, "ADD", "thick-mnt", Some(&pod), "eth0").args(&pod_args("mnt"));
    add.run(&node, &thick::shim(), &conf).ok();
    let has_carrier = |pod: &Netns| pod.link_names().iter().any(|l| l == "sbr-carrier");
    assert!(
        has_carrier(&pod),
        "carrier after ADD: {:?}",
        pod.link_names()
    );

    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(Duration::from_secs(5));
    assert!(!daemon.running(), "the daemon is gone");
    // Its mount namespace went with it; the dataplane did not.
    assert!(
        has_carrier(&pod),
        "carrier after the daemon exited: {:?}",
        pod.link_names()
    );
    assert!(
        bpffs.entries().iter().any(|e| e == "thick-mnt"),
        "pins after the daemon exited: {:?}",
        bpffs.entries()
    );

    daemon.spawn_command(in_private_mount_ns(&daemon));
    daemon.wait_ready(Duration::from_secs(10));
    let mut check = add.clone();
    check.command = "CHECK".into();
    check.run(&node, &thick::shim(), &conf).assert_ok();
    let mut del = add.clone();
    del.command = "DEL".into();
    del.run(&node, &thick::shim(), &conf).assert_ok();
    node.assert_pod_clean(&pod);
    // The pod's pins are gone; the programs stay held while the daemon runs, with no pod.
    assert!(
        bpffs.entries().iter().all(|e| e.starts_with("_sbr-")),
        "only the held programs are left: {:?}",
        bpffs.entries()
    );
    assert!(
        bpffs
            .entries()
            .iter()
            .any(|e| e.starts_with("_sbr-") && !e.contains('/')),
        "{:?}",
        bpffs.entries()
    );
    // The daemon releases them when it stops.
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(bpffs.entries(), Vec::<String>::new(), "no pin left");
}
