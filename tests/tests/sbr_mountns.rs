//! eBPF SBR called from a private mount namespace, as `ip netns exec` makes one (`/` rslave, a
//! fresh sysfs on `/sys`): what ADD builds (the carrier and its anchor, the pins, the bpffs mount)
//! outlives the ADD process, CHECK and DEL from the node's mount namespace and from another
//! private one find it, and DEL leaves nothing; with the default `bpffsDir` on a node whose
//! `/sys/fs/bpf` is not mounted (bpffs is mounted there first) and with one outside `/sys`; for
//! the `ebpf-sbr` binary and for the thin `multus` with `replaceSbr`. An ADD that cannot reach the
//! node's mount namespace fails and leaves nothing.
//!
//! Every test runs on an [`EmulatedNode`] (a pid and mount namespace of its own, whose pid 1 the
//! product takes for the node's): nothing is mounted in the machine's mount namespace, and each
//! test asserts that the machine's `/sys/fs/bpf` is as before. The node daemon's part (in a
//! private mount namespace, restarted between ADD and DEL) is in tests/tests/thick.rs.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use multus::sbr::{self, SbrConfig, CARRIER_IFNAME};
use serde_json::json;
use testkit::{
    bpffs::{self, Bpffs},
    chain::Runtime,
    mountns::{is_bpffs, Caller, EmulatedNode},
    netns::unique_name,
    sbr::{carriers_gone, ifindex, program_dirs, tc_leftovers},
    sbrplugin::{assert_replies_by_net1, main_plugin, plugin_path, MultusPod},
    topo::{Net1, Options, Sbr5},
    CniOutput,
};

/// Where the test's pins go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PinDir {
    /// No `bpffsDir`: `/sys/fs/bpf/multus-sbr`, on a node whose `/sys/fs/bpf` is not a bpffs.
    Default,
    /// A bpffs the machine mounted on a directory outside `/sys` before the node started.
    OutsideSys,
}

fn ok(out: &CniOutput, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.elapsed < Duration::from_secs(10),
        "{what} took {:?}",
        out.elapsed
    );
}

/// The emulated node, and the machine's `/sys/fs/bpf` as it was, checked again on drop.
struct Setup {
    node: EmulatedNode,
    machine_sys_fs_bpf: bool,
    /// The pin directory as the test process reaches it.
    view: PathBuf,
}

impl Setup {
    /// Starts the node (after `bpffs`, which the node then sees too, was mounted).
    fn new(dir: PinDir, bpffs: &Bpffs) -> Setup {
        let machine_sys_fs_bpf = is_bpffs(Path::new("/sys/fs/bpf"));
        let node = EmulatedNode::new();
        assert!(
            !is_bpffs(&node.path(Path::new("/sys/fs/bpf"))),
            "the node's /sys/fs/bpf starts unmounted"
        );
        let view = match dir {
            PinDir::Default => node.path(Path::new(sbr::DEFAULT_BPFFS_DIR)),
            PinDir::OutsideSys => bpffs.path().to_path_buf(),
        };
        Setup {
            node,
            machine_sys_fs_bpf,
            view,
        }
    }

    fn private(&self, t: &Sbr5) -> Vec<String> {
        self.node.launcher(&Caller::Private {
            netns: t.r1.name().to_string(),
        })
    }

    fn in_node(&self) -> Vec<String> {
        self.node.launcher(&Caller::Node)
    }

    /// What ADD left, after its process (and its private mount namespace) is gone: the carrier
    /// and its routes, the programs' pins and filters, counters that count the replies, which
    /// leave by net1.
    fn assert_dataplane(&self, t: &Sbr5, container_id: &str) {
        assert!(
            is_bpffs(&self.view),
            "{} is on a bpffs in the node",
            self.view.display()
        );
        assert!(
            t.pod.link_names().iter().any(|l| l == CARRIER_IFNAME),
            "the carrier outlives the ADD process: {:?}",
            t.pod.link_names()
        );
        let cfg = SbrConfig::new(&self.view);
        let net1 = ifindex(&t.pod, "net1");
        let redirected_in = |cfg: &SbrConfig| {
            sbr::inspect(cfg, &testkit::sbr::cid(container_id))
                .unwrap_or_else(|e| panic!("inspect: {e}"))
                .counters
                .iter()
                .find(|(i, _)| *i == net1)
                .map(|(_, c)| c.redirected_in)
                .unwrap_or_default()
        };
        let before = redirected_in(&cfg);
        assert_replies_by_net1(t);
        assert!(
            redirected_in(&cfg) >= before + 10,
            "the carrier's program sent the replies to net1 (counters)"
        );
        let routes = t.pod.ip(&["route", "show", "dev", CARRIER_IFNAME]);
        assert!(
            String::from_utf8_lossy(&routes.stdout).contains("0.0.0.0/1"),
            "carrier routes: {}",
            String::from_utf8_lossy(&routes.stdout)
        );
        let versions = program_dirs(&self.view);
        assert_eq!(versions.len(), 1, "one program version: {versions:?}");
        for prog in ["prog-carrier", "prog-egress"] {
            assert!(self.view.join(&versions[0]).join(prog).exists(), "{prog}");
        }
        assert!(
            !tc_leftovers(&t.pod, "net1").is_empty(),
            "net1 has the egress filter"
        );
    }

