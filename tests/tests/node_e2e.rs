//! The product deployed as a cluster deploys it, with podman as the node: `podman kube play` runs
//! the thick DaemonSet's pod template from deploy/daemonset.yaml (with deploy/daemon-config.yaml as
//! its ConfigMap) from the image `cargo xtask image` builds; the init container installs the
//! binaries, the daemon generates 00-multus.conflist from the node's primary network and becomes
//! ready, and podman, as the node's runtime, runs containers through the installed shim and the
//! daemon. Then an upgrade: a second image replaces the first while a loop of ADD/DEL runs.
//!
//! Isolation without rewriting the manifest's host paths: everything runs in the test node's
//! network namespace (hostNetwork is the node's) and in one private mount namespace
//! ([`PodmanNode`]) where /etc/cni, /run, /var/lib and /sys/fs/bpf are fresh tmpfs (a private
//! bpffs) and /opt an empty directory of the test's, so the manifest's hostPaths (`/` for /hostroot included) resolve to private, empty
//! directories and the host's own CNI directories are never touched. `/` is made shared in that
//! namespace (new peer groups, which never reach the host) and /run/netns a shared bind mount,
//! so the network namespaces podman creates later reach the daemon's container
//! (HostToContainer).
//!
//! What podman 4.3's kube play does with the manifest (checked here): it ignores hostPID (the
//! node's podman gives containers the host's pid namespace by default instead, see
//! tests/src/podman.rs: delegates chrooted into /hostroot read /proc there); the init container
//! annotation `io.podman.annotations.init.container.type: always` is needed (with the default
//! "once" podman fails removing the finished init container); the Downward API's `spec.nodeName`
//! is refused, so the test writes the node's name as a plain value; serviceAccountName,
//! priorityClassName and tolerations are not acted on; podman 4.3 gives init containers the pod's
//! restart policy (podman issues #15631, #16343, fixed in 4.6 by PR #18481), so with a
//! DaemonSet's `Always` it restarts the finished init container for ~20 s before the daemon
//! starts: the test's Pod sets `restartPolicy: OnFailure` (a kubelet runs an init container
//! once); the liveness probe becomes a podman
//! healthcheck that needs systemd timers (absent here: logged, not run), so the test runs the
//! probes' commands itself. Nothing else in the template is changed. kube play
//! writes its default network (podman-default-kube-network.conflist) into the node's CNI
//! configuration directory even for a hostNetwork pod; it sorts after the primary here.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use testkit::{bins, image, podman::Podman, Node};

/// The pod's name; its containers are `<pod>-<container>`.
const POD: &str = "multus-e2e";
/// The node's name (`spec.nodeName`).
const NODE_NAME: &str = "e2e-node";
/// The daemon container's name in the manifest.
const DAEMON_CONTAINER: &str = "kube-multus";
/// The primary network the test writes into the node's /etc/cni/net.d.
const PRIMARY: &str = "e2e-primary";
const PRIMARY_SUBNET_PREFIX: &str = "10.89.7.";
/// What the daemon generates (deploy/daemon-config.yaml sets cniVersion 0.3.1, as the
/// reference's does: a single-plugin .conf), and the network's name in it.
const GENERATED: &str = "/etc/cni/net.d/00-multus.conf";
/// podman's own network configuration directory on the node (see [`present_to_podman`]).
const PODMAN_NETWORKS: &str = "/etc/cni/podman.d";
const GENERATED_NETWORK: &str = "multus-cni-network";
/// What the thick installer puts into the node's /opt/cni/bin.
const INSTALLED: [&str; 4] = ["ebpf-sbr", "multus", "multus-shim", "multusctl"];

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn deploy_file(name: &str) -> PathBuf {
    bins::workspace_root().join("deploy").join(name)
}

