//! `cargo xtask bench sbr`: the `ebpf-sbr` plugin against Debian's sbr and against no SBR on the
//! §5 topology, in one run: ADD and DEL time of the plugin process, iperf3 throughput on the primary
//! and the net1 path, UDP request/response latency, and throughput with net1's MTU smaller than eth0's.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{ensure, Result};
use serde_json::{json, Value};
use testkit::{
    bins,
    bpffs::Bpffs,
    chain::Runtime,
    cni::sbr_conf,
    netns::unique_name,
    topo::{Options, Sbr5, NET1_GW_V4, NET1_GW_V6, NET1_IPS, POD_ETH0_V4, POD_NET1_V4},
    traffic::{iperf3, udp_pingpong, Iperf3Server},
};

use super::{
    report,
    stats::{ms, Samples},
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Debian,
    Ebpf,
}

const MODES: [Mode; 3] = [Mode::None, Mode::Debian, Mode::Ebpf];

/// One pod of the topology with a mode applied.
struct Setup {
    t: Sbr5,
    rt: Runtime,
    conf: Value,
    _bpffs: Bpffs,
    _server: Option<Iperf3Server>,
}

fn plugin_conf(mode: Mode, t: &Sbr5, bpffs: &Path) -> Value {
    let mut c = sbr_conf(t.pod.path(), "net1", &NET1_IPS);
    match mode {
        Mode::Ebpf => {
            c["type"] = json!("ebpf-sbr");
            c["bpffsDir"] = json!(bpffs);
        }
        _ => c["type"] = json!("sbr"),
    }
    c
}

