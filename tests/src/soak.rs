//! The soak (docs/reliability.md, "Soak"): `concurrency` workers each run ADD/DEL cycles of pods
//! with two networks (`confs::sbr_pair`: one chained with `ebpf-sbr`) for a duration, in thin
//! mode (the `multus` binary) or thick mode (`multus-shim` and one `multus-daemon`), with faults
//! injected at random: the API stand-in answers 5xx, 429 with Retry-After, answers past the
//! client's deadline or drops the connection (on the pod's GET or the PATCH that writes its
//! network-status), or a
//! delegate hangs until `delegateTimeoutSeconds` or dies by SIGKILL.
//!
//! What must hold: a failed ADD failed from an injected fault, with a CNI error, in bounded time,
//! and rolled back (no interface, cache file or lease of the container; or, when a delegate's
//! DEL failed during the rollback, the error's details say "rollback was incomplete" and the
//! runtime's DEL removes what is left); every DEL succeeds
//! (retried, as a runtime does); no call runs past its hard bound (a hang); at the end nothing
//! is left on the node ([`crate::leaks`]). [`run`] returns a [`Report`]: calls, failures by cause,
//! ADD and DEL latency percentiles, the daemon's RSS over the run, and every problem found.
//! Used by tests/tests/soak.rs (short form) and `cargo xtask soak` (the `tasks` binary).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    bins,
    bpffs::Bpffs,
    cni, confs,
    kube_api::{Fault, FaultId, KubeApiServer, PodSeed},
    leaks, netns,
    stats::Samples,
    thick::{self, Daemon},
    CniCall, CniOutput, Netns, Node,
};

/// Where the soak's pods live in the API stand-in.
const POD_NAMESPACE: &str = "soak";
/// The node the pods are scheduled on (the daemon's `MULTUS_NODE_NAME`).
const NODE_NAME: &str = "soak-node";
/// `apiDeadlineSeconds` of the product during the soak; a slow answer waits past it.
const API_DEADLINE: Duration = Duration::from_secs(3);
/// `delegateTimeoutSeconds` of the product during the soak: a hung delegate is killed then.
/// Not shorter: `ebpf-sbr` operations of a node run one at a time (`sbr::pins::Lock`), so at
/// 64-way concurrency on 2 loaded CPUs one waits its turn for seconds (8 s was passed).
const DELEGATE_TIMEOUT_SECS: u64 = 20;
/// How long a retired SBR carrier (`sbrdel-*`) may take to go: the kernel deletes it in the
/// background once its anchor namespace is dropped, later under load.
const RETIRED_CARRIER_WAIT: Duration = Duration::from_secs(30);
/// How many times a failing DEL is tried (the runtime retries DEL until it succeeds).
const DEL_ATTEMPTS: usize = 5;

/// Thin (`multus`) or thick (`multus-shim` + `multus-daemon`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The `multus` binary per call.
    Thin,
    /// `multus-shim` per call, one `multus-daemon` for the node.
    Thick,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Thin => "thin",
            Mode::Thick => "thick",
        })
    }
}

/// What one soak runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Thin or thick.
    pub mode: Mode,
    /// How long new cycles start (cycles under way then finish).
    pub duration: Duration,
    /// Workers, each with a pod namespace of its own, running cycles one after the other.
    pub concurrency: usize,
    /// Seed of the fault choice (printed in the report: a run can be repeated).
    pub seed: u64,
    /// The hard bound of one call: a call still running then is a hang, killed and reported.
    pub call_limit: Duration,
}

impl Options {
    /// `mode` for `duration` at `concurrency`, seeded from the clock (or `SOAK_SEED`).
    pub fn new(mode: Mode, duration: Duration, concurrency: usize) -> Options {
        let seed = std::env::var("SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        Options {
            mode,
            duration,
            concurrency,
            seed,
            call_limit: Duration::from_secs(90),
        }
    }
}