/// The thick DaemonSet's pod template wrapped as a Pod for `podman kube play`, its containers'
/// image replaced by `image` (the manifest's must be the one the build produces).
fn daemon_pod(image: &str) -> Value {
    let daemonset: Value =
        serde_norway::from_str(&std::fs::read_to_string(deploy_file("daemonset.yaml")).unwrap())
            .expect("deploy/daemonset.yaml parses");
    let template = &daemonset["spec"]["template"];
    let mut spec = template["spec"].clone();
    // podman 4.3 restarts a finished init container under `Always` (module documentation).
    spec["restartPolicy"] = json!("OnFailure");
    for list in ["initContainers", "containers"] {
        for container in spec[list].as_array_mut().expect(list) {
            assert_eq!(
                container["image"],
                json!(image::reference()),
                "the manifest runs the image the build produces"
            );
            container["image"] = json!(image);
            // podman 4.3 refuses the Downward API's spec.nodeName ("fieldPath spec.nodeName is
            // either not valid or not supported"): the value the kubelet would put there.
            for var in container["env"].as_array_mut().into_iter().flatten() {
                if var["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName" {
                    *var = json!({"name": var["name"], "value": NODE_NAME});
                }
            }
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD,
            "labels": template["metadata"]["labels"],
            // podman 4.3: with the default ("once") kube play fails removing the finished init
            // container.
            "annotations": {"io.podman.annotations.init.container.type": "always"},
        },
        "spec": spec,
    })
}

/// The node's primary network: Debian's bridge and host-local (installed into /opt/cni/bin).
fn primary_conflist() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": PRIMARY,
        "plugins": [{
            "type": "bridge",
            "bridge": "e2ebr0",
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("{PRIMARY_SUBNET_PREFIX}0/24")}]],
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        }]
    })
}

/// The generated configuration as podman, the node's runtime here, is given it: podman 4.3
/// reads only `.conflist` files, so the `.conf` becomes the single plugin of a list of the same
/// name and version, in podman's own directory (a file in /etc/cni/net.d that sorts first would
/// become the daemon's primary). Kubernetes runtimes read the `.conf` as it is.
fn present_to_podman(pn: &PodmanNode) -> Value {
    let generated: Value =
        serde_json::from_slice(&std::fs::read(pn.root(GENERATED)).expect("00-multus.conf"))
            .unwrap();
    let mut plugin = generated.clone();
    plugin.as_object_mut().unwrap().remove("name");
    plugin.as_object_mut().unwrap().remove("cniVersion");
    std::fs::write(
        pn.root(PODMAN_NETWORKS).join("multus.conflist"),
        serde_json::to_vec(&json!({
            "cniVersion": generated["cniVersion"],
            "name": generated["name"],
            "plugins": [plugin],
        }))
        .unwrap(),
    )
    .unwrap();
    generated
}

/// A test node whose runtime is podman, in a private mount namespace held by a sleeping process
/// (see the module documentation); `sh` runs scripts in it.
struct PodmanNode {
    podman: Podman,
    holder: Child,
    work: tempfile::TempDir,
    // Last: the node's namespace outlives what runs in it.
    _node: Node,
}

