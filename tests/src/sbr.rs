//! Driving the eBPF SBR library in tests: one private bpffs and container id per harness, counters
//! by interface name, and the "nothing left behind" assertion.

use multus::sbr::{self, IfCounters, InterfaceSpec, SbrConfig, SbrError};

use crate::{bpffs::Bpffs, netns::Netns};

/// SBR for one test: its own bpffs mount and container id.
pub struct Harness {
    /// The private bpffs.
    pub bpffs: Bpffs,
    /// The configuration given to the library.
    pub cfg: SbrConfig,
    /// The container id.
    pub container_id: String,
}

impl Harness {
    /// A harness with a fresh bpffs.
    pub fn new() -> Self {
        let bpffs = Bpffs::new();
        let cfg = SbrConfig::new(bpffs.path());
        Self { bpffs, cfg, container_id: crate::netns::unique_name("ctr") }
    }

    /// ADD, panicking on failure.
    pub fn add(&self, pod: &Netns, spec: &InterfaceSpec) -> sbr::AddReport {
        sbr::add(&self.cfg, &self.container_id, &pod.path(), spec).unwrap_or_else(|e| panic!("sbr add: {e}"))
    }

    /// DEL, panicking on failure.
    pub fn del(&self, pod: &Netns, ifname: &str) {
        sbr::del(&self.cfg, &self.container_id, Some(&pod.path()), ifname).unwrap_or_else(|e| panic!("sbr del: {e}"));
    }

    /// CHECK.
    pub fn check(&self, pod: &Netns, spec: &InterfaceSpec) -> Result<(), SbrError> {
        sbr::check(&self.cfg, &self.container_id, &pod.path(), spec)
    }

    /// Counters of the pod's interface `ifname` (zero when the programs never saw it).
    pub fn counters(&self, pod: &Netns, ifname: &str) -> IfCounters {
        let index = ifindex(pod, ifname);
        let info = sbr::inspect(&self.cfg, &self.container_id).unwrap_or_else(|e| panic!("inspect: {e}"));
        info.counters.iter().find(|(i, _)| *i == index).map(|(_, c)| *c).unwrap_or_default()
    }

    /// Asserts that nothing of SBR is left: no pins, no carrier, no routes or neighbours with
    /// SBR's protocol, and that the pod's routes and rules equal `routes_before`/`rules_before`.
    pub fn assert_clean(&self, pod: &Netns, routes_before: &[String], rules_before: &[String]) {
        assert_eq!(self.bpffs.entries(), Vec::<String>::new(), "pins left behind");
        let links = pod.links();
        assert!(!links.iter().any(|l| l.starts_with(sbr::CARRIER_IFNAME)), "carrier left behind: {links:?}");
        assert_eq!(pod.all_routes(), routes_before, "routes differ from before ADD");
        assert_eq!(pod.rules(), rules_before, "rules differ from before ADD");
        let neigh = pod.ip(&["neigh", "show", "proto", "83"]);
        assert!(String::from_utf8_lossy(&neigh.stdout).trim().is_empty(), "SBR neighbour entries left behind");
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// The index of an interface in a namespace.
pub fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    let out = ns.ip(&["-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v[0]["ifindex"].as_u64().unwrap_or_else(|| panic!("no ifindex for {ifname}")) as u32
}