    /// What DEL leaves: nothing.
    fn assert_clean(&self, t: &Sbr5) {
        assert_eq!(
            bpffs::entries(&self.view),
            Vec::<String>::new(),
            "pins left behind"
        );
        assert!(carriers_gone(&t.pod), "carrier left behind");
        assert_eq!(
            tc_leftovers(&t.pod, "net1"),
            Vec::<String>::new(),
            "filters left"
        );
        let routes = t.pod.all_routes().join("\n");
        assert!(!routes.contains("proto 83"), "SBR routes left: {routes}");
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                is_bpffs(Path::new("/sys/fs/bpf")),
                self.machine_sys_fs_bpf,
                "the machine's /sys/fs/bpf is as before"
            );
        }
    }
}

/// Who runs each call of a round.
#[derive(Clone, Copy, Debug)]
enum By {
    /// A process of the node's own mount namespace (`nsenter`).
    Node,
    /// A process in a private mount namespace (`ip netns exec`), a new one each call.
    Private,
}

/// `[bridge, ebpf-sbr]`: the bridge's ADD runs as usual, then rounds of `ebpf-sbr` ADD, CHECK from
/// the node and from another private namespace, DEL and DEL again, each round on a fresh node
/// (whose `/sys/fs/bpf` is not mounted): ADD from a private namespace and DEL from another, ADD
/// from a private namespace and DEL from the node, ADD from the node and DEL from a private one.
fn plugin_round_trips(dir: PinDir) {
    let t = Sbr5::with(Options {
        net1: Net1::Bridge,
        ..Options::default()
    });
    let bpffs = Bpffs::new();
    let data = tempfile::tempdir().expect("tempdir");
    let mut ebpf = json!({"type": "ebpf-sbr"});
    if dir == PinDir::OutsideSys {
        ebpf["bpffsDir"] = json!(bpffs.path());
    }
    let list = json!({"cniVersion": "1.0.0", "name": "net1-sbr",
        "plugins": [main_plugin(Net1::Bridge, 1500, data.path()), ebpf]});
    let rt = Runtime {
        host: t.r1.path().to_path_buf(),
        path: plugin_path(),
        container_id: unique_name("ctr"),
        netns: t.pod.path().to_path_buf(),
        ifname: "net1".into(),
    };
    let bridge = rt.exec(
        "ADD",
        &Runtime::plugin_conf(&list, &list["plugins"][0], None),
    );
    ok(&bridge, "bridge ADD");
    let conf = Runtime::plugin_conf(&list, &list["plugins"][1], bridge.json.as_ref());
    for (add_by, del_by) in [
        (By::Private, By::Private),
        (By::Private, By::Node),
        (By::Node, By::Private),
    ] {
        let s = Setup::new(dir, &bpffs);
        let call = |by: By, command: &str| {
            let launcher = match by {
                By::Node => s.in_node(),
                By::Private => s.private(&t),
            };
            ok(
                &rt.exec_via(&launcher, command, &conf, t.pod.path()),
                &format!("{command} by {by:?} (ADD by {add_by:?}, DEL by {del_by:?}, {dir:?})"),
            );
        };
        call(add_by, "ADD");
        s.assert_dataplane(&t, &rt.container_id);
        call(By::Node, "CHECK");
        call(By::Private, "CHECK");
        call(del_by, "DEL");
        s.assert_clean(&t);
        call(del_by, "DEL");
    }
    ok(
        &rt.exec(
            "DEL",
            &Runtime::plugin_conf(&list, &list["plugins"][0], None),
        ),
        "bridge DEL",
    );
}

