//! `cargo xtask bench <core|kube|sbr|thick>`: measured side by side with the reference in one run,
//! reported as p50/p90 and ratios in docs/benchmarks.md together with the command.

mod core;
mod kube;
pub mod report;
mod sbr;
mod thick;
mod thick_parts;

use anyhow::Result;
use clap::Subcommand;
pub use testkit::stats;

/// Which benchmark.
#[derive(Subcommand, Clone, Copy)]
pub enum Which {
    /// ADD/DEL of multus with two delegates vs the delegates called directly, and VERSION.
    Core {
        /// Cycles.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
    },
    /// ADD of an annotated pod with the API round trips (stand-in on loopback) vs direct delegates.
    Kube {
        /// Cycles.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
    },
    /// The `ebpf-sbr` plugin vs Debian's sbr vs no SBR on the §5 topology: ADD/DEL time, iperf3
    /// throughput (primary and net1 paths, MTU mismatch), UDP request/response latency.
    Sbr {
        /// ADD/DEL cycles per plugin.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
        /// iperf3 repetitions per measurement (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 2)]
        secs: u32,
    },
    /// Thick mode: shim + daemon vs thin multus vs direct delegates, with and without the API;
    /// the daemon's RSS with many pods and NADs cached, and its start-to-ready time.
    Thick {
        /// Cycles.
        #[arg(long, default_value_t = 100)]
        cycles: usize,
        /// Pods on the node for the RSS measurement.
        #[arg(long, default_value_t = 1000)]
        pods: usize,
        /// NADs in the caches for the RSS measurement.
        #[arg(long, default_value_t = 500)]
        nads: usize,
        /// Print the figures without writing them into docs/benchmarks.md (a smoke run).
        #[arg(long)]
        no_write: bool,
    },
}

pub fn run(which: Which, bins: &std::path::Path) -> Result<()> {
    match which {
        Which::Core { cycles } => core::run(bins, cycles),
        Which::Kube { cycles } => kube::run(bins, cycles),
        Which::Sbr { cycles, reps, secs } => sbr::run(bins, cycles, reps, secs),
        Which::Thick {
            cycles,
            pods,
            nads,
            no_write,
        } => thick::run(bins, cycles, pods, nads, !no_write),
    }
}

/// Two networks called directly, as a runtime calls two networks (bridge for both): ADD `a` as
/// eth0 and `b` as net1, then DEL in reverse with their results. Returns (ADD, DEL) wall time.
pub fn direct_pair(
    node: &testkit::Node,
    bridge: &std::path::Path,
    pod: &testkit::Netns,
    id: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> (std::time::Duration, std::time::Duration) {
    use testkit::CniCall;
    let t = std::time::Instant::now();
    let ra = CniCall::new(node, "ADD", id, Some(pod), "eth0").run(node, bridge, a);
    ra.assert_ok();
    let rb = CniCall::new(node, "ADD", id, Some(pod), "net1").run(node, bridge, b);
    rb.assert_ok();
    let add = t.elapsed();
    let mut da = a.clone();
    da["prevResult"] = ra.json.clone().unwrap_or_default();
    let mut db = b.clone();
    db["prevResult"] = rb.json.clone().unwrap_or_default();
    let t = std::time::Instant::now();
    CniCall::new(node, "DEL", id, Some(pod), "net1")
        .run(node, bridge, &db)
        .assert_ok();
    CniCall::new(node, "DEL", id, Some(pod), "eth0")
        .run(node, bridge, &da)
        .assert_ok();
    (add, t.elapsed())
}
