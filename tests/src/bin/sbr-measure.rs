//! Quick measurements of eBPF SBR against Debian's sbr and against no SBR on the §5 topology, for
//! docs/sbr-design.md (the formal benchmark is `cargo xtask bench sbr`). Run as root from a release
//! build: `cargo run --release -p multus-tests --bin sbr-measure -- [reps] [seconds]`. Prints
//! markdown tables.

use std::{
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use testkit::{
    cni::{exec, sbr_conf},
    sbr::Harness,
    topo::{Options, Sbr5, NET1_GW_V4, NET1_GW_V6, POD_ETH0_V4, POD_NET1_V4},
    traffic::{iperf3, Iperf3Server},
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Ebpf,
    Sbr,
}

const SBR_IPS: [(&str, Option<&str>); 2] = [("10.1.0.2/24", Some(NET1_GW_V4)), ("fd01::2/64", Some(NET1_GW_V6))];

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
            let out = exec("sbr", "ADD", "measure", &t.pod.path(), "net1", &sbr_conf(&t.pod.path(), "net1", &SBR_IPS));
            assert!(out.ok, "sbr ADD: {}", out.stdout);
            None
        }
    };
    (t, h)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(reps: usize, secs: u32, o: &Options, client_net1: bool, modes: &[Mode]) -> Vec<(Mode, [f64; 3])> {
    let mut out = Vec::new();
    for &mode in modes {
        let (t, _h) = setup(mode, o.clone());
        let (client, dst) = if client_net1 { (&t.cli2, POD_NET1_V4) } else { (&t.cli1, POD_ETH0_V4) };
        let _server = Iperf3Server::start(&t.pod, 5201);
        let mut fwd = Vec::new();
        let mut rev = Vec::new();
        let mut par = Vec::new();
        for _ in 0..reps {
            fwd.push(iperf3(client, dst, 5201, secs, &[]));
            rev.push(iperf3(client, dst, 5201, secs, &["-R"]));
            par.push(iperf3(client, dst, 5201, secs, &["-R", "-P", "4"]));
        }
        out.push((mode, [median(fwd), median(rev), median(par)]));
    }
    out
}

/// Pins the calling thread to CPU 0, so both ends of a ping-pong wake each other on one CPU and the
/// figures compare paths, not scheduler placement.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0, "affinity");
    }
}