/// The fault a cycle gets (chosen at random per cycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Injected {
    /// Nothing: the ADD must succeed.
    Nothing,
    /// The API answers 500 or 503 (1 to 3 times).
    Api5xx,
    /// The API answers 429 with `Retry-After: 1` (1 or 2 times).
    Api429,
    /// The API answers after the product's API deadline.
    ApiSlow,
    /// The API closes the connection without answering (1 to 3 times).
    ApiDrop,
    /// A delegate (after net-b's bridge) hangs on ADD until `delegateTimeoutSeconds`.
    DelegateHangs,
    /// A delegate (after net-b's bridge) dies by SIGKILL on ADD.
    DelegateKilled,
}

impl Injected {
    const ALL: [Injected; 7] = [
        Injected::Nothing,
        Injected::Api5xx,
        Injected::Api429,
        Injected::ApiSlow,
        Injected::ApiDrop,
        Injected::DelegateHangs,
        Injected::DelegateKilled,
    ];

    /// A fault at random: nothing in 2 cycles of 5, each fault kind in 1 of 10.
    fn pick(rng: &mut Rng) -> Injected {
        match rng.below(10) {
            0..=3 => Injected::Nothing,
            n => Injected::ALL[(n - 3) as usize],
        }
    }

    /// How the report names it.
    pub fn describe(&self) -> &'static str {
        match self {
            Injected::Nothing => "nothing",
            Injected::Api5xx => "API 500/503",
            Injected::Api429 => "API 429, Retry-After 1",
            Injected::ApiSlow => "API answer after the deadline",
            Injected::ApiDrop => "API connection dropped",
            Injected::DelegateHangs => "delegate hangs (killed at delegateTimeoutSeconds)",
            Injected::DelegateKilled => "delegate killed by SIGKILL",
        }
    }
}

/// xorshift64*: the fault choice, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What happened to the cycles of one fault kind.
#[derive(Clone, Debug, Default)]
pub struct KindTally {
    /// Cycles that got this fault.
    pub cycles: usize,
    /// Cycles whose fault was reached (the API fault fired; delegate faults always are).
    pub reached: usize,
    /// ADDs that succeeded.
    pub add_ok: usize,
    /// ADDs that failed, by CNI error code.
    pub add_failed: BTreeMap<u64, usize>,
    /// One error message per code (the first seen).
    pub messages: BTreeMap<u64, String>,
    /// Longest failed ADD.
    pub slowest_failure: Duration,
}

/// The outcome of a soak.
#[derive(Debug, Default)]
pub struct Report {
    /// Thin or thick.
    pub mode: Option<Mode>,
    /// Options of the run.
    pub concurrency: usize,
    /// Seconds new cycles were started for, and the whole run's.
    pub duration: Duration,
    /// Wall time of the run (the last cycles finish after `duration`).
    pub wall: Duration,
    /// The seed.
    pub seed: u64,
    /// ADD/DEL cycles completed.
    pub cycles: usize,
    /// ADD calls made.
    pub adds: usize,
    /// DEL calls made (every attempt).
    pub dels: usize,
    /// Per fault kind.
    pub kinds: BTreeMap<Injected, KindTally>,
    /// Wall time of each ADD that returned, in µs.
    pub add_latency: Samples,
    /// Wall time of each DEL attempt that returned, in µs.
    pub del_latency: Samples,
    /// DEL attempts that failed (and were retried), by cause.
    pub del_retries: BTreeMap<String, usize>,
    /// Failed ADDs whose rollback was incomplete (a delegate's DEL failed in it; the error's
    /// details say so): what it left is then the runtime's DEL's to remove, which the soak
    /// checks. By the rollback's reason.
    pub rollbacks_incomplete: BTreeMap<String, usize>,
    /// Calls that ran past the hard bound.
    pub hangs: Vec<String>,
    /// The daemon's RSS samples (KiB), thick mode.
    pub rss_kib: Vec<u64>,
    /// The daemon at the end (thick): calls in flight, its watch caches, its threads.
    pub daemon_after: Option<String>,
    /// Everything wrong: unexpected failures, failures without a CNI error, rollbacks that left
    /// something, DELs that never succeeded, what was left at the end, a daemon that died.
    pub problems: Vec<String>,
}