fn setup(mode: Mode, o: Options, bins_dir: &Path) -> Setup {
    let t = Sbr5::with(o);
    let bpffs = Bpffs::new();
    let rt = Runtime {
        host: t.r1.path().to_path_buf(),
        path: vec![
            bins_dir.to_path_buf(),
            PathBuf::from(bins::REFERENCE_PLUGINS),
        ],
        container_id: unique_name("bench"),
        netns: t.pod.path().to_path_buf(),
        ifname: "net1".into(),
    };
    let conf = plugin_conf(mode, &t, bpffs.path());
    match mode {
        // The plain kernel path for net1: a route to cli2's network through net1 (what SBR must
        // achieve for replies, without any SBR machinery).
        Mode::None => {
            t.pod.ip(&[
                "route",
                "add",
                "172.16.2.0/24",
                "via",
                NET1_GW_V4,
                "dev",
                "net1",
            ]);
            t.pod.ip(&[
                "-6",
                "route",
                "add",
                "fd10:2::/64",
                "via",
                NET1_GW_V6,
                "dev",
                "net1",
            ]);
        }
        _ => {
            let out = rt.exec("ADD", &conf);
            assert!(
                out.status.success(),
                "{mode:?} ADD: {}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    Setup {
        t,
        rt,
        conf,
        _bpffs: bpffs,
        _server: None,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// iperf3 tests: (label, client on the net1 side, extra args).
const TESTS: [(&str, &[&str]); 4] = [
    ("-P1 client→pod", &[]),
    ("-P1 -R pod→client", &["-R"]),
    ("-P4 client→pod", &["-P", "4"]),
    ("-P4 -R pod→client", &["-R", "-P", "4"]),
];

/// Median Gbit/s per (mode, path, test); repetitions interleaved across modes.
fn throughput(
    setups: &[(Mode, Setup)],
    paths: &[(&str, bool)],
    tests: &[(&str, &[&str])],
    reps: usize,
    secs: u32,
) -> Vec<Vec<Vec<f64>>> {
    let mut raw = vec![vec![vec![Vec::new(); tests.len()]; paths.len()]; setups.len()];
    for _ in 0..reps {
        for (pi, (_, net1)) in paths.iter().enumerate() {
            for (ti, (_, extra)) in tests.iter().enumerate() {
                for (mi, (_, s)) in setups.iter().enumerate() {
                    let (client, dst) = if *net1 {
                        (&s.t.cli2, POD_NET1_V4)
                    } else {
                        (&s.t.cli1, POD_ETH0_V4)
                    };
                    raw[mi][pi][ti].push(iperf3(client, dst, 5201, secs, extra));
                }
            }
        }
    }
    raw.into_iter()
        .map(|m| {
            m.into_iter()
                .map(|p| p.into_iter().map(median).collect())
                .collect()
        })
        .collect()
}

/// The plugins whose ADD/DEL is timed: Debian's sbr, and ebpf-sbr in each attach mode.
const ADD_DEL_CASES: [(&str, Mode, Option<&str>); 3] = [
    ("Debian sbr", Mode::Debian, None),
    ("ebpf-sbr, attachMode auto (netlink)", Mode::Ebpf, None),
    ("ebpf-sbr, attachMode tcx", Mode::Ebpf, Some("tcx")),
];

/// Timings of one case: steady state (another SBR pod on the node keeps the programs loaded) and,
/// for ebpf-sbr, the first pod on a node (the programs are loaded by that ADD, and unloaded by its DEL).
struct AddDel {
    add: Samples,
    del: Samples,
    first_add: Samples,
    first_del: Samples,
}

/// A topology with no SBR and none of the no-SBR static routes, and the plugin config of `case`.
fn bare(bins_dir: &Path, mode: Mode, attach: Option<&str>, bpffs: Option<&Path>) -> Setup {
    let s = setup(Mode::None, Options::default(), bins_dir);
    s.t.pod.ip(&["route", "del", "172.16.2.0/24"]);
    s.t.pod.ip(&["-6", "route", "del", "fd10:2::/64"]);
    let mut conf = plugin_conf(mode, &s.t, bpffs.unwrap_or(s._bpffs.path()));
    if let Some(a) = attach {
        conf["attachMode"] = json!(a);
    }
    Setup { conf, ..s }
}

fn cycle(mode: Mode, s: &Setup) -> (std::time::Duration, std::time::Duration) {
    let add = s.rt.exec("ADD", &s.conf);
    assert!(
        add.status.success(),
        "{mode:?} ADD: {}\n{}",
        add.stdout,
        add.stderr
    );
    let del = s.rt.exec("DEL", &s.conf);
    assert!(
        del.status.success(),
        "{mode:?} DEL: {}\n{}",
        del.stdout,
        del.stderr
    );
    if mode == Mode::Debian {
        s.t.restore_after_debian_sbr_del();
    }
    (add.elapsed, del.elapsed)
}

fn add_del(bins_dir: &Path, cycles: usize) -> Vec<AddDel> {
    let mut out = Vec::new();
    // One plugin after the other, not alternating: ebpf-sbr's DEL leaves the kernel finishing the
    // carrier's unregistration (RCU, RTNL) after the process exits, which would slow a following
    // sbr ADD and flatter the ratio.
    for (_, mode, attach) in ADD_DEL_CASES {
        let s = bare(bins_dir, mode, attach, None);
        let mut t = AddDel {
            add: Samples::default(),
            del: Samples::default(),
            first_add: Samples::default(),
            first_del: Samples::default(),
        };
        if mode == Mode::Ebpf {
            // First pod on the node: nothing else holds the programs.
            for i in 0..13 {
                let (a, d) = cycle(mode, &s);
                if i >= 3 {
                    t.first_add.push(a);
                    t.first_del.push(d);
                }
            }
        }
        // Steady state: another SBR pod (its own topology, the same bpffs) keeps the programs loaded.
        let holder = (mode == Mode::Ebpf).then(|| {
            let h = bare(bins_dir, mode, attach, Some(s._bpffs.path()));
            let add = h.rt.exec("ADD", &h.conf);
            assert!(
                add.status.success(),
                "holder ADD: {}\n{}",
                add.stdout,
                add.stderr
            );
            h
        });
        for i in 0..cycles + 3 {
            let (a, d) = cycle(mode, &s);
            if i >= 3 {
                t.add.push(a);
                t.del.push(d);
            }
        }
        if let Some(h) = holder {
            let del = h.rt.exec("DEL", &h.conf);
            assert!(del.status.success(), "holder DEL: {}", del.stdout);
        }
        out.push(t);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

pub fn run(bins_dir: &Path, cycles: usize, reps: usize, secs: u32) -> Result<()> {
    ensure!(
        reps >= 1 && cycles >= 1,
        "need at least one repetition and one cycle"
    );
    let started = std::time::Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let command = format!("cargo xtask bench sbr --cycles {cycles} --reps {reps} --secs {secs}");

    eprintln!("[sbr] ADD/DEL, {cycles} cycles each");
    let timings = add_del(bins_dir, cycles);
    let (sbr_add, sbr_del) = (timings[0].add.clone(), timings[0].del.clone());

    eprintln!("[sbr] throughput, same MTU");
    let mut setups: Vec<(Mode, Setup)> = MODES
        .iter()
        .map(|&m| (m, setup(m, Options::default(), bins_dir)))
        .collect();
    for (_, s) in setups.iter_mut() {
        s._server = Some(Iperf3Server::start(&s.t.pod, 5201));
    }
    let paths = [
        ("primary (cli1 → eth0)", false),
        ("net1 (cli2 → net1)", true),
    ];
    let tput = throughput(&setups, &paths, &TESTS, reps, secs);

    eprintln!("[sbr] latency");
    let mut lat = Vec::new();
    for (mode, s) in &setups {
        let eth0 = Samples(udp_pingpong(
            &s.t.pod,
            &s.t.cli1,
            POD_ETH0_V4.parse::<IpAddr>()?,
            7777,
            20_000,
        ));
        let net1 = Samples(udp_pingpong(
            &s.t.pod,
            &s.t.cli2,
            POD_NET1_V4.parse::<IpAddr>()?,
            7778,
            20_000,
        ));
        lat.push((*mode, eth0, net1));
    }
    for (_, s) in setups.iter_mut() {
        s._server = None;
    }
    drop(setups);

    eprintln!("[sbr] throughput, net1 MTU 1400");
    let mtu_o = Options {
        net1_mtu: 1400,
        ..Options::default()
    };
    let mut mtu_setups: Vec<(Mode, Setup)> = MODES
        .iter()
        .map(|&m| (m, setup(m, mtu_o.clone(), bins_dir)))
        .collect();
    for (_, s) in mtu_setups.iter_mut() {
        s._server = Some(Iperf3Server::start(&s.t.pod, 5201));
    }
    let mtu_tests = [TESTS[0], TESTS[1]];
    let mtu = throughput(&mtu_setups, &[paths[1]], &mtu_tests, reps, secs);
    for (mode, s) in &mtu_setups {
        if *mode != Mode::None {
            let del = s.rt.exec("DEL", &s.conf);
            ensure!(del.status.success(), "{mode:?} DEL: {}", del.stdout);
        }
    }
    drop(mtu_setups);
    let elapsed = started.elapsed();

    // ---- report ----
    let idx = |m: Mode| MODES.iter().position(|x| *x == m).unwrap_or(0);
    let (n, d, e) = (idx(Mode::None), idx(Mode::Debian), idx(Mode::Ebpf));
    let sbr_total = sbr_add.p50() + sbr_del.p50();
    let mut body = format!(
        "## sbr: the `ebpf-sbr` plugin vs Debian's sbr vs no SBR\n\n\
         Command: `{command}` (release build) · {} · {:.0} s · load average before the run: {load}\n\n\
         The SBR test topology (tests/src/topo.rs) in namespaces (veth links; the pod's eth0 towards r0, net1 \
         towards r1, clients cli1 behind r0 and cli2 behind r1). **Debian sbr** = containernetworking-plugins `sbr`; \
         **ebpf-sbr** = this repository's plugin; both are given the same prevResult for net1 (10.1.0.2/24 via 10.1.0.1, \
         fd01::2/64 via fd01::1). **No SBR** on the net1 path = a static route to cli2's network through net1 in the \
         pod's main table (without it, replies leave by eth0 and are dropped: there is no no-SBR figure otherwise); \
         on the primary path = nothing added.\n\n",
        report::machine(),
        elapsed.as_secs_f64()
    );
    body += &format!(
        "### ADD and DEL of the plugin process ({cycles} cycles each after 3 warm-up ones, one plugin's block after the other, wall time incl. process start)\n\n\
         Steady state: another SBR pod on the node keeps the programs loaded (the usual case on a node that uses SBR). \
         First pod: no other SBR pod, so that ADD loads the programs (kernel BTF parse, verification) and its DEL unloads them \
         (10 cycles).\n\n\
         | plugin | ADD p50 | ADD p90 | DEL p50 | DEL p90 | ADD+DEL p50 | ÷ sbr |\n|---|---|---|---|---|---|---|\n"
    );
    let row = |label: &str, add: &Samples, del: &Samples| {
        format!(
            "| {label} | {} | {} | {} | {} | {} | {:.2}× |\n",
            ms(add.p50()),
            ms(add.p90()),
            ms(del.p50()),
            ms(del.p90()),
            ms(add.p50() + del.p50()),
            (add.p50() + del.p50()) / sbr_total
        )
    };
    for ((label, mode, _), t) in ADD_DEL_CASES.iter().zip(&timings) {
        body += &row(label, &t.add, &t.del);
        if *mode == Mode::Ebpf {
            body += &row(
                &format!("{label}, first pod on the node"),
                &t.first_add,
                &t.first_del,
            );
        }
    }
    let best = timings[1..]
        .iter()
        .map(|t| (t.add.p50() + t.del.p50()) / sbr_total)
        .fold(f64::INFINITY, f64::min);
    body += &format!(
        "\nGoal ADD+DEL ≤ 0.3× sbr: {} (best, steady state: {best:.2}×). A TCX attach or detach waits for an RCU grace period \
         under RTNL (see docs/sbr-design.md §10); netlink filters do not. Both are one process per call, like sbr.\n\n",
        verdict(best <= 0.3)
    );
    body += &format!(
        "### iperf3 TCP throughput (Gbit/s, median of {reps} × {secs} s, IPv4)\n\n\
         | path | test | no SBR | Debian sbr | ebpf-sbr | ebpf / no SBR | ebpf / sbr |\n|---|---|---|---|---|---|---|\n"
    );
    let (mut min_vs_none, mut min_vs_sbr) = (f64::INFINITY, f64::INFINITY);
    for (pi, (pname, _)) in paths.iter().enumerate() {
        for (ti, (tname, _)) in TESTS.iter().enumerate() {
            let (vn, vd, ve) = (tput[n][pi][ti], tput[d][pi][ti], tput[e][pi][ti]);
            min_vs_none = min_vs_none.min(ve / vn);
            if paths[pi].1 {
                min_vs_sbr = min_vs_sbr.min(ve / vd);
            }
            body += &format!(
                "| {pname} | {tname} | {vn:.2} | {vd:.2} | {ve:.2} | {:.3} | {:.3} |\n",
                ve / vn,
                ve / vd
            );
        }
    }
    // Debian sbr changes nothing on the primary path: its figures there are a second sample of the
    // no-SBR path, and their difference is this run's noise.
    let noise = (0..TESTS.len())
        .map(|ti| (tput[d][0][ti] / tput[n][0][ti] - 1.0).abs())
        .fold(0.0, f64::max);
    body += &format!(
        "\nNoise in this run: on the primary path, where Debian sbr changes nothing, the no-SBR and Debian sbr figures \
         (the same path measured twice) differ by up to **{:.0} %**; ratios inside that band are not conclusive.\n",
        noise * 100.0
    );
    body += &format!(
        "\nLowest ebpf / no SBR: **{min_vs_none:.3}** — goal ≥ 0.98: {}. Lowest ebpf / sbr on the net1 path: **{min_vs_sbr:.3}** — \
         goal ≥ 1: {}.\n\n",
        verdict(min_vs_none >= 0.98),
        verdict(min_vs_sbr >= 1.0),
    );
    body += &format!(
        "### MTU mismatch: net1 MTU 1400, eth0 1500 (Gbit/s, median of {reps} × {secs} s, cli2 ↔ pod net1)\n\n\
         | test | no SBR | Debian sbr | ebpf-sbr | ebpf / no SBR | ebpf / sbr |\n|---|---|---|---|---|---|\n"
    );
    for (ti, (tname, _)) in mtu_tests.iter().enumerate() {
        let (vn, vd, ve) = (mtu[n][0][ti], mtu[d][0][ti], mtu[e][0][ti]);
        body += &format!(
            "| {tname} | {vn:.2} | {vd:.2} | {ve:.2} | {:.3} | {:.3} |\n",
            ve / vn,
            ve / vd
        );
    }
    body += "\n### UDP request/response latency (µs; 20 000 round trips of 64 bytes after 1 000 warm-up, both ends on CPU 0)\n\n\
             | path | no SBR p50 | p99 | Debian sbr p50 | p99 | ebpf-sbr p50 | p99 | ebpf − no SBR (p50) |\n|---|---|---|---|---|---|---|---|\n";
    let mut worst_added = f64::NEG_INFINITY;
    for (label, which) in [("primary (cli1 → eth0)", 0), ("net1 (cli2 → net1)", 1)] {
        let get = |m: Mode| {
            let (_, a, b) = &lat[idx(m)];
            if which == 0 {
                a.clone()
            } else {
                b.clone()
            }
        };
        let (sn, sd, se) = (get(Mode::None), get(Mode::Debian), get(Mode::Ebpf));
        let added = se.p50() - sn.p50();
        worst_added = worst_added.max(added);
        body += &format!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {added:+.1} |\n",
            sn.p50(),
            sn.pct(99.0),
            sd.p50(),
            sd.pct(99.0),
            se.p50(),
            se.pct(99.0)
        );
    }
    body += &format!(
        "\nLargest added p50: **{worst_added:+.1} µs** — goal ≤ 2 µs: {}.\n\n\
         Veth-only topology on 2 CPUs shared with other work (see the load average): the figures are to be re-measured \
         on a quiet machine.\n",
        verdict(worst_added <= 2.0)
    );
    println!("{body}");
    report::write_section("sbr", &body)
}