/// UDP request/response round trips from `client` to `server`:`dst`: (p50, p99) in µs.
fn pingpong(server: &testkit::netns::Netns, client: &testkit::netns::Netns, dst: &str, n: usize) -> (f64, f64) {
    let bind: SocketAddr = format!("{dst}:7777").parse().expect("addr");
    let srv = server.enter(|| UdpSocket::bind(bind).expect("bind"));
    srv.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let total = n + 1000;
    let echo = std::thread::spawn(move || {
        pin_to_cpu0();
        let mut buf = [0u8; 64];
        for _ in 0..total {
            let Ok((len, from)) = srv.recv_from(&mut buf) else { return };
            let _ = srv.send_to(&buf[..len], from);
        }
    });
    let cli = client.enter(|| UdpSocket::bind("0.0.0.0:0").expect("bind"));
    cli.connect(format!("{dst}:7777")).expect("connect");
    cli.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    pin_to_cpu0();
    let mut buf = [0u8; 64];
    let mut samples = Vec::with_capacity(n);
    for i in 0..total {
        let start = Instant::now();
        cli.send(b"ping").expect("send");
        cli.recv(&mut buf).expect("pong");
        if i >= 1000 {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let _ = echo.join();
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

/// ADD and DEL wall time of a plugin process, `runs` times: ((add p50, p90), (del p50, p90)) in ms.
fn add_del_times(mode: Mode, runs: usize, lab: &Path) -> ((f64, f64), (f64, f64)) {
    let t = Sbr5::new();
    let bpffs = testkit::bpffs::Bpffs::new();
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    let conf = sbr_conf(&t.pod.path(), "net1", &SBR_IPS);
    for _ in 0..runs {
        let start = Instant::now();
        match mode {
            Mode::Ebpf => {
                let st = Command::new(lab)
                    .args(["add", &bpffs.path().to_string_lossy(), "m", &t.pod.path().to_string_lossy(), "net1"])
                    .args(["10.1.0.2/24@10.1.0.1", "fd01::2/64@fd01::1"])
                    .output()
                    .expect("sbr-lab");
                assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
            }
            _ => assert!(exec("sbr", "ADD", "m", &t.pod.path(), "net1", &conf).ok),
        }
        adds.push(start.elapsed());
        let start = Instant::now();
        match mode {
            Mode::Ebpf => {
                let st = Command::new(lab)
                    .args(["del", &bpffs.path().to_string_lossy(), "m", &t.pod.path().to_string_lossy(), "net1"])
                    .output()
                    .expect("sbr-lab");
                assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
            }
            _ => assert!(exec("sbr", "DEL", "m", &t.pod.path(), "net1", &conf).ok),
        }
        dels.push(start.elapsed());
        if mode == Mode::Sbr {
            // sbr's DEL leaves its routes in table 100 and net1's routes out of main: restore them.
            t.pod.ip(&["route", "flush", "table", "100"]);
            t.pod.ip(&["-6", "route", "flush", "table", "101"]);
            t.pod.try_ip(&["route", "add", "10.1.0.0/24", "dev", "net1", "src", "10.1.0.2"]);
            t.pod.try_ip(&["-6", "route", "add", "fd01::/64", "dev", "net1"]);
            t.pod.try_ip(&["-6", "route", "add", "fe80::/64", "dev", "net1"]);
        }
    }
    (percentiles(adds), percentiles(dels))
}

fn main() {
    if std::env::var_os("SBR_MEASURE_ONLY_LATENCY").is_some() {
        latency();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let secs: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let lab: PathBuf = std::env::current_exe().expect("exe").with_file_name("sbr-lab");
    assert!(lab.exists(), "build sbr-lab first (cargo build --release -p multus-tests)");

    println!("## Throughput (Gbit/s, median of {reps} × {secs} s; iperf3 client in cli2 -> pod net1 10.1.0.2)\n");
    println!("| case | mode | -P1 cli2->pod | -P1 -R pod->cli2 | -P4 -R |\n|---|---|---|---|---|");
    for (label, o) in
        [("same MTU", Options::default()), ("net1 MTU 1400", Options { net1_mtu: 1400, ..Options::default() })]
    {
        for (mode, [f, r, p]) in throughput(reps, secs, &o, true, &[Mode::Sbr, Mode::Ebpf]) {
            println!("| {label} | {mode:?} | {f:.2} | {r:.2} | {p:.2} |");
        }
    }
    println!(
        "\n## Primary path (cli1 -> pod eth0 10.0.0.2, unmanaged; eBPF SBR sends its replies through the carrier)\n"
    );
    println!("| mode | -P1 | -P1 -R | -P4 -R |\n|---|---|---|---|");
    for (mode, [f, r, p]) in throughput(reps, secs, &Options::default(), false, &[Mode::None, Mode::Ebpf]) {
        println!("| {mode:?} | {f:.2} | {r:.2} | {p:.2} |");
    }

    latency();
    add_del_section(&lab);
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

fn add_del_section(lab: &Path) {
    println!("\n## ADD/DEL wall time of a process (ms, 30 runs; eBPF SBR through sbr-lab)\n");
    println!("| mode | ADD p50 | ADD p90 | DEL p50 | DEL p90 |\n|---|---|---|---|---|");
    for mode in [Mode::Sbr, Mode::Ebpf] {
        let ((a50, a90), (d50, d90)) = add_del_times(mode, 30, lab);
        println!("| {mode:?} | {a50:.1} | {a90:.1} | {d50:.1} | {d90:.1} |");
    }
}
