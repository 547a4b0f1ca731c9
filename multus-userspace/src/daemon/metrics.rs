//! The daemon's metrics, rendered in the Prometheus text format (version 0.0.4) on
//! `:<metricsPort>/metrics`: calls by command and result code, their latency, calls in flight,
//! and refused peers. Label values are bounded: commands are the six CNI commands, codes the
//! CNI error codes the daemon can return.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex, time::Duration};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    calls: BTreeMap<(&'static str, u64), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    api: BTreeMap<&'static str, Histogram>,
    delegates: BTreeMap<(String, &'static str), Histogram>,
    refused_peers: u64,
}

/// The daemon's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Records a finished `/cni` call (`code` 0 is success).
    pub fn call(&self, command: &'static str, code: u64, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            *m.calls.entry((command, code)).or_default() += 1;
            m.latency
                .entry(command)
                .or_default()
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Records a Kubernetes API request a call made (`GET pod`, `GET nad`, `PATCH pod`).
    pub fn api_call(&self, operation: &'static str, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            m.api
                .entry(operation)
                .or_default()
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Records a delegate plugin call (`plugin` is a configured plugin type).
    pub fn delegate_call(&self, plugin: &str, command: &'static str, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            m.delegates
                .entry((plugin.to_string(), command))
                .or_default()
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Records a connection refused for its peer's uid.
    pub fn refused_peer(&self) {
        if let Ok(mut m) = self.inner.lock() {
            m.refused_peers += 1;
        }
    }

    /// The calls counted so far, as `(command, code, count)`.
    pub fn calls(&self) -> Vec<(&'static str, u64, u64)> {
        self.inner
            .lock()
            .map(|m| m.calls.iter().map(|((c, k), n)| (*c, *k, *n)).collect())
            .unwrap_or_default()
    }

    /// The text exposition, with the gauges the caller knows.
    pub fn render(
        &self,
        in_flight: usize,
        waiting: usize,
        ready: bool,
        caches: &[super::api::CacheState],
    ) -> String {
        let mut out = String::new();
        let Ok(m) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP multus_daemon_requests_total CNI calls answered, by command and CNI result code (0: success).\n# TYPE multus_daemon_requests_total counter\n");
        for ((command, code), n) in &m.calls {
            let _ = writeln!(
                out,
                "multus_daemon_requests_total{{command=\"{command}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP multus_daemon_request_duration_seconds Time from request to answer, by command.\n# TYPE multus_daemon_request_duration_seconds histogram\n");
        for (command, h) in &m.latency {
            h.render(
                &mut out,
                "multus_daemon_request_duration_seconds",
                &format!("command=\"{command}\""),
            );
        }
        out.push_str("# HELP multus_daemon_api_request_duration_seconds Kubernetes API requests the calls made (cache misses and status patches), by operation.\n# TYPE multus_daemon_api_request_duration_seconds histogram\n");
        for (operation, h) in &m.api {
            h.render(
                &mut out,
                "multus_daemon_api_request_duration_seconds",
                &format!("operation=\"{operation}\""),
            );
        }
        out.push_str("# HELP multus_daemon_delegate_duration_seconds Delegate plugin calls, by plugin type and command (in-process ebpf-sbr steps included).\n# TYPE multus_daemon_delegate_duration_seconds histogram\n");
        for ((plugin, command), h) in &m.delegates {
            h.render(
                &mut out,
                "multus_daemon_delegate_duration_seconds",
                &format!("plugin=\"{plugin}\",command=\"{command}\""),
            );
        }
        out.push_str("# HELP multus_daemon_watch_cache_objects Objects in a watch cache.\n# TYPE multus_daemon_watch_cache_objects gauge\n");
        for c in caches {
            let _ = writeln!(
                out,
                "multus_daemon_watch_cache_objects{{resource=\"{}\"}} {}",
                c.resource, c.objects
            );
        }
        out.push_str("# HELP multus_daemon_watch_cache_synced Whether a watch cache completed its first list.\n# TYPE multus_daemon_watch_cache_synced gauge\n");
        for c in caches {
            let _ = writeln!(
                out,
                "multus_daemon_watch_cache_synced{{resource=\"{}\"}} {}",
                c.resource,
                u8::from(c.synced)
            );
        }
        out.push_str("# HELP multus_daemon_watch_cache_last_event_age_seconds Seconds since a watch cache's last list or watch event.\n# TYPE multus_daemon_watch_cache_last_event_age_seconds gauge\n");
        for c in caches {
            if let Some(age) = c.last_event_age_seconds {
                let _ = writeln!(
                    out,
                    "multus_daemon_watch_cache_last_event_age_seconds{{resource=\"{}\"}} {age}",
                    c.resource
                );
            }
        }
        let _ = write!(
            out,
            "# HELP multus_daemon_in_flight_requests CNI calls running or waiting for a slot.\n# TYPE multus_daemon_in_flight_requests gauge\nmultus_daemon_in_flight_requests {in_flight}\n\
             # HELP multus_daemon_waiting_requests CNI calls waiting for a slot.\n# TYPE multus_daemon_waiting_requests gauge\nmultus_daemon_waiting_requests {waiting}\n\
             # HELP multus_daemon_ready Whether /readyz answers 200.\n# TYPE multus_daemon_ready gauge\nmultus_daemon_ready {}\n\
             # HELP multus_daemon_refused_peers_total Connections refused because the peer is not root.\n# TYPE multus_daemon_refused_peers_total counter\nmultus_daemon_refused_peers_total {}\n",
            u8::from(ready),
            m.refused_peers
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.call("ADD", 0, Duration::from_millis(3));
        m.call("ADD", 0, Duration::from_millis(30));
        m.call("DEL", 11, Duration::from_micros(10));
        m.api_call("GET pod", Duration::from_millis(2));
        m.delegate_call("bridge", "ADD", Duration::from_millis(20));
        let caches = [crate::daemon::api::CacheState {
            resource: "pods".into(),
            synced: true,
            objects: 3,
            last_event_age_seconds: Some(1.5),
            errors: 0,
        }];
        let text = m.render(2, 1, true, &caches);
        assert!(text.contains("multus_daemon_watch_cache_objects{resource=\"pods\"} 3\n"));
        assert!(text.contains(
            "multus_daemon_delegate_duration_seconds_count{plugin=\"bridge\",command=\"ADD\"} 1\n"
        ));
        assert!(text.contains(
            "multus_daemon_api_request_duration_seconds_count{operation=\"GET pod\"} 1\n"
        ));
        assert!(text.contains("multus_daemon_requests_total{command=\"ADD\",code=\"0\"} 2"));
        assert!(text.contains("multus_daemon_requests_total{command=\"DEL\",code=\"11\"} 1"));
        assert!(text.contains(
            "multus_daemon_request_duration_seconds_bucket{command=\"ADD\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "multus_daemon_request_duration_seconds_bucket{command=\"ADD\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "multus_daemon_request_duration_seconds_bucket{command=\"ADD\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("multus_daemon_in_flight_requests 2\n"));
        assert!(text.contains("multus_daemon_ready 1\n"));
    }
}
