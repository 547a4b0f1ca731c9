//! Quick measurements of eBPF SBR against Debian's sbr and against no SBR on the §5 topology, for
//! docs/sbr-design.md (the formal benchmark is `cargo xtask bench sbr`). Run as root from a release
//! build: `cargo run --release -p multus-tests --bin sbr-measure -- [reps] [seconds]`, or
//! `... --bin sbr-measure -- adddel [runs]` for the ADD/DEL section alone. Prints markdown tables.
//!
//! ADD/DEL are measured as processes (`sbr-lab`, one per call, like a CNI plugin) in each attach
//! mode, with the node's programs already loaded by another pod ("warm", the usual case) and without
//! ("cold": that ADD loads them, that DEL unloads them), with the phases each call reports. Set
//! `SBR_LAB_BEFORE` to an older `sbr-lab` to measure it beside.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use testkit::{
    cni::{exec, sbr_conf},
    sbr::Harness,
    topo::{MiniPod, Options, Sbr5, NET1_IPS, POD_ETH0_V4, POD_NET1_V4},
    traffic::{iperf3, udp_pingpong, Iperf3Server},
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Ebpf,
    Sbr,
}

/// A topology with the given SBR mode applied (the harness keeps eBPF SBR's pins alive).
fn setup(mode: Mode, o: Options) -> (Sbr5, Option<Harness>) {
    let t = Sbr5::with(o);
    let h = match mode {
        Mode::None => None,
        Mode::Ebpf => {
            let h = Harness::new();
            h.add(&t.pod, &t.net1_spec());
            Some(h)
        }
        Mode::Sbr => {
            let out = exec(
                "sbr",
                "ADD",
                "measure",
                t.pod.path(),
                "net1",
                &sbr_conf(t.pod.path(), "net1", &NET1_IPS),
            );
            assert!(out.status.success(), "sbr ADD: {}", out.stdout);
            None
        }
    };
    (t, h)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Throughput of each mode: all topologies are set up first and the repetitions alternate between
/// modes, so that load from elsewhere on the machine falls on every mode alike.
fn throughput(
    reps: usize,
    secs: u32,
    o: &Options,
    client_net1: bool,
    modes: &[Mode],
) -> Vec<(Mode, [f64; 3])> {
    let setups: Vec<_> = modes.iter().map(|&mode| setup(mode, o.clone())).collect();
    let servers: Vec<_> = setups
        .iter()
        .map(|(t, _)| Iperf3Server::start(&t.pod, 5201))
        .collect();
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; modes.len()];
    for _ in 0..reps {
        for (i, (t, _)) in setups.iter().enumerate() {
            let (client, dst) = if client_net1 {
                (&t.cli2, POD_NET1_V4)
            } else {
                (&t.cli1, POD_ETH0_V4)
            };
            samples[i][0].push(iperf3(client, dst, 5201, secs, &[]));
            samples[i][1].push(iperf3(client, dst, 5201, secs, &["-R"]));
            samples[i][2].push(iperf3(client, dst, 5201, secs, &["-R", "-P", "4"]));
        }
    }
    drop(servers);
    modes
        .iter()
        .zip(samples)
        .map(|(&mode, [f, r, p])| (mode, [median(f), median(r), median(p)]))
        .collect()
}

/// UDP request/response round trips from `client` to `server`:`dst` (testkit's ping-pong, the
/// one `cargo xtask bench sbr` uses): (p50, p99) in µs.
fn pingpong(
    server: &testkit::netns::Netns,
    client: &testkit::netns::Netns,
    dst: &str,
    n: usize,
) -> (f64, f64) {
    let samples = udp_pingpong(server, client, dst.parse().expect("addr"), 7777, n);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// What runs ADD and DEL.
#[derive(Clone, Debug)]
enum Plugin {
    /// Debian's sbr.
    Sbr,
    /// eBPF SBR through `sbr-lab` at `lab`, in `mode` (None: the binary has no modes), with the
    /// programs kept loaded by another pod (`warm`).
    Ebpf {
        lab: PathBuf,
        mode: Option<&'static str>,
        warm: bool,
        /// A program (and arguments) that starts `sbr-lab`: empty, or `unshare --mount ...` for a
        /// caller in a private mount namespace.
        launcher: &'static [&'static str],
    },
}

/// Starts `sbr-lab` in a private mount namespace, as `ip netns exec` starts its command.
const PRIVATE_MOUNT_NS: &[&str] = &["unshare", "--mount", "--propagation", "slave", "--"];

