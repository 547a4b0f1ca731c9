//! `multusctl stats [--watch]`: the per-interface counters of the SBR programs, summed over CPUs;
//! with `--watch`, a sample every interval with rates per second.

use std::{
    collections::HashMap,
    io::Write,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use serde::Serialize;

use super::{
    model::{ifnames, CountersView, Envelope, PodView},
    show::resolve,
    table::{or_dash, short_id, utc, Table},
    write_document, write_names, CtlError, Format, Node, EXIT_OK,
};

/// Options of `stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Only this container (id, unique id prefix, or namespace/pod).
    pub target: Option<String>,
    /// Sample again every --interval and show rates per second (until interrupted, or --count
    /// samples).
    #[arg(short, long)]
    pub watch: bool,
    /// Seconds between samples with --watch.
    #[arg(short, long, value_name = "SECONDS", default_value_t = 2.0)]
    pub interval: f64,
    /// With --watch, stop after this many samples.
    #[arg(short, long, value_name = "N")]
    pub count: Option<u64>,
}

/// One document of `stats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsBody {
    /// When the sample was taken (RFC 3339, UTC).
    pub time: String,
    /// Seconds since the previous sample (`null` for the first: no rates yet).
    pub interval_seconds: Option<f64>,
    /// One item per interface with counters.
    pub items: Vec<StatsItem>,
}

/// The counters of one interface of one container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsItem {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its pod.
    pub pod: Option<PodView>,
    /// Interface index.
    pub ifindex: u32,
    /// Interface name (`null` when unknown).
    pub ifname: Option<String>,
    /// Totals since the programs were loaded.
    pub counters: CountersView,
    /// Packets per second since the previous sample (`null` for the first sample, and when the
    /// counters went backwards: the pod's programs were reloaded).
    pub rates: Option<RatesView>,
}

/// Packets per second, field by field as in [`CountersView`].
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RatesView {
    /// Inspected.
    pub seen: f64,
    /// Source managed.
    pub matched: f64,
    /// Redirected away.
    pub redirected: f64,
    /// Redirected here.
    pub redirected_in: f64,
    /// Carrier fallback.
    pub fallback: f64,
    /// Passed.
    pub passed: f64,
    /// Dropped, no next hop.
    pub dropped_no_route: f64,
    /// Dropped, malformed.
    pub dropped_malformed: f64,
    /// Dropped, redirect failed.
    pub dropped_redirect: f64,
}

impl RatesView {
    fn between(old: &CountersView, new: &CountersView, secs: f64) -> Option<RatesView> {
        let o = old.fields();
        let n = new.fields();
        if secs <= 0.0 || o.iter().zip(n.iter()).any(|(a, b)| b.1 < a.1) {
            return None;
        }
        let r = |i: usize| (n[i].1 - o[i].1) as f64 / secs;
        Some(RatesView {
            seen: r(0),
            matched: r(1),
            redirected: r(2),
            redirected_in: r(3),
            fallback: r(4),
            passed: r(5),
            dropped_no_route: r(6),
            dropped_malformed: r(7),
            dropped_redirect: r(8),
        })
    }

    fn fields(&self) -> [f64; 9] {
        [
            self.seen,
            self.matched,
            self.redirected,
            self.redirected_in,
            self.fallback,
            self.passed,
            self.dropped_no_route,
            self.dropped_malformed,
            self.dropped_redirect,
        ]
    }
}

const COUNTER_HEADERS: [&str; 9] = [
    "SEEN",
    "MATCHED",
    "REDIRECTED",
    "REDIR-IN",
    "FALLBACK",
    "PASSED",
    "DROP:NOROUTE",
    "DROP:MALFORMED",
    "DROP:REDIRECT",
];

/// Writes counters as a table, one interface a row.
pub fn counters_table(
    rows: impl Iterator<Item = (Option<String>, u32, CountersView)>,
    out: &mut dyn Write,
    indent: &str,
) -> std::io::Result<()> {
    let mut headers = vec!["IFACE", "IFINDEX"];
    headers.extend(COUNTER_HEADERS);
    let mut t = Table::new(&headers);
    for (name, index, c) in rows {
        let mut row = vec![or_dash(name), index.to_string()];
        row.extend(c.fields().iter().map(|(_, v)| v.to_string()));
        t.row(row);
    }
    t.write(out, indent)
}