impl Report {
    /// Everything that fails the soak (hangs and problems); empty: it passed.
    pub fn failures(&self) -> Vec<String> {
        self.hangs
            .iter()
            .map(|h| format!("hung: {h}"))
            .chain(self.problems.iter().cloned())
            .collect()
    }

    /// The report as Markdown (tables for docs/reliability.md).
    pub fn render(&self) -> String {
        let ms = |us: f64| format!("{:.0} ms", us / 1000.0);
        let mut s = String::new();
        let mode = self.mode.map(|m| m.to_string()).unwrap_or_default();
        let _ = writeln!(
            s,
            "### {mode}: {} workers, {} s of new cycles ({:.0} s wall), seed {}\n",
            self.concurrency,
            self.duration.as_secs(),
            self.wall.as_secs_f64(),
            self.seed
        );
        let _ = writeln!(
            s,
            "{} cycles, {} calls ({} ADD, {} DEL attempts), {} hung, {} problems.\n",
            self.cycles,
            self.adds + self.dels,
            self.adds,
            self.dels,
            self.hangs.len(),
            self.problems.len()
        );
        let _ = writeln!(
            s,
            "| injected | cycles | reached | ADD ok | ADD failed (CNI code × count) | slowest failed ADD |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---|---:|");
        for (kind, t) in &self.kinds {
            let failed = t
                .add_failed
                .iter()
                .map(|(c, n)| format!("{c} × {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let slowest = if t.add_failed.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1} s", t.slowest_failure.as_secs_f64())
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                kind.describe(),
                t.cycles,
                t.reached,
                t.add_ok,
                if failed.is_empty() {
                    "-".into()
                } else {
                    failed
                },
                slowest
            );
        }
        let _ = writeln!(s, "\n| call | n | p50 | p90 | p99 | max |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for (name, l) in [("ADD", &self.add_latency), ("DEL", &self.del_latency)] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} |",
                l.0.len(),
                ms(l.p50()),
                ms(l.p90()),
                ms(l.pct(99.0)),
                ms(l.pct(100.0))
            );
        }
        if self.del_retries.is_empty() {
            let _ = writeln!(s, "\nEvery DEL succeeded at its first attempt.");
        } else {
            let _ = writeln!(s, "\nDEL attempts that failed and were retried:");
            for (cause, n) in &self.del_retries {
                let _ = writeln!(s, "- {n} × {cause}");
            }
        }
        if !self.rollbacks_incomplete.is_empty() {
            let _ = writeln!(
                s,
                "\nFailed ADDs whose rollback was incomplete (said in the error's details; the runtime's DEL then removed everything):"
            );
            for (why, n) in &self.rollbacks_incomplete {
                let _ = writeln!(s, "- {n} × {why}");
            }
        }
        if !self.rss_kib.is_empty() {
            let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
            let _ = writeln!(
                s,
                "\nDaemon RSS ({} samples, one a second): first {}, min {}, max {}, final (idle, 3 s after the last call) {}.",
                self.rss_kib.len(),
                mib(self.rss_kib[0]),
                mib(self.rss_kib.iter().copied().min().unwrap_or(0)),
                mib(self.rss_kib.iter().copied().max().unwrap_or(0)),
                mib(*self.rss_kib.last().unwrap_or(&0)),
            );
            // Growth or a plateau: the RSS at each tenth of the run.
            let n = self.rss_kib.len();
            let trend: Vec<String> = (1..=10)
                .map(|t| mib(self.rss_kib[(n * t / 10).saturating_sub(1)]))
                .collect();
            let _ = writeln!(s, "By tenth of the run: {}.", trend.join(", "));
        }
        if let Some(after) = &self.daemon_after {
            let _ = writeln!(s, "The daemon after the run: {after}.");
        }
        let failures = self.failures();
        if failures.is_empty() {
            let _ = writeln!(
                s,
                "\nNo hung call; nothing left on the node or in the pods."
            );
        } else {
            let _ = writeln!(s, "\n{} failures:", failures.len());
            for f in failures.iter().take(40) {
                let _ = writeln!(s, "- {f}");
            }
        }
        s
    }
}