/// ADD and DEL times of `runs` process calls (ms) and the phases eBPF SBR reported (µs).
struct Times {
    adds: Vec<f64>,
    dels: Vec<f64>,
    add_phases: BTreeMap<String, Vec<f64>>,
    del_phases: BTreeMap<String, Vec<f64>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `sbr-lab` (through `launcher`, if any) and returns its wall time and the phases it printed,
/// with its own in-process time of the call as the phase `in-process`.
fn lab_call(lab: &Path, launcher: &[&str], args: &[&str]) -> (Duration, BTreeMap<String, f64>) {
    let mut cmd = match launcher.split_first() {
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(lab);
            cmd
        }
        None => Command::new(lab),
    };
    let start = Instant::now();
    let out = cmd.args(args).output().expect("sbr-lab");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "sbr-lab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut phases: BTreeMap<String, f64> = stderr
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("phase ")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect();
    if let Some(us) = stderr.lines().find_map(|l| {
        let (_, d) = l.split_once(" took ")?;
        debug_duration_us(d.trim())
    }) {
        phases.insert("in-process".into(), us);
    }
    (took, phases)
}

/// A `Duration` as `{:?}` prints it ("2.61ms", "874.5µs", "1.2s"), in µs.
fn debug_duration_us(text: &str) -> Option<f64> {
    [("ms", 1e3), ("µs", 1.0), ("ns", 1e-3), ("s", 1e6)]
        .iter()
        .find_map(|(unit, scale)| Some(text.strip_suffix(unit)?.parse::<f64>().ok()? * scale))
}

/// ADD and DEL of net1 in the §5 pod, `runs` times, each a process.
fn add_del_times(plugin: &Plugin, runs: usize) -> Times {
    let t = Sbr5::new();
    let bpffs = testkit::bpffs::Bpffs::new();
    let bpffs_dir = bpffs.path().to_string_lossy().into_owned();
    let pod = t.pod.path().to_string_lossy().into_owned();
    let conf = sbr_conf(t.pod.path(), "net1", &NET1_IPS);
    let mut times = Times {
        adds: Vec::new(),
        dels: Vec::new(),
        add_phases: BTreeMap::new(),
        del_phases: BTreeMap::new(),
    };
    let keeper = MiniPod::new();
    let keeper_path = keeper.pod.path().to_string_lossy().into_owned();
    let mode_args = |mode: &Option<&'static str>| -> Vec<&'static str> {
        mode.map(|m| vec!["--mode", m]).unwrap_or_default()
    };
    if let Plugin::Ebpf {
        lab,
        mode,
        warm: true,
        ..
    } = plugin
    {
        let mut args = vec![
            "add",
            &bpffs_dir,
            "keeper",
            &keeper_path,
            "net1",
            "10.5.0.2/24@10.5.0.1",
        ];
        args.extend(mode_args(mode));
        lab_call(lab, &[], &args);
    }
    for _ in 0..runs {
        match plugin {
            Plugin::Ebpf {
                lab,
                mode,
                launcher,
                ..
            } => {
                let mut args = vec![
                    "add",
                    &bpffs_dir,
                    "m",
                    &pod,
                    "net1",
                    "10.1.0.2/24@10.1.0.1",
                    "fd01::2/64@fd01::1",
                ];
                args.extend(mode_args(mode));
                let (took, phases) = lab_call(lab, launcher, &args);
                times.adds.push(ms(took));
                for (k, v) in phases {
                    times.add_phases.entry(k).or_default().push(v);
                }
                let (took, phases) =
                    lab_call(lab, launcher, &["del", &bpffs_dir, "m", &pod, "net1"]);
                times.dels.push(ms(took));
                for (k, v) in phases {
                    times.del_phases.entry(k).or_default().push(v);
                }
            }
            Plugin::Sbr => {
                let start = Instant::now();
                assert!(exec("sbr", "ADD", "m", t.pod.path(), "net1", &conf)
                    .status
                    .success());
                times.adds.push(ms(start.elapsed()));
                let start = Instant::now();
                assert!(exec("sbr", "DEL", "m", t.pod.path(), "net1", &conf)
                    .status
                    .success());
                times.dels.push(ms(start.elapsed()));
                t.restore_after_debian_sbr_del();
            }
        }
    }
    if let Plugin::Ebpf {
        lab, warm: true, ..
    } = plugin
    {
        lab_call(
            lab,
            &[],
            &["del", &bpffs_dir, "keeper", &keeper_path, "net1"],
        );
    }
    times
}