impl PodmanNode {
    /// Prepares the private node root, its podman (CNI backend, the node's /etc/cni/net.d and
    /// /opt/cni/bin) and the image `cargo xtask image` builds.
    fn new() -> PodmanNode {
        let node = Node::new();
        let podman = Podman::with_cni_dirs(
            &node,
            Some(Path::new(PODMAN_NETWORKS)),
            &[Path::new("/opt/cni/bin")],
        );
        let built = image::build(&podman.conf_env());
        let work = tempfile::Builder::new()
            .prefix("multus-e2e-")
            .tempdir()
            .unwrap();
        // The node's /opt on disk, as a node's is: the installer's writes are page cache its
        // container's memory cgroup can reclaim (on a tmpfs they would be charged for good).
        let opt = work.path().join("opt");
        std::fs::create_dir(&opt).unwrap();
        let setup = format!(
            "set -e\n\
             for d in /etc/cni /run /var/lib; do mount -t tmpfs -o mode=755 tmpfs $d; done\n\
             mount --bind {opt} /opt\n\
             mount -t bpf bpf /sys/fs/bpf\n\
             mkdir -p /etc/cni/net.d {podman_networks} /opt/cni/bin /run/netns /var/lib/cni\n\
             mount --bind /run/netns /run/netns\n\
             cp {plugins}/bridge {plugins}/host-local {plugins}/loopback /opt/cni/bin/\n\
             mount --make-rshared /\n\
             echo ready\n\
             exec sleep infinity",
            plugins = bins::REFERENCE_PLUGINS,
            opt = opt.display(),
            podman_networks = PODMAN_NETWORKS,
        );
        let mut holder = Command::new("nsenter")
            .arg(format!("--net={}", node.ns.path().display()))
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &setup,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the node's mount namespace");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the private node root could not be set up"
        );
        let pn = PodmanNode {
            podman,
            holder,
            work,
            _node: node,
        };
        // The archive too: image::build runs xtask once per test process, into the first
        // test's storage.
        pn.ok(&format!(
            "podman load --quiet -i {}",
            built.archive.display()
        ));
        std::fs::write(
            pn.root("/etc/cni/net.d")
                .join(format!("10-{PRIMARY}.conflist")),
            serde_json::to_vec_pretty(&primary_conflist()).unwrap(),
        )
        .unwrap();
        std::fs::copy(deploy_file("daemon-config.yaml"), pn.configmap()).unwrap();
        pn
    }

    /// `path` of the node, as the test reads it from outside the node's mount namespace.
    fn root(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.holder.id()))
    }

    fn configmap(&self) -> PathBuf {
        self.work.path().join("daemon-config.yaml")
    }

    /// Writes the pod of `image` as `<name>.yaml`; returns its path.
    fn pod_file(&self, name: &str, image: &str) -> PathBuf {
        let path = self.work.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&daemon_pod(image)).unwrap(),
        )
        .unwrap();
        path
    }

    /// Runs `script` (sh, `set -e`) on the node with podman configured.
    fn sh(&self, script: &str) -> Output {
        let env: String = self
            .podman
            .node_conf_env()
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", v.display()))
            .collect();
        Command::new("nsenter")
            .args(["-t", &self.holder.id().to_string(), "-m", "-n"])
            .args(["sh", "-c", &format!("set -e\n{env}{script}")])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// [`PodmanNode::sh`], asserted to succeed; returns its stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "{script}\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Plays the pod file, then waits until the daemon is ready as the node's shim sees it (the
    /// installed multusctl asking the node's socket), at most `timeout`. Returns kube play's
    /// output.
    fn play(&self, pod_file: &Path, timeout: Duration) -> String {
        let out = self.sh(&format!(
            "podman kube play --configmap {} {}",
            self.configmap().display(),
            pod_file.display()
        ));
        assert!(out.status.success(), "kube play:\n{}", text(&out));
        self.wait_ready(timeout);
        text(&out)
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.sh("/opt/cni/bin/multusctl daemon --socket-dir /run/multus/");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon is not ready after {timeout:?}:\n{}\ndaemon log:\n{}",
                text(&out),
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn daemon_log(&self) -> String {
        text(&self.sh(&format!(
            "podman logs {POD}-{DAEMON_CONTAINER} 2>&1 | tail -n 60"
        )))
    }

    /// The files of the node's `dir`, sorted.
    fn entries(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root(dir))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for PodmanNode {
    fn drop(&mut self) {
        let _ = self.sh(
            "podman pod rm -a -f -t 0 >/dev/null 2>&1; podman rm -a -f -t 0 >/dev/null 2>&1; true",
        );
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn podman_as_the_node_runs_the_daemonset_and_containers_through_it() {
    let started = Instant::now();
    let pn = PodmanNode::new();
    let pod_file = pn.pod_file("pod", &image::reference());
    let played = pn.play(&pod_file, Duration::from_secs(60));
    eprintln!("kube play said:\n{played}");

    // The init container (and the daemon at start) installed the node's binaries, the image's.
    assert_eq!(
        pn.entries("/opt/cni/bin")
            .iter()
            .filter(|e| INSTALLED.contains(&e.as_str()))
            .count(),
        4
    );
    let built = image::build(&pn.podman.conf_env());
    for name in INSTALLED {
        let source = if name == "multus-shim" {
            "multus-shim"
        } else {
            "multus-node"
        };
        assert!(
            std::fs::read(pn.root("/opt/cni/bin").join(name)).unwrap()
                == std::fs::read(built.binaries_dir.join(source)).unwrap(),
            "{name} is the image's"
        );
    }
    // The probes' own commands, run where the kubelet would run them.
    for probe in ["readinessProbe", "livenessProbe"] {
        let pod = daemon_pod(&image::reference());
        let command: Vec<String> =
            serde_json::from_value(pod["spec"]["containers"][0][probe]["exec"]["command"].clone())
                .unwrap();
        pn.ok(&format!(
            "podman exec {POD}-{DAEMON_CONTAINER} {}",
            command.join(" ")
        ));
    }

    // The generated configuration: the primary as the delegate, the node's paths.
    let generated = present_to_podman(&pn);
    assert_eq!(generated["name"], GENERATED_NETWORK, "{generated:#}");
    assert_eq!(generated["cniVersion"], "0.3.1", "{generated:#}");
    let shim = &generated;
    assert_eq!(shim["type"], "multus-shim", "{generated:#}");
    // The node's socket directory (absent: the default, /run/multus), not the container's.
    assert_eq!(
        shim["daemonSocketDir"]
            .as_str()
            .unwrap_or("/run/multus")
            .trim_end_matches('/'),
        "/run/multus",
        "{generated:#}"
    );
    assert_eq!(shim["cniDir"], "/var/lib/cni/multus", "{generated:#}");

    // podman, the node's runtime, runs a container through the installed shim and the daemon.
    let out = pn.ok(&format!(
        "podman run --rm --network {GENERATED_NETWORK} localhost/bb ip -o -4 addr"
    ));
    assert!(
        out.contains(&format!("inet {PRIMARY_SUBNET_PREFIX}")),
        "an address of the primary's subnet: {out}\ndaemon:\n{}",
        pn.daemon_log()
    );
    let log = pn.daemon_log();
    assert!(
        log.contains("ADD"),
        "the call went through the daemon:\n{log}"
    );
    // Removing it left nothing.
    assert_eq!(
        testkit::leaks::host_local_leases(&pn.root("/var/lib/cni/networks")),
        Vec::<String>::new()
    );
    assert_eq!(
        testkit::leaks::cache_files(&pn.root("/var/lib/cni/multus")),
        Vec::<String>::new()
    );
    assert_eq!(pn.entries("/run/netns"), Vec::<String>::new());

    // kube down stops the daemon (SIGTERM); the generated configuration stays.
    pn.ok(&format!("podman kube down {}", pod_file.display()));
    assert_eq!(
        pn.ok("podman ps -a --format '{{.Names}}'").trim(),
        "",
        "the pod is gone"
    );
    assert!(
        pn.root(GENERATED).is_file(),
        "SIGTERM keeps 00-multus.conflist"
    );
    let out = pn.sh("/opt/cni/bin/multusctl daemon --socket-dir /run/multus/");
    assert!(!out.status.success(), "no daemon answers: {}", text(&out));
    eprintln!("took {:?}", started.elapsed());
}

/// A copy of `from` with bytes appended (an ELF binary runs the same with trailing bytes): the
/// upgrade image's binaries, different files with the same code.
fn padded(from: &Path, to: &Path) {
    let mut bytes = std::fs::read(from).unwrap();
    bytes.extend_from_slice(b"\nmultus-e2e-upgrade\n");
    std::fs::write(to, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One line of the call loop's log: `ADD|DEL <n> <start> <end> ok|fail <code>`.
struct Call {
    line: String,
    start: f64,
    ok: bool,
}

fn calls(log: &str) -> Vec<Call> {
    log.lines()
        .filter(|l| l.starts_with("ADD ") || l.starts_with("DEL "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Call {
                line: l.to_string(),
                start: f[2].parse().unwrap(),
                ok: f[4] == "ok",
            }
        })
        .collect()
}

#[test]
fn upgrade_under_load_fails_no_call_and_executes_no_partial_binary() {
    let started = Instant::now();
    let pn = PodmanNode::new();
    let pod_a = pn.pod_file("pod-a", &image::reference());
    pn.play(&pod_a, Duration::from_secs(60));

    // The second image: `cargo xtask image --tag` (another version label) over the same
    // binaries, plus a layer with the node's binaries padded, so that the upgrade installs files
    // that differ (a real version bump changes them; rebuilding with another compiled-in version
    // would cost a second full LTO build).
    let tag = format!("{}-e2e-upgrade", image::version());
    let reference_b = format!("{}:{tag}", image::REPOSITORY);
    let out = Command::new(env!("CARGO"))
        .current_dir(bins::workspace_root())
        .args(["xtask", "image", "--tag", &tag])
        .envs(pn.podman.conf_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo xtask image --tag:\n{}",
        text(&out)
    );
    let built = image::build(&pn.podman.conf_env());
    let context = pn.work.path().join("context-b");
    std::fs::create_dir(&context).unwrap();
    for name in INSTALLED {
        let source = if name == "multus-shim" {
            "multus-shim"
        } else {
            "multus-node"
        };
        padded(&built.binaries_dir.join(source), &context.join(name));
    }
    std::fs::write(
        context.join("Containerfile"),
        format!(
            "FROM {reference_b}\nCOPY {} /usr/bin/\n",
            INSTALLED.join(" ")
        ),
    )
    .unwrap();
    pn.ok(&format!(
        "podman build --pull=never --quiet --tag {reference_b} {}",
        context.display()
    ));
    let label = pn.ok(&format!(
        "podman image inspect --format '{{{{index .Labels \"org.opencontainers.image.version\"}}}}' {reference_b}"
    ));
    assert_eq!(label.trim(), tag);
    let pod_b = pn.pod_file("pod-b", &reference_b);
    let inodes_a: Vec<u64> = INSTALLED
        .iter()
        .map(|n| {
            std::fs::metadata(pn.root("/opt/cni/bin").join(n))
                .unwrap()
                .ino()
        })
        .collect();

    // The shim's network configuration: the generated one, as a runtime passes it.
    let shim_conf: Value =
        serde_json::from_slice(&std::fs::read(pn.root(GENERATED)).unwrap()).unwrap();
    let conf = pn.work.path().join("shim.json");
    std::fs::write(&conf, serde_json::to_vec(&shim_conf).unwrap()).unwrap();

    // The loop: ADD then DEL of a fresh namespace, each call's exit and times logged; during it,
    // the pod is replaced by one of image B as the kubelet does it: SIGTERM to the container's
    // main process (the daemon), up to terminationGracePeriodSeconds for it to drain and exit,
    // then the new pod. Not podman's own stop: `kube play --replace` stops the old pod with a
    // timeout of 0 (podman 4.3: SIGKILL at once), and `podman pod stop` signals every process of
    // a container without its own PID namespace (hostPID), so the delegates the draining daemon
    // was running got SIGTERM too and their call failed; containerd and CRI-O signal the main
    // process, and only SIGKILL the rest after the grace period.
    let w = pn.work.path().display().to_string();
    let script = format!(
        "call() {{\n\
           t0=$(date +%s.%N)\n\
           if CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin /opt/cni/bin/multus-shim <{w}/shim.json >{w}/out 2>{w}/err; then r=ok; else r=\"fail $?\"; fi\n\
           echo \"$1 $2 $t0 $(date +%s.%N) $r\"\n\
           if [ \"$r\" != ok ]; then cat {w}/out {w}/err; fi\n\
         }}\n\
         loop() {{\n\
           i=0\n\
           while [ ! -e {w}/stop ]; do\n\
             i=$((i+1)); ip netns add up$i\n\
             call ADD up$i; call DEL up$i\n\
             ip netns del up$i\n\
           done\n\
         }}\n\
         watch() {{\n\
           prev=\n\
           while [ ! -e {w}/stop ]; do\n\
             if /opt/cni/bin/multusctl daemon --socket-dir /run/multus/ >/dev/null 2>&1; then s=ready; else s=unready; fi\n\
             if [ \"$s\" != \"$prev\" ]; then echo \"daemon $s $(date +%s.%N)\"; prev=$s; fi\n\
             sleep 0.05\n\
           done\n\
         }}\n\
         loop >{w}/calls.log 2>&1 &\n\
         LOOP=$!\n\
         watch >{w}/watch.log 2>&1 &\n\
         WATCH=$!\n\
         sleep 2\n\
         echo \"replace $(date +%s.%N)\"\n\
         podman kill --signal TERM {POD}-{DAEMON_CONTAINER} >{w}/play.log 2>&1\n\
         timeout 70 podman wait {POD}-{DAEMON_CONTAINER} >>{w}/play.log 2>&1\n\
         podman logs {POD}-{DAEMON_CONTAINER} >{w}/old-daemon.log 2>&1\n\
         podman inspect --format 'exit code {{{{.State.ExitCode}}}}' {POD}-{DAEMON_CONTAINER} >>{w}/old-daemon.log 2>&1\n\
         podman kube play --replace --configmap {cm} {pod_b} >>{w}/play.log 2>&1\n\
         echo \"played $(date +%s.%N)\"\n\
         n=0; until /opt/cni/bin/multusctl daemon --socket-dir /run/multus/ >/dev/null 2>&1; do n=$((n+1)); [ $n -lt 300 ]; sleep 0.1; done\n\
         echo \"ready $(date +%s.%N)\"\n\
         sleep 2\n\
         touch {w}/stop\n\
         wait $LOOP $WATCH\n\
         podman events --stream=false --since {since} --format '{{{{.Time}}}} {{{{.Status}}}} {{{{.Name}}}}' >{w}/events.log 2>&1 || true\n",
        since = "$(date -d @$(( $(date +%s) - 120 )) +%Y-%m-%dT%H:%M:%S)",
        cm = pn.configmap().display(),
        pod_b = pod_b.display(),
    );
    let out = pn.sh(&script);
    let log = std::fs::read_to_string(pn.work.path().join("calls.log")).unwrap_or_default();
    for phases in ["watch.log", "events.log"] {
        eprintln!(
            "{phases}:\n{}",
            std::fs::read_to_string(pn.work.path().join(phases)).unwrap_or_default()
        );
    }
    let play_log = std::fs::read_to_string(pn.work.path().join("play.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nplay:\n{play_log}\ncalls:\n{log}\ndaemon:\n{}",
        text(&out),
        pn.daemon_log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let time_of = |what: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(what))
            .unwrap_or_else(|| panic!("{what} in {stdout}"))
            .trim()
            .parse()
            .unwrap()
    };
    let (replace, ready) = (time_of("replace "), time_of("ready "));
    let calls = calls(&log);
    let failed: Vec<&str> = calls
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.line.as_str())
        .collect();
    let old_daemon =
        std::fs::read_to_string(pn.work.path().join("old-daemon.log")).unwrap_or_default();
    assert!(
        old_daemon.contains("SIGTERM")
            && old_daemon.contains("multus-daemon stopped")
            && old_daemon.contains("exit code 0"),
        "the old daemon drained and exited on its own:\n{old_daemon}"
    );
    assert!(
        failed.is_empty(),
        "failed calls: {failed:?}\n{log}\nplay:\n{play_log}\nthe old daemon:\n{old_daemon}"
    );
    let during = calls
        .iter()
        .filter(|c| c.start >= replace && c.start <= ready)
        .count();
    let before = calls.iter().filter(|c| c.start < replace).count();
    let after = calls.iter().filter(|c| c.start > ready).count();
    eprintln!(
        "{} calls: {before} before the replacement, {during} during it ({:.1} s), {after} after",
        calls.len(),
        ready - replace
    );
    assert!(
        before > 0 && during > 0 && after > 0,
        "calls ran before, during and after the replacement: {log}"
    );
    // The new image's binaries, renamed into place: new files, no temporary left.
    for (name, old_inode) in INSTALLED.iter().zip(inodes_a) {
        let installed = pn.root("/opt/cni/bin").join(name);
        assert!(
            std::fs::read(&installed).unwrap() == std::fs::read(context.join(name)).unwrap(),
            "{name} is image B's"
        );
        assert_ne!(
            std::fs::metadata(&installed).unwrap().ino(),
            old_inode,
            "{name} renamed"
        );
    }
    assert!(
        !pn.entries("/opt/cni/bin")
            .iter()
            .any(|e| e.starts_with('.') || e.contains("tmp")),
        "{:?}",
        pn.entries("/opt/cni/bin")
    );
    // Nothing left by the loop.
    assert_eq!(
        testkit::leaks::host_local_leases(&pn.root("/var/lib/cni/networks")),
        Vec::<String>::new()
    );
    assert_eq!(
        testkit::leaks::cache_files(&pn.root("/var/lib/cni/multus")),
        Vec::<String>::new()
    );
    pn.ok(&format!("podman kube down {}", pod_b.display()));
    pn.ok(&format!("podman rmi {reference_b} >/dev/null"));
    eprintln!("took {:?}", started.elapsed());
}