fn sample(node: &Node, args: &StatsArgs) -> Result<Vec<StatsItem>, CtlError> {
    let records = match &args.target {
        Some(t) => resolve(node, t, None)?,
        None => node.records()?,
    };
    let mut items = Vec::new();
    for rec in records {
        let Some(Ok(info)) = &rec.pins else { continue };
        let names = ifnames(info, None);
        let pod = rec
            .entry
            .as_ref()
            .and_then(|e| e.pod.as_ref())
            .map(PodView::from_ref);
        for (ifindex, c) in &info.counters {
            items.push(StatsItem {
                container_id: rec.id.clone(),
                pod: pod.clone(),
                ifindex: *ifindex,
                ifname: names.get(ifindex).cloned(),
                counters: c.into(),
                rates: None,
            });
        }
    }
    Ok(items)
}

fn now_utc() -> String {
    utc(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

/// Runs `stats`.
pub fn run(
    node: &Node,
    args: &StatsArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u8, CtlError> {
    let interval = Duration::from_secs_f64(if args.interval.is_finite() {
        args.interval.max(0.1)
    } else {
        2.0
    });
    let samples = if args.watch {
        args.count.unwrap_or(u64::MAX)
    } else {
        1
    };
    // SAFETY: isatty has no preconditions.
    let tty = unsafe { libc::isatty(1) } == 1;
    let mut previous: HashMap<(String, u32), CountersView> = HashMap::new();
    let mut last: Option<Instant> = None;
    let mut n = 0u64;
    while n < samples {
        if n > 0 {
            std::thread::sleep(interval);
        }
        let taken = Instant::now();
        let mut items = sample(node, args)?;
        let secs = last.map(|l| taken.duration_since(l).as_secs_f64());
        if let Some(secs) = secs {
            for it in &mut items {
                if let Some(old) = previous.get(&(it.container_id.clone(), it.ifindex)) {
                    it.rates = RatesView::between(old, &it.counters, secs);
                }
            }
        }
        previous = items
            .iter()
            .map(|i| ((i.container_id.clone(), i.ifindex), i.counters))
            .collect();
        last = Some(taken);
        let body = StatsBody {
            time: now_utc(),
            interval_seconds: secs,
            items,
        };
        let doc = Envelope::new("Stats", body);
        if !write_document(out, format, &doc, args.watch)? {
            match format {
                Format::Name => {
                    write_names(out, doc.body.items.iter().map(|i| i.container_id.as_str()))?
                }
                _ => {
                    if args.watch && tty {
                        write!(out, "\x1b[H\x1b[2J")?;
                    }
                    write_table(out, &doc.body, args.watch)?;
                }
            }
        }
        out.flush()?;
        n += 1;
    }
    Ok(EXIT_OK)
}

fn write_table(out: &mut dyn Write, body: &StatsBody, watch: bool) -> Result<(), CtlError> {
    match (watch, body.interval_seconds) {
        (true, Some(s)) => writeln!(
            out,
            "{}  packets per second over the last {s:.1} s (totals where no rate is known yet)",
            body.time
        )?,
        (true, None) => writeln!(out, "{}  totals (rates from the next sample on)", body.time)?,
        (false, _) => {}
    }
    if body.items.is_empty() {
        writeln!(out, "no SBR counters on this node")?;
        return Ok(());
    }
    let mut headers = vec!["CONTAINER", "POD", "IFACE"];
    headers.extend(COUNTER_HEADERS);
    let mut t = Table::new(&headers);
    for it in &body.items {
        let mut row = vec![
            short_id(&it.container_id),
            or_dash(it.pod.as_ref().map(|p| p.label())),
            or_dash(it.ifname.clone()),
        ];
        match &it.rates {
            Some(r) => row.extend(r.fields().iter().map(|v| format!("{v:.1}"))),
            None => row.extend(it.counters.fields().iter().map(|(_, v)| v.to_string())),
        }
        t.row(row);
    }
    t.write(out, "")?;
    if watch {
        writeln!(out)?;
    }
    Ok(())
}