fn main() {
    if std::env::var_os("SBR_MEASURE_ONLY_LATENCY").is_some() {
        latency();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let lab: PathBuf = std::env::current_exe()
        .expect("exe")
        .with_file_name("sbr-lab");
    assert!(
        lab.exists(),
        "build sbr-lab first (cargo build --release -p multus-tests)"
    );
    if args.get(1).map(String::as_str) == Some("mountns") {
        let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
        mount_ns_section(&lab, runs);
        return;
    }
    if args.get(1).map(String::as_str) == Some("adddel") {
        let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
        add_del_section(&lab, runs);
        return;
    }
    let reps: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let secs: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);

    println!(
        "## Throughput (Gbit/s, median of {reps} × {secs} s, modes alternating; iperf3 client in cli2 -> pod net1 10.1.0.2)\n"
    );
    println!("| case | mode | -P1 cli2->pod | -P1 -R pod->cli2 | -P4 -R |\n|---|---|---|---|---|");
    for (label, o) in [
        ("same MTU", Options::default()),
        (
            "net1 MTU 1400",
            Options {
                net1_mtu: 1400,
                ..Options::default()
            },
        ),
    ] {
        for (mode, [f, r, p]) in throughput(reps, secs, &o, true, &[Mode::Sbr, Mode::Ebpf]) {
            println!("| {label} | {mode:?} | {f:.2} | {r:.2} | {p:.2} |");
        }
    }
    println!(
        "\n## Primary path (cli1 -> pod eth0 10.0.0.2, unmanaged; eBPF SBR sends its replies through the carrier)\n"
    );
    println!("| mode | -P1 | -P1 -R | -P4 -R |\n|---|---|---|---|");
    for (mode, [f, r, p]) in throughput(
        reps,
        secs,
        &Options::default(),
        false,
        &[Mode::None, Mode::Ebpf],
    ) {
        println!("| {mode:?} | {f:.2} | {r:.2} | {p:.2} |");
    }

    latency();
    add_del_section(&lab, 30);
}

fn latency() {
    println!("\n## UDP request/response latency (µs, 20000 round trips, both ends on CPU 0)\n");
    println!("| path | mode | p50 | p99 |\n|---|---|---|---|");
    for mode in [Mode::Sbr, Mode::Ebpf] {
        let (t, _h) = setup(mode, Options::default());
        let (p50, p99) = pingpong(&t.pod, &t.cli2, POD_NET1_V4, 20000);
        println!("| cli2 -> net1 | {mode:?} | {p50:.1} | {p99:.1} |");
    }
    for mode in [Mode::None, Mode::Ebpf] {
        let (t, _h) = setup(mode, Options::default());
        let (p50, p99) = pingpong(&t.pod, &t.cli1, POD_ETH0_V4, 20000);
        println!("| cli1 -> eth0 | {mode:?} | {p50:.1} | {p99:.1} |");
    }
}

fn add_del_section(lab: &Path, runs: usize) {
    println!(
        "\n## ADD/DEL wall time of a process (ms, {runs} runs each; eBPF SBR through sbr-lab)\n"
    );
    let mut plugins: Vec<(String, Plugin)> = vec![("Debian sbr".into(), Plugin::Sbr)];
    if let Some(before) = std::env::var_os("SBR_LAB_BEFORE") {
        plugins.push((
            "eBPF SBR before (per-pod load)".into(),
            Plugin::Ebpf {
                lab: PathBuf::from(before),
                mode: None,
                warm: false,
                launcher: &[],
            },
        ));
    }
    for mode in ["tcx", "netlink"] {
        for warm in [true, false] {
            let label = format!("eBPF SBR {mode}, {}", if warm { "warm" } else { "cold" });
            plugins.push((
                label,
                Plugin::Ebpf {
                    lab: lab.to_path_buf(),
                    mode: Some(mode),
                    warm,
                    launcher: &[],
                },
            ));
        }
    }
    let mut results = Vec::new();
    for (label, plugin) in plugins {
        let t = add_del_times(&plugin, runs);
        results.push((label, t));
    }
    let sbr_total = results
        .first()
        .map(|(_, t)| percentile(&t.adds, 0.5) + percentile(&t.dels, 0.5))
        .unwrap_or(1.0);
    println!("| plugin | ADD p50 | ADD p90 | DEL p50 | DEL p90 | ADD+DEL p50 | × sbr |\n|---|---|---|---|---|---|---|");
    for (label, t) in &results {
        let (a50, a90, d50, d90) = (
            percentile(&t.adds, 0.5),
            percentile(&t.adds, 0.9),
            percentile(&t.dels, 0.5),
            percentile(&t.dels, 0.9),
        );
        println!(
            "| {label} | {a50:.1} | {a90:.1} | {d50:.1} | {d90:.1} | {:.1} | {:.2} |",
            a50 + d50,
            (a50 + d50) / sbr_total
        );
    }
    println!("\nPhases reported by eBPF SBR (µs, median over the runs):\n");
    println!("| plugin | call | phases |\n|---|---|---|");
    for (label, t) in &results {
        for (call, phases) in [("ADD", &t.add_phases), ("DEL", &t.del_phases)] {
            if phases.is_empty() {
                continue;
            }
            let text: Vec<String> = phases
                .iter()
                .map(|(name, v)| format!("{name} {:.0}", percentile(v, 0.5)))
                .collect();
            println!("| {label} | {call} | {} |", text.join(", "));
        }
    }
}

