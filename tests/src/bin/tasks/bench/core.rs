//! `cargo xtask bench core`: ADD and DEL of multus with two delegates against the same two
//! delegates called directly (as a runtime would), in one run; and the VERSION answer time.

use std::path::Path;

use anyhow::{ensure, Result};
use serde_json::Value;
use testkit::{bins, confs, CniCall, Netns, Node};

use super::{
    direct_pair, report,
    stats::{ms, Samples},
};

pub fn run(bins_dir: &Path, cycles: usize) -> Result<()> {
    let node = Node::new();
    let multus = bins_dir.join("multus");
    node.install("multus", &multus);
    let a = confs::bridge("net-a", "br-a", "10.10.0.0/24", "1.0.0", &node.ipam_dir());
    let b = confs::bridge("net-b", "br-b", "10.20.0.0/24", "1.0.0", &node.ipam_dir());
    let mut conf = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![a.clone(), b.clone()],
    );
    // multus logs its own elapsed time per call ("done … elapsed="): the bench reads it back to
    // split the overhead into process start/exit and multus's own work.
    let log = node.root().join("multus.log");
    conf["logLevel"] = Value::from("debug");
    conf["logFile"] = Value::from(log.display().to_string());
    conf["logToStderr"] = Value::from(false);
    let bridge = bins::reference("bridge");
    let (mut d_add, mut d_del, mut m_add, mut m_del) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    // One pod namespace per path, reused (DEL leaves it empty): creating and destroying namespaces
    // between timed calls would put the kernel's asynchronous namespace cleanup into the figures.
    let (direct_pod, multus_pod) = (Netns::new("bp"), Netns::new("bp"));
    // Warm-up (creates the bridges, fills the page cache).
    for i in 0..3 {
        let pod = &multus_pod;
        let id = format!("warm{i}");
        CniCall::new(&node, "ADD", &id, Some(pod), "eth0")
            .run(&node, &multus, &conf)
            .assert_ok();
        CniCall::new(&node, "DEL", &id, Some(pod), "eth0")
            .run(&node, &multus, &conf)
            .assert_ok();
    }
    for i in 0..cycles {
        let direct_first = i % 2 == 0;
        for round in 0..2 {
            if (round == 0) == direct_first {
                let id = format!("direct{i}");
                let (add, del) = direct_pair(&node, &bridge, &direct_pod, &id, &a, &b);
                d_add.push(add);
                d_del.push(del);
            } else {
                let id = format!("multus{i}");
                let add = CniCall::new(&node, "ADD", &id, Some(&multus_pod), "eth0")
                    .run(&node, &multus, &conf);
                add.assert_ok();
                let del = CniCall::new(&node, "DEL", &id, Some(&multus_pod), "eth0")
                    .run(&node, &multus, &conf);
                del.assert_ok();
                m_add.push(add.elapsed);
                m_del.push(del.elapsed);
            }
        }
    }
    let (mut v_multus, mut v_bridge, mut floor) =
        (Samples::default(), Samples::default(), Samples::default());
    let mut version = CniCall::new(&node, "VERSION", "", None, "");
    version.unset = vec![
        "CNI_CONTAINERID".into(),
        "CNI_IFNAME".into(),
        "CNI_NETNS".into(),
    ];
    for _ in 0..cycles {
        let t = version.run_bytes(&node, &multus, br#"{"cniVersion":"1.0.0"}"#);
        t.assert_ok();
        v_multus.push(t.elapsed);
        let t = version.run_bytes(&node, &bridge, br#"{"cniVersion":"1.0.0"}"#);
        t.assert_ok();
        v_bridge.push(t.elapsed);
        // The floor: one process exec through the same harness (what any meta-plugin adds).
        let t = version.run_bytes(&node, std::path::Path::new("/bin/true"), b"");
        t.assert_ok();
        floor.push(t.elapsed);
    }
    let (internal_add, internal_del, own_add, own_del) = internal_times(&log);
    let (outside_add, outside_del) = (m_add.minus(&internal_add), m_del.minus(&internal_del));
    let add_over = m_add.minus(&d_add);
    let del_over = m_del.minus(&d_del);
    let row = |name: &str, s: &Samples| format!("| {name} | {} | {} |", ms(s.p50()), ms(s.p90()));
    let body = format!(
        "## core: multus with two delegates vs the delegates called directly\n\n\
         Command: `cargo xtask bench core --cycles {cycles}` (release build) · {}\n\n\
         Two `bridge` + `host-local` networks (Debian containernetworking-plugins). Each cycle adds and deletes one pod \
         sandbox (the same empty pod namespace each time) through `multus` and, alternately first, the same two delegates called directly the way a runtime \
         would (two ADDs, two DELs). Times are wall-clock per CNI call, including process start.\n\n\
         | measurement | p50 | p90 |\n|---|---|---|\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n\n\
         | ratio | p50 |\n|---|---|\n| multus ADD / direct ADD | {:.3} |\n| multus DEL / direct DEL | {:.3} |\n\n\
         Goals: overhead ≤ 1 ms p50 on ADD and on DEL (the Go reference adds 4–6 ms and 8–12 ms here); VERSION ≤ 2 ms \
         (reference 7.5 ms). Overhead = paired per-cycle difference (multus − direct); DEL times are dominated by the \
         kernel's RCU waits when veths are deleted, so the DEL difference is mostly noise. The → rows split multus's \
         cost per call from its own debug log (level debug, written to a file during this run): its own work (config, \
         plan, lock, cache, result conversion) and the process start/exit around it. A meta-plugin is one more process \
         than the delegates alone; the floor row is what one exec of a trivial binary costs through the same harness.\n",
        report::machine(),
        row("direct ADD (2 delegates)", &d_add),
        row("multus ADD", &m_add),
        row("overhead ADD (paired)", &add_over),
        row("direct DEL (2 delegates)", &d_del),
        row("multus DEL", &m_del),
        row("overhead DEL (paired)", &del_over),
        row("multus ADD as multus itself measures it (start of its work to the result)", &internal_add),
        row("multus DEL as multus itself measures it", &internal_del),
        row("→ multus's own work in ADD (its elapsed minus its delegates')", &own_add),
        row("→ multus's own work in DEL", &own_del),
        row("→ process start, config parse and exit in ADD (wall minus its elapsed)", &outside_add),
        row("→ process start, config parse and exit in DEL", &outside_del),
        row("multus VERSION", &v_multus),
        row("bridge VERSION (Go, for scale)", &v_bridge),
        row("floor: exec of /bin/true", &floor),
        m_add.p50() / d_add.p50(),
        m_del.p50() / d_del.p50(),
    );
    println!("{body}");
    ensure!(
        m_add.0.len() == cycles && d_add.0.len() == cycles,
        "incomplete samples"
    );
    report::write_section("core", &body)
}

/// From multus's debug log of the timed calls (warm-up skipped): its elapsed time per ADD and DEL,
/// and that time minus the durations of the delegate calls it made (its own work).
fn internal_times(log: &std::path::Path) -> (Samples, Samples, Samples, Samples) {
    let (mut add, mut del, mut own_add, mut own_del) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut delegates_us = 0.0;
    for line in text.lines() {
        if line.contains("delegate returned") {
            delegates_us += line
                .split("elapsed_us=")
                .nth(1)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            continue;
        }
        if !line.contains(" done ") {
            continue;
        }
        let spent = std::mem::take(&mut delegates_us);
        if line.contains("container=warm") {
            continue;
        }
        let Some(e) = line.split("elapsed=").nth(1) else {
            continue;
        };
        let us = if let Some(ms) = e.strip_suffix("ms") {
            ms.parse::<f64>().map(|v| v * 1000.0)
        } else if let Some(us) = e.strip_suffix("µs") {
            us.parse::<f64>()
        } else {
            continue;
        };
        let Ok(us) = us else { continue };
        let d = |us: f64| std::time::Duration::from_secs_f64(us.max(0.0) / 1e6);
        if line.contains("command=ADD") {
            add.push(d(us));
            own_add.push(d(us - spent));
        } else if line.contains("command=DEL") {
            del.push(d(us));
            own_del.push(d(us - spent));
        }
    }
    (add, del, own_add, own_del)
}
