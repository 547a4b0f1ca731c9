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
    topo::{Net1, Options, Sbr5, MACVLAN_MASTER, POD_NET1_V4, POD_NET1_V6, ROUTER_POD_IF},
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

/// `multus` (run in r1, the node of net1) with a cluster network (the recorder reports the eth0
/// the topology made) and a NAD-style conflist for net1, its `ebpfSbr` options given and its
/// `bpffsDir` the harness's private bpffs.
pub struct MultusPod {
    /// The topology.
    pub t: Sbr5,
    /// The runtime view of the pod (CNI_IFNAME eth0, plugins run in r1).
    pub rt: Runtime,
    /// multus's configuration.
    pub conf: Value,
    /// The private bpffs and the container id.
    pub h: crate::sbr::Harness,
    /// Plugin directory, cache and IPAM data.
    pub dirs: tempfile::TempDir,
}

impl MultusPod {
    /// The topology with `net1` made by `net1`'s plugin followed by `net1_plugins`, and multus
    /// with `ebpf_sbr` as its `ebpfSbr` options.
    pub fn new(net1: Net1, net1_plugins: Vec<Value>, ebpf_sbr: Value) -> MultusPod {
        let t = Sbr5::with(Options {
            net1,
            ..Options::default()
        });
        let h = crate::sbr::Harness::new();
        let dirs = tempfile::Builder::new()
            .prefix("sbr-multus-")
            .tempdir()
            .expect("tempdir");
        let bin = dirs.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for (name, path) in [
            ("multus", bins::product("multus")),
            ("ebpf-sbr", bins::product("ebpf-sbr")),
            ("cni-recorder", bins::test_bin("cni-recorder")),
        ] {
            std::os::unix::fs::symlink(path, bin.join(name)).expect("symlink");
        }
        let eth0 = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": t.pod.path()}],
            "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}]});
        let cluster = json!({"cniVersion": "1.0.0", "name": "cluster", "type": "cni-recorder", "result": eth0});
        let mut plugins = vec![main_plugin(net1, 1500, &dirs.path().join("ipam"))];
        plugins.extend(net1_plugins);
        let nad = json!({"cniVersion": "1.0.0", "name": "net1-nad", "plugins": plugins});
        let mut conf = crate::confs::multus(
            "1.0.0",
            &dirs.path().join("cache"),
            &bin,
            vec![cluster, nad],
        );
        let mut opts = ebpf_sbr;
        opts["bpffsDir"] = json!(h.bpffs.path());
        conf["ebpfSbr"] = opts;
        let rt = Runtime {
            host: t.r1.path().to_path_buf(),
            path: vec![bin, bins::REFERENCE_PLUGINS.into()],
            container_id: h.container_id.to_string(),
            netns: t.pod.path().to_path_buf(),
            ifname: "eth0".into(),
        };
        MultusPod {
            t,
            rt,
            conf,
            h,
            dirs,
        }
    }

    /// Appends a network after the NAD: its interface is net2.
    pub fn add_later_network(&mut self, network: Value) {
        self.conf["delegates"]
            .as_array_mut()
            .expect("delegates")
            .push(network);
    }

    /// See [`assert_replies_by_net1`].
    pub fn assert_replies_by_net1(&self) {
        assert_replies_by_net1(&self.t);
    }
}

/// Pings the pod's net1 IPv4 and IPv6 addresses from cli2 and asserts that every reply left by
/// net1 (r1 received them by its interface towards the pod, r0 not): net1 made by a bridge or
/// macvlan, whose router-side interface is [`ROUTER_POD_IF`].
pub fn assert_replies_by_net1(t: &Sbr5) {
    for dst in [POD_NET1_V4, POD_NET1_V6] {
        let (r0, r1) = (
            t.r0.link_packets(ROUTER_POD_IF).0,
            t.r1.link_packets(ROUTER_POD_IF).0,
        );
        // Ten: the pod's fresh interfaces also send a few packets of their own (router
        // solicitations, MLD reports), which the bound below must not mistake for replies.
        const PINGS: u32 = 10;
        assert_eq!(t.cli2.ping(dst, PINGS, &[]), PINGS, "{dst} answers");
        let (r0b, r1b) = (
            t.r0.link_packets(ROUTER_POD_IF).0,
            t.r1.link_packets(ROUTER_POD_IF).0,
        );
        assert!(
            r1b - r1 >= u64::from(PINGS) && r0b - r0 < u64::from(PINGS),
            "replies to {dst} leave by net1 (r0 {} r1 {})",
            r0b - r0,
            r1b - r1
        );
    }
}
