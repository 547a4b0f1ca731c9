//! Driving the eBPF SBR library in tests: one private bpffs and container id per harness, counters
//! by interface name, and the "nothing left behind" assertion.

use std::path::Path;

use multus::sbr::{self, AttachMode, IfCounters, InterfaceSpec, SbrConfig, SbrError};

use crate::{bpffs::Bpffs, netns::Netns};

/// SBR for one test: its own bpffs mount and container id.
pub struct Harness {
    /// The private bpffs.
    pub bpffs: Bpffs,
    /// The configuration given to the library.
    pub cfg: SbrConfig,
    /// The container id.
    pub container_id: multus::cni::ContainerId,
}

impl Harness {
    /// A harness with a fresh bpffs.
    pub fn new() -> Self {
        let bpffs = Bpffs::new();
        let cfg = SbrConfig::new(bpffs.path());
        Self {
            bpffs,
            cfg,
            container_id: cid(&crate::netns::unique_name("ctr")),
        }
    }

    /// A harness with a fresh bpffs whose pods are attached in `mode`.
    pub fn with_mode(mode: AttachMode) -> Self {
        let mut h = Self::new();
        h.cfg.attach_mode = mode;
        h
    }

    /// ADD, panicking on failure.
    pub fn add(&self, pod: &Netns, spec: &InterfaceSpec) -> sbr::AddReport {
        sbr::add(&self.cfg, &self.container_id, pod.path(), spec)
            .unwrap_or_else(|e| panic!("sbr add: {e}"))
    }

    /// DEL, panicking on failure.
    pub fn del(&self, pod: &Netns, ifname: &str) {
        sbr::del(&self.cfg, &self.container_id, Some(pod.path()), ifname)
            .unwrap_or_else(|e| panic!("sbr del: {e}"));
    }

    /// CHECK.
    pub fn check(&self, pod: &Netns, spec: &InterfaceSpec) -> Result<(), SbrError> {
        sbr::check(&self.cfg, &self.container_id, pod.path(), spec)
    }

    /// Counters of the pod's interface `ifname` (zero when the programs never saw it).
    pub fn counters(&self, pod: &Netns, ifname: &str) -> IfCounters {
        let index = ifindex(pod, ifname);
        let info =
            sbr::inspect(&self.cfg, &self.container_id).unwrap_or_else(|e| panic!("inspect: {e}"));
        info.counters
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    /// Asserts that nothing of SBR is left: no pins, no carrier, no routes or neighbours with
    /// SBR's protocol, and that the pod's routes and rules equal `routes_before`/`rules_before`.
    pub fn assert_clean(&self, pod: &Netns, routes_before: &[String], rules_before: &[String]) {
        assert_eq!(
            self.bpffs.entries(),
            Vec::<String>::new(),
            "pins left behind"
        );
        let links = pod.link_names();
        assert!(
            !links.iter().any(|l| l.starts_with(sbr::CARRIER_IFNAME)),
            "carrier left behind: {links:?}"
        );
        assert_eq!(
            pod.all_routes(),
            routes_before,
            "routes differ from before ADD"
        );
        assert_eq!(pod.rules(), rules_before, "rules differ from before ADD");
        let neigh = pod.ip(&["neigh", "show", "proto", "83"]);
        assert!(
            String::from_utf8_lossy(&neigh.stdout).trim().is_empty(),
            "SBR neighbour entries left behind"
        );
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
    v[0]["ifindex"]
        .as_u64()
        .unwrap_or_else(|| panic!("no ifindex for {ifname}")) as u32
}

/// The program directories (`_sbr-...`) under a bpffs directory.
pub fn program_dirs(bpffs_dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(bpffs_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("_sbr-"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The pod cookie of every entry of a node-wide map (`src`, `defaults`, `counters`, `users`) of
/// the programs under `bpffs_dir`, read with bpftool (keys start with the cookie, little-endian).
pub fn node_map_cookies(bpffs_dir: &Path, map: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for dir in program_dirs(bpffs_dir) {
        let pin = bpffs_dir.join(dir).join(format!("map-{map}"));
        let dump = crate::netns::run(
            "bpftool",
            &["-j", "map", "dump", "pinned", &pin.to_string_lossy()],
        );
        let v: serde_json::Value = serde_json::from_slice(&dump.stdout).expect("bpftool json");
        for entry in v.as_array().cloned().unwrap_or_default() {
            let key: Vec<u8> = entry["key"]
                .as_array()
                .expect("key bytes")
                .iter()
                .map(|b| {
                    u8::from_str_radix(b.as_str().expect("hex").trim_start_matches("0x"), 16)
                        .expect("byte")
                })
                .collect();
            out.push(u64::from_le_bytes(key[..8].try_into().expect("8 bytes")));
        }
    }
    out.sort();
    out
}

/// Waits up to 5 s until the pod has no carrier, active or retired (`sbrdel-*`): the kernel
/// deletes a retired one in the background once DEL drops its anchor namespace. Returns whether
/// they went.
pub fn carriers_gone(pod: &Netns) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pod
        .link_names()
        .iter()
        .any(|l| l.starts_with("sbrdel-") || l.starts_with(sbr::CARRIER_IFNAME))
    {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// The tc filters and the clsact qdisc left on a pod's interface (empty when SBR left none).
pub fn tc_leftovers(pod: &Netns, ifname: &str) -> Vec<String> {
    let mut out = Vec::new();
    for hook in ["egress", "ingress"] {
        let f = pod.exec("tc", &["filter", "show", "dev", ifname, hook]);
        out.extend(
            String::from_utf8_lossy(&f.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    let q = pod.exec("tc", &["qdisc", "show", "dev", ifname]);
    out.extend(
        String::from_utf8_lossy(&q.stdout)
            .lines()
            .filter(|l| l.contains("clsact"))
            .map(String::from),
    );
    out
}

/// A container id the test made (valid by construction).
pub fn cid(id: &str) -> multus::cni::ContainerId {
    multus::cni::ContainerId::parse(id).unwrap_or_else(|e| panic!("{e}"))
}