/// ADD/DEL (netlink, warm) from the node's mount namespace and from a private one (`unshare
/// --mount`, as `ip netns exec` does): the cost of working in the node's mount namespace. With
/// `SBR_LAB_BEFORE`, the same from the node's namespace with that (older) `sbr-lab` (from a private
/// one its carrier vanishes when it exits, and its DEL then races the kernel's deletion). Rounds
/// alternate between the cases so that load from elsewhere falls on each alike. Then the
/// mechanism alone, in this process: deciding where to work, and a thread entering a mount
/// namespace.
fn mount_ns_section(lab: &Path, runs: usize) {
    let mut cases: Vec<(String, PathBuf, &'static [&'static str])> = Vec::new();
    if let Some(before) = std::env::var_os("SBR_LAB_BEFORE") {
        cases.push(("before, node's mount ns".into(), PathBuf::from(before), &[]));
    }
    cases.push(("after, node's mount ns".into(), lab.to_path_buf(), &[]));
    cases.push((
        "after, private mount ns".into(),
        lab.to_path_buf(),
        PRIVATE_MOUNT_NS,
    ));
    const ROUNDS: usize = 3;
    let mut totals: Vec<Times> = Vec::new();
    for round in 0..ROUNDS {
        for (i, (_, path, launcher)) in cases.iter().enumerate() {
            let plugin = Plugin::Ebpf {
                lab: path.clone(),
                mode: Some("netlink"),
                warm: true,
                launcher,
            };
            let t = add_del_times(&plugin, runs.div_ceil(ROUNDS));
            if round == 0 {
                totals.push(t);
            } else {
                let all = &mut totals[i];
                all.adds.extend(t.adds);
                all.dels.extend(t.dels);
                for (k, v) in t.add_phases {
                    all.add_phases.entry(k).or_default().extend(v);
                }
                for (k, v) in t.del_phases {
                    all.del_phases.entry(k).or_default().extend(v);
                }
            }
        }
    }
    println!("\n## ADD/DEL by caller's mount namespace (netlink, warm; ms, p50 of {runs} runs)\n");
    println!("| case | ADD process | ADD in-process | DEL process | DEL in-process |\n|---|---|---|---|---|");
    for ((label, _, _), t) in cases.iter().zip(&totals) {
        let inproc = |p: &BTreeMap<String, Vec<f64>>| {
            p.get("in-process")
                .map(|v| percentile(v, 0.5) / 1e3)
                .unwrap_or(f64::NAN)
        };
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
            percentile(&t.adds, 0.5),
            inproc(&t.add_phases),
            percentile(&t.dels, 0.5),
            inproc(&t.del_phases)
        );
    }
    println!("\nPhases (µs, medians):\n\n| case | call | phases |\n|---|---|---|");
    for ((label, _, _), t) in cases.iter().zip(&totals) {
        for (call, phases) in [("ADD", &t.add_phases), ("DEL", &t.del_phases)] {
            let text: Vec<String> = phases
                .iter()
                .map(|(name, v)| format!("{name} {:.0}", percentile(v, 0.5)))
                .collect();
            println!("| {label} | {call} | {} |", text.join(", "));
        }
    }
    use multus::netns::mountns;
    const N: u32 = 2000;
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(mountns::decide(&mountns::observe()));
    }
    let decide = start.elapsed() / N;
    // Entering this thread's own mount namespace costs what entering another does.
    let own = Path::new("/proc/thread-self/ns/mnt");
    let start = Instant::now();
    for _ in 0..N {
        mountns::in_mount_ns(own, || ()).expect("enter");
    }
    let enter = start.elapsed() / N;
    println!(
        "\nThe mechanism alone ({N} calls): deciding where to work {decide:?}, a thread entering a \
         mount namespace and running nothing {enter:?}."
    );
}
