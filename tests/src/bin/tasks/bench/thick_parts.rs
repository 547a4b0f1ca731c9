//! Parts of `bench thick` that isolate one cost each: multus's own overhead against a delegate
//! that does nothing (the test kit's recorder plugin), the process start that is its floor, the
//! in-process `ebpf-sbr` step of the daemon against Debian's `sbr` as a process, and the daemon's
//! RSS under a burst of concurrent ADDs.

use std::{path::Path, time::Duration};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use testkit::{bins, confs, thick::Daemon, CniCall, Netns, Node};

use super::stats::{ms, Samples};

/// Runs this process (and so the daemons, plugins and API stand-in threads it starts) at
/// SCHED_FIFO priority 10: the machine's other work then cannot land in the figures, which
/// measure our own costs. Returns whether the kernel allowed it.
pub fn realtime() -> bool {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain syscall on this process with a valid parameter.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// The no-op delegate: the recorder plugin with no `recordDir` answers with an empty result.
pub fn noop(name: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": name, "type": "cni-recorder"})
}

/// Wall time of `runs` VERSION calls of `binary`: the process start, the floor of any CNI call.
pub fn version_start(node: &Node, binary: &Path, runs: usize) -> Samples {
    let mut s = Samples::default();
    for i in 0..runs + 3 {
        let out = CniCall::new(node, "VERSION", "", None, "").run(
            node,
            binary,
            &json!({"cniVersion": "1.0.0"}),
        );
        out.assert_ok();
        if i >= 3 {
            s.push(out.elapsed);
        }
    }
    s
}

/// ADD then DEL of `conf` through `binary`; (ADD, DEL) wall times.
pub fn add_del(
    node: &Node,
    binary: &Path,
    conf: &Value,
    pod: &Netns,
    id: &str,
    args: Option<&str>,
) -> (Duration, Duration) {
    let mut add = CniCall::new(node, "ADD", id, Some(pod), "eth0");
    if let Some(a) = args {
        add = add.args(a);
    }
    let a = add.run(node, binary, conf);
    a.assert_ok();
    let mut del = add.clone();
    del.command = "DEL".into();
    let d = del.run(node, binary, conf);
    d.assert_ok();
    (a.elapsed, d.elapsed)
}

/// The in-process `ebpf-sbr` step of a daemon (ADD and DEL, µs, per cycle) against Debian's
/// `sbr` run as a process on the same kind of interface, `cycles` cycles after 3 warm-up ones.
pub struct SbrStep {
    /// ebpf-sbr ADD inside the daemon.
    pub daemon_add: Samples,
    /// ebpf-sbr DEL inside the daemon.
    pub daemon_del: Samples,
    /// Debian sbr ADD as a process.
    pub debian_add: Samples,
    /// Debian sbr DEL as a process.
    pub debian_del: Samples,
}

impl SbrStep {
    /// Per-cycle ADD+DEL sums: (daemon, Debian).
    pub fn sums(&self) -> (Samples, Samples) {
        let sum =
            |a: &Samples, b: &Samples| Samples(a.0.iter().zip(&b.0).map(|(x, y)| x + y).collect());
        (
            sum(&self.daemon_add, &self.daemon_del),
            sum(&self.debian_add, &self.debian_del),
        )
    }
}

/// Measures [`SbrStep`]: a daemon with `ebpfSbr.replaceSbr` runs the `sbr` of a [bridge, sbr]
/// network in-process (its debug log gives each step's time); Debian's sbr runs as a process after
/// the same bridge, called directly.
pub fn sbr_step(node: &Node, cycles: usize) -> Result<SbrStep> {
    let bpffs = testkit::bpffs::Bpffs::new();
    let daemon = Daemon::start(
        node,
        json!({"logLevel": "debug", "logToStderr": true,
               "ebpfSbr": {"replaceSbr": true, "bpffsDir": bpffs.path()}}),
    );
    let ipam = node.ipam_dir();
    let net1_bridge = json!({"type": "bridge", "bridge": "bsb1", "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.41.0.0/24", "dataDir": ipam}});
    let net1 = json!({"cniVersion": "1.0.0", "name": "net-sbr",
        "plugins": [net1_bridge.clone(), {"type": "sbr"}]});
    let mut shim_conf = daemon.shim_conf(
        "1.0.0",
        vec![
            confs::bridge("cluster", "bsb0", "10.40.0.0/24", "1.0.0", &ipam),
            net1,
        ],
    );
    shim_conf["logLevel"] = Value::from("error");
    let shim = testkit::thick::shim();
    let bridge = bins::reference("bridge");
    let sbr = bins::reference("sbr");
    let mut direct_bridge = net1_bridge.clone();
    direct_bridge["cniVersion"] = Value::from("1.0.0");
    direct_bridge["name"] = Value::from("net-sbr");
    let mut step = SbrStep {
        daemon_add: Samples::default(),
        daemon_del: Samples::default(),
        debian_add: Samples::default(),
        debian_del: Samples::default(),
    };
    let pod = Netns::new("bsb");
    for i in 0..cycles + 3 {
        // Through the daemon: the step's own time comes from its log.
        let before = daemon.log().len();
        add_del(node, &shim, &shim_conf, &pod, &format!("sd{i}"), None);
        let log = daemon.log();
        let (a, d) = in_process_times(&log[before..], "ebpf-sbr").with_context(|| {
            format!("no in-process ebpf-sbr step in the daemon's log (cycle {i})")
        })?;
        // Debian's sbr as a process after the bridge, on net1 of an empty pod.
        let id = format!("sp{i}");
        let ra =
            CniCall::new(node, "ADD", &id, Some(&pod), "net1").run(node, &bridge, &direct_bridge);
        ra.assert_ok();
        let mut sbr_conf = json!({"cniVersion": "1.0.0", "name": "net-sbr", "type": "sbr"});
        sbr_conf["prevResult"] = ra.json.clone().unwrap_or_default();
        let sa = CniCall::new(node, "ADD", &id, Some(&pod), "net1").run(node, &sbr, &sbr_conf);
        sa.assert_ok();
        sbr_conf["prevResult"] = sa.json.clone().unwrap_or_default();
        let sd = CniCall::new(node, "DEL", &id, Some(&pod), "net1").run(node, &sbr, &sbr_conf);
        sd.assert_ok();
        let mut bd = direct_bridge.clone();
        bd["prevResult"] = ra.json.clone().unwrap_or_default();
        CniCall::new(node, "DEL", &id, Some(&pod), "net1")
            .run(node, &bridge, &bd)
            .assert_ok();
        if i >= 3 {
            step.daemon_add.0.push(a);
            step.daemon_del.0.push(d);
            step.debian_add.push(sa.elapsed);
            step.debian_del.push(sd.elapsed);
        }
    }
    Ok(step)
}

