//! SBR counters for `/metrics`, read from the BPF maps at scrape time: one series per pod,
//! interface and counter (`multus_daemon_sbr_packets_total`). The pods are those with pins in the
//! bpffs directory (`ebpfSbr.bpffsDir` of the daemon configuration, else the default), so the
//! labels are bounded by the node's pods; the pod's name comes from the delegate cache.

use std::{fmt::Write, path::PathBuf};

use serde_json::{Map, Value};

use crate::{
    config::netconf::DEFAULT_CNI_DIR,
    delegate::cache::Cache,
    sbr::{self, IfCounters, SbrConfig},
};

/// Where the daemon's SBR pins and cache are.
#[derive(Clone, Debug)]
pub struct SbrSource {
    /// The SBR library's settings (its bpffs directory).
    pub cfg: SbrConfig,
    /// The delegate cache (pod names).
    pub cni_dir: PathBuf,
}

impl SbrSource {
    /// From the daemon configuration's overlay keys.
    pub fn from_overlay(overlay: &Map<String, Value>) -> SbrSource {
        let bpffs = overlay
            .get("ebpfSbr")
            .and_then(|o| o.get("bpffsDir"))
            .and_then(Value::as_str)
            .unwrap_or(sbr::DEFAULT_BPFFS_DIR);
        let cni_dir = overlay
            .get("cniDir")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_CNI_DIR);
        SbrSource {
            cfg: SbrConfig::new(bpffs),
            cni_dir: cni_dir.into(),
        }
    }

    /// The counters in the text format (nothing when there are no pins).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(pods) = sbr::pods(&self.cfg) else {
            return out;
        };
        if pods.is_empty() {
            return out;
        }
        out.push_str("# HELP multus_daemon_sbr_packets_total Packets seen by the SBR programs, per pod, interface and counter (summed over CPUs).\n# TYPE multus_daemon_sbr_packets_total counter\n");
        let cache = Cache::new(&self.cni_dir);
        for id in pods {
            let Ok(info) = sbr::inspect(&self.cfg, &id) else {
                continue;
            };
            let pod = crate::cni::ContainerId::parse(&id)
                .ok()
                .and_then(|id| cache.read(&id).ok().flatten())
                .and_then(|e| e.pod)
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .unwrap_or_default();
            for (ifindex, c) in &info.counters {
                let ifname = info
                    .interfaces
                    .iter()
                    .find(|i| i.ifindex == *ifindex)
                    .map(|i| i.ifname.clone())
                    .unwrap_or_else(|| format!("if{ifindex}"));
                for (counter, n) in named(c) {
                    let _ = writeln!(
                        out,
                        "multus_daemon_sbr_packets_total{{container=\"{id}\",pod=\"{pod}\",interface=\"{ifname}\",counter=\"{counter}\"}} {n}"
                    );
                }
            }
        }
        out
    }
}

fn named(c: &IfCounters) -> [(&'static str, u64); 9] {
    [
        ("seen", c.seen),
        ("matched", c.matched),
        ("redirected", c.redirected),
        ("redirected_in", c.redirected_in),
        ("fallback", c.fallback),
        ("passed", c.passed),
        ("dropped_no_route", c.dropped_no_route),
        ("dropped_malformed", c.dropped_malformed),
        ("dropped_redirect", c.dropped_redirect),
    ]
}