/// The node, its API stand-in, the pods' namespaces and (thick) the daemon for one soak.
struct Bench {
    options: Options,
    node: Node,
    api: KubeApiServer,
    kubeconfig: PathBuf,
    bpffs: Bpffs,
    daemon: Option<Daemon>,
    report: Mutex<Report>,
}

/// One worker's pod namespace, reused from cycle to cycle (each cycle is a new container).
struct Slot {
    pod: Netns,
    routes_before: Vec<String>,
}

/// Runs one soak; the report holds every problem (it does not panic on them).
pub fn run(options: Options) -> Report {
    let bench = Bench::new(options.clone());
    let slots: Vec<Slot> = (0..options.concurrency)
        .map(|_| {
            let pod = Netns::new("sk");
            let routes_before = pod.all_routes();
            Slot { pod, routes_before }
        })
        .collect();
    let started = Instant::now();
    let end = started + options.duration;
    let done = AtomicBool::new(false);
    let mut rss = Vec::new();
    std::thread::scope(|s| {
        let sampler = bench.daemon.as_ref().map(|d| {
            let done = &done;
            s.spawn(move || {
                let mut samples = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    if let Ok(kib) = thick::proc_status(d.pid(), "VmRSS:") {
                        samples.push(kib);
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                // The last sample: idle again, 3 s after the last call.
                std::thread::sleep(Duration::from_secs(3));
                if let Ok(kib) = thick::proc_status(d.pid(), "VmRSS:") {
                    samples.push(kib);
                }
                samples
            })
        });
        let workers: Vec<_> = slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let bench = &bench;
                s.spawn(move || {
                    let mut rng = Rng((options.seed
                        ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                        | 1);
                    while Instant::now() < end {
                        bench.cycle(slot, &mut rng);
                    }
                })
            })
            .collect();
        for w in workers {
            if w.join().is_err() {
                bench.problem("a worker panicked".into());
            }
        }
        done.store(true, Ordering::SeqCst);
        if let Some(sampler) = sampler {
            rss = sampler.join().unwrap_or_default();
        }
    });
    let wall = started.elapsed();
    bench.finish(&slots, rss, wall)
}