/// The ADD and DEL times (µs) of the in-process `plugin` steps in a stretch of the daemon's log.
fn in_process_times(log: &str, plugin: &str) -> Option<(f64, f64)> {
    let tag = format!("plugin=\"{plugin}\"");
    let time = |command: &str| {
        log.lines()
            .filter(|l| l.contains("delegate returned (in-process)") && l.contains(&tag))
            .filter(|l| l.contains(&format!("command={command}")))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("elapsed_us="))
                    .and_then(|v| v.parse::<f64>().ok())
            })
    };
    Some((time("ADD")?, time("DEL")?))
}

/// The daemon's RSS (KiB) idle (after one call) and at its highest while `concurrency` ADDs (each holding its slot
/// for `hold_ms` in the no-op delegate) run through the shim at once, then the same DELs; also the
/// most threads seen. Fails if any call failed.
pub fn rss_burst(node: &Node, concurrency: usize, hold_ms: u64) -> Result<(u64, u64, u64)> {
    let daemon = Daemon::start(node, json!({"logLevel": "error"}));
    let mut slow = noop("slow");
    slow["sleepMs"] = Value::from(hold_ms);
    let mut conf = daemon.shim_conf("1.0.0", vec![slow]);
    conf["logLevel"] = Value::from("error");
    let pod = Netns::new("brst");
    let shim = testkit::thick::shim();
    // Idle as a serving daemon is: after one call, whose code is then paged in (the first call
    // alone adds ~1.7 MiB of the binary's pages to the RSS).
    add_del(node, &shim, &conf, &pod, "warm", None);
    std::thread::sleep(Duration::from_millis(300));
    let idle = proc_status(daemon.pid(), "VmRSS:")?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (peak, threads, failures) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut peak, mut threads) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(proc_status(daemon.pid(), "VmRSS:").unwrap_or(0));
                threads = threads.max(proc_status(daemon.pid(), "Threads:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            (peak, threads)
        });
        let mut failures = 0;
        for command in ["ADD", "DEL"] {
            let calls: Vec<_> = (0..concurrency)
                .map(|i| {
                    let (conf, pod, shim) = (&conf, &pod, &shim);
                    s.spawn(move || {
                        CniCall::new(node, command, &format!("b{i}"), Some(pod), "eth0")
                            .run(node, shim, conf)
                            .status
                            .success()
                    })
                })
                .collect();
            failures += calls
                .into_iter()
                .map(|c| c.join().unwrap_or(false))
                .filter(|ok| !ok)
                .count();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (peak, threads) = sampler.join().unwrap_or((0, 0));
        (peak, threads, failures)
    });
    ensure!(failures == 0, "{failures} calls of the burst failed");
    ensure!(
        std::fs::read_dir(node.cache_dir())?
            .filter_map(|e| e.ok())
            .all(|e| e.file_name().to_string_lossy().starts_with('.')),
        "the burst left cache entries behind"
    );
    Ok((idle, peak, threads))
}

pub use testkit::thick::proc_status;

/// `| name | p50 | p90 |` of samples.
pub fn row(name: &str, s: &Samples) -> String {
    format!("| {name} | {} | {} |", ms(s.p50()), ms(s.p90()))
}
