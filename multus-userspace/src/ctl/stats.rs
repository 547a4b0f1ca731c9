//! `multusctl stats [--watch]`: the per-interface counters of the SBR programs, summed over CPUs;
//! with `--watch`, a sample every interval with rates per second.

use std::{
    collections::HashMap,
    io::Write,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use multus_common::{Counters, COUNTER_HEADERS};
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

/// Packets per second, counter by counter.
pub type RatesView = CountersView<f64>;

impl RatesView {
    fn between(old: &CountersView, new: &CountersView, secs: f64) -> Option<RatesView> {
        let (o, n) = (old.values(), new.values());
        if secs <= 0.0 || o.iter().zip(&n).any(|(a, b)| b < a) {
            return None;
        }
        let rates = std::array::from_fn(|i| (n[i] - o[i]) as f64 / secs);
        Some(CountersView(Counters::from_array(rates)))
    }
}

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
        row.extend(c.values().iter().map(u64::to_string));
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
                container_id: rec.id.to_string(),
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
            Some(r) => row.extend(r.values().iter().map(|v| format!("{v:.1}"))),
            None => row.extend(it.counters.values().iter().map(u64::to_string)),
        }
        t.row(row);
    }
    t.write(out, "")?;
    if watch {
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use multus_common::{IfCounters, COUNTER_NAMES};
    use serde_json::json;

    use super::*;

    #[test]
    fn totals_and_rates_have_the_same_keys_in_field_order() {
        let old = CountersView(IfCounters::from_array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
        let new = CountersView(old.0.map(|v| v + 10));
        let rates = RatesView::between(&old, &new, 2.0).expect("rates");
        assert_eq!(rates.values(), [5.0; 9]);
        for (view, first) in [
            (serde_json::to_value(new).unwrap(), json!(11)),
            (serde_json::to_value(rates).unwrap(), json!(5.0)),
        ] {
            let keys: Vec<&str> = view
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, COUNTER_NAMES);
            assert_eq!(view["seen"], first);
        }
        assert_eq!(
            serde_json::to_value(new).unwrap()["droppedRedirect"],
            json!(19)
        );
        // counters that went backwards (programs reloaded) give no rates
        assert!(RatesView::between(&new, &old, 2.0).is_none());
        assert!(RatesView::between(&old, &new, 0.0).is_none());
    }
}
