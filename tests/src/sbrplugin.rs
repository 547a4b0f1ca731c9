//! The §5 topology with net1 made by a Debian main plugin (bridge, ptp or macvlan, run in r1) and
//! source-based routing by nothing, by the `ebpf-sbr` binary, or by Debian's sbr, chained in one
//! conflist that is run the way libcni runs it ([`crate::chain`]).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::{
    bins,
    bpffs::Bpffs,
    chain::Runtime,
    netns::unique_name,
    topo::{Net1, Options, Sbr5, MACVLAN_MASTER, ROUTER_POD_IF},
};

/// Which source-based routing is chained after the main plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// None: the main plugin alone.
    None,
    /// The `ebpf-sbr` binary.
    Ebpf,
    /// Debian's `sbr` 1.1.1.
    Debian,
}

impl Mode {
    /// All three, in the order the comparisons print them.
    pub const ALL: [Mode; 3] = [Mode::None, Mode::Ebpf, Mode::Debian];
}

/// The IPAM of net1: exactly 10.1.0.2/24 and fd01::2/64, gateways r1's 10.1.0.1 and fd01::1.
pub fn net1_ipam(data_dir: &Path) -> Value {
    json!({"type": "host-local", "dataDir": data_dir, "ranges": [
        [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.2", "rangeEnd": "10.1.0.2", "gateway": "10.1.0.1"}],
        [{"subnet": "fd01::/64", "rangeStart": "fd01::2", "rangeEnd": "fd01::2", "gateway": "fd01::1"}]]})
}

/// The main plugin that makes net1 (run in r1).
pub fn main_plugin(net1: Net1, mtu: u32, data_dir: &Path) -> Value {
    let ipam = net1_ipam(data_dir);
    match net1 {
        Net1::Bridge => {
            json!({"type": "bridge", "bridge": ROUTER_POD_IF, "isGateway": true, "mtu": mtu, "ipam": ipam})
        }
        Net1::Ptp => json!({"type": "ptp", "mtu": mtu, "ipam": ipam}),
        Net1::Macvlan => {
            json!({"type": "macvlan", "master": MACVLAN_MASTER, "mode": "bridge", "mtu": mtu, "ipam": ipam})
        }
        Net1::Veth => panic!("Net1::Veth is made by the topology, not by a plugin"),
    }
}

/// The SBR plugin of a mode (sbr's own configuration; `ebpf-sbr` gets the private bpffs).
pub fn sbr_plugin(mode: Mode, bpffs_dir: &Path) -> Option<Value> {
    match mode {
        Mode::None => None,
        Mode::Ebpf => Some(json!({"type": "ebpf-sbr", "bpffsDir": bpffs_dir})),
        Mode::Debian => Some(json!({"type": "sbr"})),
    }
}

/// A conflist: the main plugin, then the mode's SBR plugin.
pub fn conflist(net1: Net1, mtu: u32, mode: Mode, data_dir: &Path, bpffs_dir: &Path) -> Value {
    let mut plugins = vec![main_plugin(net1, mtu, data_dir)];
    plugins.extend(sbr_plugin(mode, bpffs_dir));
    json!({"cniVersion": "1.0.0", "name": "net1-sbr", "plugins": plugins})
}

/// Plugin search path: the product binaries, then Debian's plugins.
pub fn plugin_path() -> Vec<PathBuf> {
    let ebpf = bins::product("ebpf-sbr");
    vec![
        ebpf.parent().expect("bin dir").to_path_buf(),
        PathBuf::from(bins::REFERENCE_PLUGINS),
    ]
}

/// One pod of the §5 topology whose net1 was added by a conflist.
pub struct PluginPod {
    /// The topology.
    pub t: Sbr5,
    /// The runtime view of the net1 attachment (plugins run in r1).
    pub rt: Runtime,
    /// The conflist.
    pub list: Value,
    /// The result of ADD.
    pub result: Value,
    /// The SBR mode.
    pub mode: Mode,
    /// The main plugin.
    pub net1: Net1,
    /// Private bpffs of `ebpf-sbr`.
    pub bpffs: Bpffs,
    /// host-local data.
    pub data: tempfile::TempDir,
    deleted: bool,
}

impl PluginPod {
    /// Builds the topology with `o` (its `net1` replaced by `net1`) and runs ADD of the conflist.
    pub fn new(net1: Net1, mode: Mode, o: Options) -> PluginPod {
        let o = Options { net1, ..o };
        let t = Sbr5::with(o.clone());
        let bpffs = Bpffs::new();
        let data = tempfile::Builder::new()
            .prefix("sbr-ipam-")
            .tempdir()
            .expect("tempdir");
        let list = conflist(net1, o.net1_mtu, mode, data.path(), bpffs.path());
        let rt = Runtime {
            host: t.r1.path().to_path_buf(),
            path: plugin_path(),
            container_id: unique_name("ctr"),
            netns: t.pod.path().to_path_buf(),
            ifname: "net1".into(),
        };
        let result = rt.add(&list).unwrap_or_else(|f| {
            panic!(
                "ADD of {} failed ({mode:?}): {}\n{}",
                f.plugin, f.out.stdout, f.out.stderr
            )
        });
        PluginPod {
            t,
            rt,
            list,
            result,
            mode,
            net1,
            bpffs,
            data,
            deleted: false,
        }
    }

    /// r1's interface towards the pod (the bridge, ptp's host-side veth, r1's macvlan).
    pub fn router_if(&self) -> String {
        match self.net1 {
            Net1::Ptp => self.result["interfaces"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|i| i.get("sandbox").is_none_or(|s| s.as_str() == Some("")))
                })
                .and_then(|i| i["name"].as_str())
                .expect("ptp's host-side interface")
                .to_string(),
            _ => ROUTER_POD_IF.to_string(),
        }
    }

    /// Packets received from the pod by r0 (eth0's router) and r1 (net1's).
    pub fn router_rx(&self) -> (u64, u64) {
        (
            self.t.r0.link_packets(ROUTER_POD_IF).0,
            self.t.r1.link_packets(&self.router_if()).0,
        )
    }

    /// Pings `dst` from cli2 `n` times: (replies, packets r0 received, packets r1 received).
    pub fn ping_from_cli2(&self, dst: &str, n: u32) -> (u32, u64, u64) {
        let (r0, r1) = self.router_rx();
        let got = self.t.cli2.ping(dst, n, &[]);
        let (r0b, r1b) = self.router_rx();
        (got, r0b - r0, r1b - r1)
    }

    /// CHECK of the whole chain with the ADD result.
    pub fn check(&self) -> Result<(), crate::chain::Failed> {
        self.rt.check(&self.list, &self.result)
    }

    /// DEL of the chain, asserting every plugin succeeded and (for `ebpf-sbr`) that no pin, carrier
    /// or SBR neighbour is left.
    pub fn del(&mut self) {
        let failed = self.rt.del(&self.list, Some(&self.result));
        self.deleted = true;
        if let Some(f) = failed.first() {
            panic!(
                "DEL of {} failed ({:?}): {}\n{}",
                f.plugin, self.mode, f.out.stdout, f.out.stderr
            );
        }
        if self.mode == Mode::Ebpf {
            assert_eq!(
                self.bpffs.entries(),
                Vec::<String>::new(),
                "pins left behind"
            );
            assert!(
                !self
                    .t
                    .pod
                    .link_names()
                    .iter()
                    .any(|l| l.starts_with(multus::sbr::CARRIER_IFNAME)),
                "carrier left behind"
            );
            let neigh = self.t.pod.ip(&["neigh", "show", "proto", "83"]);
            assert!(
                String::from_utf8_lossy(&neigh.stdout).trim().is_empty(),
                "SBR neighbours left behind"
            );
        }
    }
}

impl Drop for PluginPod {
    fn drop(&mut self) {
        if !self.deleted {
            // Best effort (a test failed): release the pins before the bpffs goes.
            let _ = self.rt.del(&self.list, Some(&self.result));
        }
    }
}