impl Bench {
    fn new(options: Options) -> Bench {
        let node = Node::new();
        node.install("ebpf-sbr", &bins::product("ebpf-sbr"));
        let recorder = bins::test_bin("cni-recorder");
        node.install("cni-recorder", &recorder);
        // The faulty delegates: on ADD one hangs (exec'ing sleep, so the delegate's pid is the
        // one that hangs), the other dies by SIGKILL; every other command passes through the
        // recorder (a no-op chained plugin that returns its prevResult).
        for (name, on_add) in [
            ("soak-hang", "exec /bin/sleep 3600"),
            ("soak-killed", "kill -KILL $$"),
        ] {
            let path = node.bin_dir().join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\n# soak fault: {name}\nif [ \"$CNI_COMMAND\" = ADD ]; then {on_add}; fi\nexec {}\n",
                    recorder.display()
                ),
            )
            .expect("write the faulty delegate");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir_all(node.root().join("devinfo")).expect("mkdir devinfo");
        let api = node.api_server();
        let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
        let daemon = (options.mode == Mode::Thick).then(|| {
            node.install("multus", &bins::product("multus"));
            let mut d = Daemon::configure(
                &node,
                json!({"kubeconfig": kubeconfig, "logLevel": "error",
                    "apiDeadlineSeconds": API_DEADLINE.as_secs(),
                    "delegateTimeoutSeconds": DELEGATE_TIMEOUT_SECS,
                    "deviceInfoDir": node.root().join("devinfo")}),
            );
            d.env
                .push(("MULTUS_NODE_NAME".to_string(), NODE_NAME.to_string()));
            d.spawn(&node);
            d.wait_ready(Duration::from_secs(20));
            d
        });
        Bench {
            report: Mutex::new(Report {
                mode: Some(options.mode),
                concurrency: options.concurrency,
                duration: options.duration,
                seed: options.seed,
                ..Default::default()
            }),
            options,
            node,
            api,
            kubeconfig,
            bpffs: Bpffs::new(),
            daemon,
        }
    }

    fn problem(&self, p: String) {
        self.report.lock().expect("report").problems.push(p);
    }

    /// The pod's delegates; net-b gets the faulty plugin after its bridge for a delegate fault.
    fn delegates(&self, injected: Injected) -> Vec<Value> {
        let [net_a, net_b] = confs::sbr_pair(&self.node.ipam_dir(), self.bpffs.path());
        let faulty = match injected {
            Injected::DelegateHangs => "soak-hang",
            Injected::DelegateKilled => "soak-killed",
            _ => return vec![net_a, net_b],
        };
        let mut bridge = net_b.clone();
        if let Some(b) = bridge.as_object_mut() {
            b.remove("cniVersion");
            b.remove("name");
        }
        let net_b = json!({"cniVersion": net_b["cniVersion"], "name": net_b["name"],
            "plugins": [bridge, {"type": faulty}]});
        vec![net_a, net_b]
    }

    /// One call of the runtime: thin `multus`, or `multus-shim` to the daemon; `None`: it hung.
    fn call(
        &self,
        command: &str,
        id: &str,
        args: &str,
        pod: &Netns,
        injected: Injected,
    ) -> Option<CniOutput> {
        let call = CniCall::new(&self.node, command, id, Some(pod), "eth0").args(args);
        let delegates = self.delegates(injected);
        let (binary, mut conf) = match &self.daemon {
            None => {
                let mut c = confs::multus(
                    "1.1.0",
                    &self.node.cache_dir(),
                    &self.node.bin_dir(),
                    delegates,
                );
                c["kubeconfig"] = json!(self.kubeconfig);
                c["deviceInfoDir"] = json!(self.node.root().join("devinfo"));
                c["apiDeadlineSeconds"] = json!(API_DEADLINE.as_secs());
                (bins::product("multus"), c)
            }
            Some(d) => (thick::shim(), d.shim_conf("1.1.0", delegates)),
        };
        conf["logLevel"] = json!("error");
        conf["delegateTimeoutSeconds"] = json!(DELEGATE_TIMEOUT_SECS);
        let stdin = serde_json::to_vec(&conf).expect("json");
        {
            let mut r = self.report.lock().expect("report");
            if command == "ADD" {
                r.adds += 1;
            } else {
                r.dels += 1;
            }
        }
        call.run_bounded(&self.node, &binary, &stdin, &[], self.options.call_limit)
    }

    /// The API faults of a cycle for pod `name`: on its GET or on its status write, at random.
    fn inject(&self, injected: Injected, name: &str, rng: &mut Rng) -> Vec<FaultId> {
        // The pod's read, or the merge patch that writes (and DEL clears) network-status.
        let method = if rng.below(2) == 0 { "GET" } else { "PATCH" };
        let target = format!("/api/v1/namespaces/{POD_NAMESPACE}/pods/{name}");
        let fault = match injected {
            Injected::Api5xx => {
                Fault::status(if rng.below(2) == 0 { 500 } else { 503 }).times(1 + rng.below(3))
            }
            Injected::Api429 => Fault::too_many_requests(1).times(1 + rng.below(2)),
            Injected::ApiSlow => Fault::delay(API_DEADLINE + Duration::from_secs(1)).times(1),
            Injected::ApiDrop => Fault::drop_connection().times(1 + rng.below(3)),
            _ => return Vec::new(),
        };
        vec![self.api.inject(fault.method(method).path(&target))]
    }

    /// One ADD/DEL cycle of a new container in `slot`'s pod namespace.
    fn cycle(&self, slot: &Slot, rng: &mut Rng) {
        let name = netns::unique_name("sp");
        let obj = match self
            .api
            .create_pod(PodSeed::new(POD_NAMESPACE, &name).node_name(NODE_NAME))
        {
            Ok(o) => o,
            Err(e) => return self.problem(format!("creating pod {name} in the stand-in: {e}")),
        };
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let id = netns::unique_name("soak");
        let args = cni::k8s_args(POD_NAMESPACE, &name, Some(&id), Some(uid));
        let injected = Injected::pick(rng);
        let faults = self.inject(injected, &name, rng);

        let add = self.call("ADD", &id, &args, &slot.pod, injected);
        let reached = match injected {
            Injected::Nothing => false,
            Injected::DelegateHangs | Injected::DelegateKilled => true,
            _ => faults.iter().any(|f| self.api.fault_hits(*f) > 0),
        };
        let mut problems = Vec::new();
        {
            let mut r = self.report.lock().expect("report");
            let t = r.kinds.entry(injected).or_default();
            t.cycles += 1;
            t.reached += usize::from(reached);
            match &add {
                None => r.hangs.push(format!(
                    "ADD of {id} ({}) ran past {:?}",
                    injected.describe(),
                    self.options.call_limit
                )),
                Some(out) if out.status.success() => {
                    t.add_ok += 1;
                    r.add_latency.push(out.elapsed);
                }
                Some(out) => {
                    let code = out
                        .json
                        .as_ref()
                        .and_then(|j| j["code"].as_u64())
                        .unwrap_or(0);
                    *t.add_failed.entry(code).or_default() += 1;
                    t.messages.entry(code).or_insert_with(|| out.err_msg());
                    t.slowest_failure = t.slowest_failure.max(out.elapsed);
                    r.add_latency.push(out.elapsed);
                    if code == 0 {
                        problems.push(format!(
                            "ADD of {id} ({}) failed without a CNI error: {:?} stdout {:?} stderr {:?}",
                            injected.describe(),
                            out.status,
                            out.stdout,
                            tail(&out.stderr)
                        ));
                    }
                    if injected == Injected::Nothing {
                        problems.push(format!(
                            "ADD of {id} failed with no fault injected: {}",
                            out.stdout.trim()
                        ));
                    }
                }
            }
        }
        match &add {
            Some(out) if out.status.success() => {
                // With no fault, the pod's network-status is written.
                let status = self.api.pod_annotation(
                    POD_NAMESPACE,
                    &name,
                    multus::kube::annotations::NETWORK_STATUS,
                );
                if injected == Injected::Nothing && status.is_none() {
                    problems.push(format!(
                        "ADD of {id} succeeded without writing network-status"
                    ));
                }
            }
            Some(out) => {
                let left = self.left_of(&id, slot);
                let details = out
                    .json
                    .as_ref()
                    .and_then(|j| j["details"].as_str())
                    .unwrap_or_default();
                match details.split_once("rollback was incomplete: ") {
                    Some((_, why)) if !left.is_empty() => {
                        let why: String = why.chars().take(160).collect();
                        let mut r = self.report.lock().expect("report");
                        *r.rollbacks_incomplete.entry(why).or_default() += 1;
                    }
                    _ => {
                        problems.extend(left.into_iter().map(|l| {
                            format!("rollback of {id} ({}) left {l}", injected.describe())
                        }))
                    }
                }
            }
            None => {}
        }

        // The runtime's DEL, retried until it succeeds; the API faults still armed stay for the
        // first attempt only.
        let mut deleted = false;
        for attempt in 0..DEL_ATTEMPTS {
            if attempt == 1 {
                for f in &faults {
                    self.api.remove_fault(*f);
                }
            }
            let del = self.call("DEL", &id, &args, &slot.pod, injected);
            let mut r = self.report.lock().expect("report");
            match del {
                None => {
                    r.hangs.push(format!(
                        "DEL of {id} ran past {:?}",
                        self.options.call_limit
                    ));
                }
                Some(out) => {
                    r.del_latency.push(out.elapsed);
                    if out.status.success() {
                        deleted = true;
                        break;
                    }
                    let cause = format!(
                        "DEL failed ({}): {}",
                        injected.describe(),
                        out.err_msg().chars().take(160).collect::<String>()
                    );
                    *r.del_retries.entry(cause).or_default() += 1;
                }
            }
            drop(r);
            std::thread::sleep(Duration::from_millis(500));
        }
        for f in &faults {
            self.api.remove_fault(*f);
        }
        if !deleted {
            problems.push(format!(
                "DEL of {id} never succeeded ({DEL_ATTEMPTS} attempts)"
            ));
        }
        problems.extend(
            self.left_of(&id, slot)
                .into_iter()
                .map(|l| format!("DEL of {id} ({}) left {l}", injected.describe())),
        );
        self.api.delete_pod(POD_NAMESPACE, &name);
        let mut r = self.report.lock().expect("report");
        r.cycles += 1;
        r.problems.extend(problems);
    }

    /// What container `id` holds: interfaces, routes and neighbours in the pod, its cache file,
    /// its host-local leases.
    fn left_of(&self, id: &str, slot: &Slot) -> Vec<String> {
        let started = Instant::now();
        let mut left = leaks::pod_leftovers(&slot.pod, &slot.routes_before, None);
        while !left.is_empty()
            && left.iter().all(|l| l.starts_with("pod link sbrdel-"))
            && started.elapsed() < RETIRED_CARRIER_WAIT
        {
            std::thread::sleep(Duration::from_millis(500));
            left = leaks::pod_leftovers(&slot.pod, &slot.routes_before, None);
        }
        if self.node.cache_dir().join(id).exists() {
            left.push(format!("cache file {id}"));
        }
        left.extend(
            leaks::host_local_leases_of(&self.node.ipam_dir(), id)
                .into_iter()
                .map(|l| format!("lease {l}")),
        );
        left
    }

    /// The end: the daemon still serving, then stopped; nothing left anywhere.
    fn finish(mut self, slots: &[Slot], rss_kib: Vec<u64>, wall: Duration) -> Report {
        let mut report = std::mem::take(&mut *self.report.lock().expect("report"));
        report.wall = wall;
        report.rss_kib = rss_kib;
        if let Some(mut d) = self.daemon.take() {
            if !d.running() {
                report.problems.push(format!(
                    "the daemon died during the soak:\n{}",
                    tail(&d.log())
                ));
            }
            // Nothing in flight, and no deleted pod still in its watch cache.
            let started = Instant::now();
            let status = loop {
                let status = d.status();
                let held = status
                    .caches
                    .iter()
                    .filter(|c| c.resource.contains("pod"))
                    .map(|c| c.objects)
                    .sum::<usize>();
                if (status.in_flight == 0 && held == 0)
                    || started.elapsed() > Duration::from_secs(10)
                {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            let caches: Vec<String> = status
                .caches
                .iter()
                .map(|c| format!("{} {} objects", c.resource, c.objects))
                .collect();
            report.daemon_after = Some(format!(
                "{} calls in flight, caches: {}; {} threads",
                status.in_flight,
                caches.join(", "),
                thick::proc_status(d.pid(), "Threads:").unwrap_or(0)
            ));
            if status.in_flight != 0 {
                report.problems.push(format!(
                    "{} calls still in flight at the end",
                    status.in_flight
                ));
            }
            for c in status.caches.iter().filter(|c| c.resource.contains("pod")) {
                if c.objects != 0 {
                    report.problems.push(format!(
                        "the daemon's {} cache holds {} objects after every pod was deleted",
                        c.resource, c.objects
                    ));
                }
            }
            // Stopped as the node's service manager does: it drains, releases the programs.
            d.signal(libc::SIGTERM);
            if d.wait_exit(Duration::from_secs(30)).is_none() && d.running() {
                report
                    .problems
                    .push("the daemon did not exit within 30 s of SIGTERM".into());
            }
        }
        for slot in slots {
            report.problems.extend(
                leaks::pod_leftovers(&slot.pod, &slot.routes_before, None)
                    .into_iter()
                    .map(|l| format!("left at the end in {}: {l}", slot.pod.name())),
            );
        }
        report.problems.extend(
            leaks::node_leftovers(
                &self.node,
                &confs::SBR_PAIR_BRIDGES,
                self.bpffs.path(),
                &self.node.root().join("devinfo"),
            )
            .into_iter()
            .map(|l| format!("left at the end on the node: {l}")),
        );
        report
    }
}

/// The last lines of a log or stderr.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}