#[test]
fn plugin_from_a_private_mount_ns_default_bpffs_dir() {
    plugin_round_trips(PinDir::Default);
}

#[test]
fn plugin_from_a_private_mount_ns_bpffs_dir_outside_sys() {
    plugin_round_trips(PinDir::OutsideSys);
}

/// The thin multus with `replaceSbr`, run by hand through `ip netns exec` (a private mount
/// namespace for multus and every delegate): the NAD's `sbr` runs as `ebpf-sbr`, and what it built
/// outlives the call; CHECK from the node and from another private namespace; DEL leaves nothing.
fn multus_round_trip(dir: PinDir) {
    let mut p = MultusPod::new(
        Net1::Bridge,
        vec![json!({"type": "sbr"})],
        json!({"replaceSbr": true}),
    );
    if dir == PinDir::Default {
        p.conf["ebpfSbr"] = json!({"replaceSbr": true});
    }
    let s = Setup::new(dir, &p.h.bpffs);
    let call = |launcher: &[String], command: &str, what: &str| {
        ok(
            &p.rt.exec_via(launcher, command, &p.conf, &p.rt.netns),
            &format!("multus {what} ({dir:?})"),
        );
    };
    call(&s.private(&p.t), "ADD", "ADD from a private namespace");
    assert_eq!(
        sbr::pods(&SbrConfig::new(&s.view)).expect("pods"),
        vec![p.h.container_id.clone()],
        "ebpf-sbr ran in place of sbr"
    );
    s.assert_dataplane(&p.t, &p.h.container_id);
    call(&s.in_node(), "CHECK", "CHECK from the node");
    call(&s.private(&p.t), "CHECK", "CHECK from a private namespace");
    call(&s.private(&p.t), "DEL", "DEL from a private namespace");
    s.assert_clean(&p.t);
}

#[test]
fn multus_replace_sbr_from_a_private_mount_ns_default_bpffs_dir() {
    multus_round_trip(PinDir::Default);
}

#[test]
fn multus_replace_sbr_from_a_private_mount_ns_bpffs_dir_outside_sys() {
    multus_round_trip(PinDir::OutsideSys);
}

/// A caller in a private mount namespace that may not enter the node's (no CAP_SYS_CHROOT): ADD
/// fails before changing anything, with an I/O error (code 5) that says why and what to do,
/// instead of reporting a dataplane that would vanish with the caller.
#[test]
fn add_that_cannot_reach_the_nodes_mount_ns_fails_and_leaves_nothing() {
    let t = Sbr5::with(Options {
        net1: Net1::Bridge,
        ..Options::default()
    });
    let bpffs = Bpffs::new();
    let data = tempfile::tempdir().expect("tempdir");
    let s = Setup::new(PinDir::OutsideSys, &bpffs);
    let list = json!({"cniVersion": "1.0.0", "name": "net1-sbr", "plugins": [
        main_plugin(Net1::Bridge, 1500, data.path()),
        {"type": "ebpf-sbr", "bpffsDir": bpffs.path()}]});
    let rt = Runtime {
        host: t.r1.path().to_path_buf(),
        path: plugin_path(),
        container_id: unique_name("ctr"),
        netns: t.pod.path().to_path_buf(),
        ifname: "net1".into(),
    };
    let bridge = rt.exec(
        "ADD",
        &Runtime::plugin_conf(&list, &list["plugins"][0], None),
    );
    ok(&bridge, "bridge ADD");
    let conf = Runtime::plugin_conf(&list, &list["plugins"][1], bridge.json.as_ref());
    let routes = t.pod.all_routes();
    let confined = s.node.launcher(&Caller::PrivateWithoutChroot {
        netns: t.r1.name().to_string(),
    });
    let add = rt.exec_via(&confined, "ADD", &conf, t.pod.path());
    assert_eq!(add.err_code(), 5, "{}\n{}", add.stdout, add.stderr);
    let msg = add.err_msg();
    assert!(
        msg.contains("private mount namespace") && msg.contains("/proc/1/ns/mnt"),
        "{msg}"
    );
    let details = add.json.as_ref().map(|j| j["details"].to_string());
    assert!(
        details.as_deref().is_some_and(|d| d.contains("nsenter")),
        "{details:?}"
    );
    s.assert_clean(&t);
    assert_eq!(t.pod.all_routes(), routes, "routes unchanged");
    ok(
        &rt.exec_via(&s.in_node(), "DEL", &conf, t.pod.path()),
        "DEL after the refused ADD",
    );
}
