//! ADD/DEL/CHECK/GC over time: repeated cycles leave nothing behind (in each attach mode), DEL
//! succeeds when the netns or the link is gone, CHECK names each drift and a repeated ADD repairs
//! it, GC removes stale and orphaned pins, pods share the node's programs and the last DEL or GC
//! removes them, names are validated before they become paths, the debug log works, and signals
//! arriving while the programs load do not fail the load.

use std::time::{Duration, Instant};

use multus::sbr::{
    self, AttachMode, Drift, IfAddr, InterfaceSpec, SbrConfig, SbrError, CARRIER_IFNAME,
};
use testkit::{
    bpffs::Bpffs,
    netns::try_run,
    sbr::{carriers_gone, cid, node_map_cookies, program_dirs, tc_leftovers, Harness},
    topo::{MiniPod, Sbr5, NET1_GW_V4, POD_NET1_V4, POD_NET1_V6},
};

/// Program and link ids of a pod's attachments.
fn bpf_ids(h: &Harness) -> Vec<(u32, u32)> {
    let info = sbr::inspect(&h.cfg, &h.container_id).expect("inspect");
    info.attachments
        .iter()
        .map(|a| {
            a.target
                .as_ref()
                .map(|t| (t.prog_id, t.id))
                .expect("link target")
        })
        .collect()
}

/// Whether a BPF program or link still exists after up to 5 s: the kernel frees them when the last
/// reference goes, and a deleted namespace (whose devices hold the links) is destroyed asynchronously.
fn bpf_object_exists(kind: &str, id: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while try_run("bpftool", &[kind, "show", "id", &id.to_string()])
        .status
        .success()
    {
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn add_del_100_cycles_leave_nothing() {
    let t = Sbr5::new();
    let h = Harness::new();
    let routes = t.pod.all_routes();
    let rules = t.pod.rules();
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    let mut ids = Vec::new();
    for i in 0..100 {
        let start = Instant::now();
        h.add(&t.pod, &t.net1_spec());
        adds.push(start.elapsed());
        if i % 25 == 0 {
            assert_eq!(t.cli2.ping(POD_NET1_V4, 1, &[]), 1, "cycle {i} works");
            ids.extend(bpf_ids(&h));
        }
        let start = Instant::now();
        h.del(&t.pod, "net1");
        dels.push(start.elapsed());
        h.assert_clean(&t.pod, &routes, &rules);
    }
    for (prog, link) in ids {
        assert!(
            !bpf_object_exists("prog", prog),
            "program {prog} still loaded"
        );
        assert!(!bpf_object_exists("link", link), "link {link} still exists");
    }
    adds.sort();
    dels.sort();
    eprintln!(
        "ADD p50 {:?} p90 {:?}; DEL p50 {:?} p90 {:?} (in-process, debug build)",
        percentile(&adds, 0.5),
        percentile(&adds, 0.9),
        percentile(&dels, 0.5),
        percentile(&dels, 0.9)
    );
}

#[test]
fn del_with_netns_gone() {
    let t = Sbr5::new();
    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    let ids = bpf_ids(&h);
    t.pod.delete();
    sbr::del(&h.cfg, &h.container_id, Some(t.pod.path()), "net1")
        .unwrap_or_else(|e| panic!("del: {e}"));
    assert_eq!(h.bpffs.entries(), Vec::<String>::new(), "pins left");
    for (prog, _) in ids {
        assert!(
            !bpf_object_exists("prog", prog),
            "program {prog} still loaded"
        );
    }
    // Again, and without a netns path at all: still fine.
    sbr::del(&h.cfg, &h.container_id, Some(t.pod.path()), "net1")
        .unwrap_or_else(|e| panic!("del again: {e}"));
    sbr::del(&h.cfg, &h.container_id, None, "net1")
        .unwrap_or_else(|e| panic!("del without netns: {e}"));
}

#[test]
fn del_with_link_gone() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rules = t.pod.rules();
    h.add(&t.pod, &t.net1_spec());
    t.pod.ip(&["link", "del", "net1"]);
    let routes = t
        .pod
        .all_routes()
        .into_iter()
        .filter(|r| !r.contains(CARRIER_IFNAME) && !r.contains("proto 83"))
        .collect::<Vec<_>>();
    h.del(&t.pod, "net1");
    h.assert_clean(&t.pod, &routes, &rules);
    h.del(&t.pod, "net1");
}

#[test]
fn del_is_idempotent_and_needs_no_add() {
    let t = Sbr5::new();
    let h = Harness::new();
    h.del(&t.pod, "net1");
    let cfg = SbrConfig::new("/nonexistent/sbr-bpffs");
    sbr::del(&cfg, &cid("never-added"), Some(t.pod.path()), "net1")
        .unwrap_or_else(|e| panic!("del: {e}"));
    h.add(&t.pod, &t.net1_spec());
    h.del(&t.pod, "net1");
    h.del(&t.pod, "net1");
    assert_eq!(h.bpffs.entries(), Vec::<String>::new());
}

fn drifts(r: Result<(), SbrError>) -> Vec<Drift> {
    match r {
        Err(SbrError::Drift(d)) => d,
        other => panic!("expected drift, got {other:?}"),
    }
}

#[test]
fn check_names_drift_and_add_repairs_it() {
    let t = Sbr5::new();
    let h = Harness::with_mode(AttachMode::Tcx);
    let spec = t.net1_spec();
    assert_eq!(drifts(h.check(&t.pod, &spec)), vec![Drift::PodMissing]);
    h.add(&t.pod, &spec);
    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("fresh check: {e}"));

    t.pod
        .ip(&["route", "del", "0.0.0.0/1", "dev", CARRIER_IFNAME]);
    let d = drifts(h.check(&t.pod, &spec));
    assert_eq!(
        d,
        vec![Drift::RouteMissing("0.0.0.0/1 src 10.0.0.2".into())],
        "{d:?}"
    );
    h.add(&t.pod, &spec);
    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("repaired route: {e}"));

    std::fs::remove_file(h.bpffs.pod_dir(&h.container_id).join("link-if-net1")).expect("unpin");
    let d = drifts(h.check(&t.pod, &spec));
    assert!(
        matches!(&d[..], [Drift::NotAttached { ifname, .. }] if ifname == "net1"),
        "{d:?}"
    );
    h.add(&t.pod, &spec);

    t.pod.ip(&["neigh", "del", "10.1.0.1", "dev", "net1"]);
    let d = drifts(h.check(&t.pod, &spec));
    assert!(
        matches!(&d[..], [Drift::NeighbourMissing(n)] if n.starts_with("10.1.0.1")),
        "{d:?}"
    );
    h.add(&t.pod, &spec);

    t.pod.ip(&["link", "set", CARRIER_IFNAME, "mtu", "1300"]);
    let d = drifts(h.check(&t.pod, &spec));
    assert!(
        matches!(&d[..], [Drift::Carrier(m)] if m.contains("MTU 1300")),
        "{d:?}"
    );
    h.add(&t.pod, &spec);

    // The main IPv4 default route moves to net1 (what multus does for `default-route`): the
    // defaults entry and the carrier routes' preferred source are stale; a repeated ADD replaces
    // each carrier route in one step (adding it beside the old one fails: same key, other src).
    t.pod.ip(&[
        "route", "replace", "default", "via", NET1_GW_V4, "dev", "net1",
    ]);
    let d = drifts(h.check(&t.pod, &spec));
    assert!(
        d.contains(&Drift::RouteMissing(format!("0.0.0.0/1 src {POD_NET1_V4}"))),
        "{d:?}"
    );
    h.add(&t.pod, &spec);
    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("repaired after the default route moved: {e}"));
    t.pod.ip(&[
        "route", "replace", "default", "via", "10.0.0.1", "dev", "eth0",
    ]);
    h.add(&t.pod, &spec);
    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("repaired after the default route came back: {e}"));

    let mut other_gw = spec.clone();
    other_gw.addresses[0].gateway = Some("10.1.0.254".parse().expect("ip"));
    let d = drifts(h.check(&t.pod, &other_gw));
    assert!(
        matches!(&d[..], [Drift::EntryDiffers { addr, .. }] if addr.to_string() == POD_NET1_V4),
        "{d:?}"
    );

    let eth0 = InterfaceSpec {
        ifname: "eth0".into(),
        addresses: vec![],
    };
    let d = drifts(h.check(&t.pod, &eth0));
    assert!(d.contains(&Drift::NotManaged("eth0".into())), "{d:?}");
    assert!(
        d.contains(&Drift::EntryMissing("10.0.0.2".parse().expect("ip"))),
        "{d:?}"
    );

    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("final check: {e}"));
    h.del(&t.pod, "net1");
}

/// Removing a TCX link's last pin releases the link in a kernel worker; an ADD right after finds
/// the program still attached (EEXIST) and must wait for the release rather than fail (a full
/// run failed so once, with other tests loading RTNL).
#[test]
fn add_right_after_a_link_pin_is_removed_reattaches() {
    let t = Sbr5::new();
    let h = Harness::with_mode(AttachMode::Tcx);
    let spec = t.net1_spec();
    h.add(&t.pod, &spec);
    let pin = h.bpffs.pod_dir(&h.container_id).join("link-if-net1");
    for round in 0..20 {
        std::fs::remove_file(&pin).unwrap_or_else(|e| panic!("round {round}: unpin: {e}"));
        h.add(&t.pod, &spec);
        h.check(&t.pod, &spec)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    h.del(&t.pod, "net1");
}

/// ADD and DEL only add to the pod: every route the delegates installed is still there, unchanged.
#[test]
fn delegate_routes_are_kept() {
    let t = Sbr5::new();
    let h = Harness::new();
    let before = t.pod.all_routes();
    let report = h.add(&t.pod, &t.net1_spec());
    let after = t.pod.all_routes();
    for r in &before {
        assert!(after.contains(r), "route changed or removed by ADD: {r}");
    }
    let added: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(
        added.iter().all(|r| r.contains(CARRIER_IFNAME)),
        "everything ADD adds goes through the carrier: {added:?}"
    );
    assert_eq!(report.carrier_routes.len(), 3 + 7);
    assert_eq!(
        report.attached,
        vec!["eth0".to_string(), "net1".to_string()]
    );
    assert!(
        t.pod.rules().iter().all(|r| !r.contains("lookup 1")),
        "no policy rules"
    );
    h.del(&t.pod, "net1");
}

/// Two managed interfaces: DEL of one keeps the other working; the last DEL removes the carrier.
#[test]
fn two_managed_interfaces() {
    let t = Sbr5::new();
    let h = Harness::new();
    let routes = t.pod.all_routes();
    let rules = t.pod.rules();
    let eth0 = InterfaceSpec {
        ifname: "eth0".into(),
        addresses: vec![IfAddr {
            address: "10.0.0.2".parse().expect("ip"),
            prefix_len: 24,
            gateway: Some("10.0.0.1".parse().expect("ip")),
        }],
    };
    h.add(&t.pod, &t.net1_spec());
    h.add(&t.pod, &eth0);
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 2);
    assert_eq!(t.cli1.ping("10.0.0.2", 2, &[]), 2);
    h.check(&t.pod, &eth0)
        .unwrap_or_else(|e| panic!("check eth0: {e}"));
    h.check(&t.pod, &t.net1_spec())
        .unwrap_or_else(|e| panic!("check net1: {e}"));
    h.del(&t.pod, "eth0");
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 2, "net1 still steered");
    assert_eq!(
        t.cli2.ping(POD_NET1_V6, 2, &[]),
        2,
        "net1 still steered (IPv6)"
    );
    h.check(&t.pod, &t.net1_spec())
        .unwrap_or_else(|e| panic!("check net1 after eth0's DEL: {e}"));
    let info = sbr::inspect(&h.cfg, &h.container_id).expect("inspect");
    assert!(
        info.entries
            .iter()
            .all(|e| e.address.to_string() != "10.0.0.2"),
        "eth0's entries are gone"
    );
    h.del(&t.pod, "net1");
    h.assert_clean(&t.pod, &routes, &rules);
}

#[test]
fn gc_removes_stale_and_orphaned_pins() {
    let a = Sbr5::new();
    let b = MiniPod::new();
    let h = Harness::new();
    let id_a = h.container_id.clone();
    let id_b = cid(&format!("{id_a}-b"));
    h.add(&a.pod, &a.net1_spec());
    sbr::add(&h.cfg, &id_b, b.pod.path(), &b.net1_spec()).unwrap_or_else(|e| panic!("add b: {e}"));
    assert_eq!(sbr::pods(&h.cfg).expect("pods"), {
        let mut v = vec![id_a.clone(), id_b.clone()];
        v.sort();
        v
    });

    let report = sbr::gc(&h.cfg, &[&id_a, &id_b]).expect("gc");
    assert!(
        report.stale.is_empty() && report.orphaned.is_empty(),
        "nothing to collect: {report:?}"
    );
    let report = sbr::gc(&h.cfg, &[&id_a]).expect("gc");
    assert_eq!(report.stale, vec![id_b.to_string()]);
    assert_eq!(sbr::pods(&h.cfg).expect("pods"), vec![id_a.clone()]);
    assert_eq!(
        a.cli2.ping(POD_NET1_V4, 2, &[]),
        2,
        "the valid pod keeps working"
    );

    a.pod.delete();
    let report = sbr::gc(&h.cfg, &[&id_a]).expect("gc");
    assert_eq!(report.orphaned, vec![id_a.to_string()]);
    assert_eq!(h.bpffs.entries(), Vec::<String>::new());
}

#[test]
fn names_are_validated_and_errors_leave_nothing() {
    let t = Sbr5::new();
    let h = Harness::new();
    let spec = t.net1_spec();
    let err = |id: &str, spec: &InterfaceSpec| {
        sbr::add(&h.cfg, &cid(id), t.pod.path(), spec).expect_err("must fail")
    };
    // A container id that could name another directory cannot even be made (cni::ContainerId).
    assert!(multus::cni::ContainerId::parse("../escape").is_err());
    assert!(matches!(
        err(
            "ok",
            &InterfaceSpec {
                ifname: "a/b".into(),
                ..spec.clone()
            }
        ),
        SbrError::InvalidIfName(_)
    ));
    assert!(matches!(
        err(
            "ok",
            &InterfaceSpec {
                ifname: CARRIER_IFNAME.into(),
                ..spec.clone()
            }
        ),
        SbrError::ReservedIfName(_)
    ));
    assert!(matches!(
        err(
            "ok",
            &InterfaceSpec {
                ifname: "net9".into(),
                ..spec.clone()
            }
        ),
        SbrError::InterfaceNotFound(_)
    ));
    let mut wrong = spec.clone();
    wrong.addresses[0].address = "10.1.0.99".parse().expect("ip");
    assert!(matches!(
        err("ok", &wrong),
        SbrError::AddressNotOnInterface { .. }
    ));
    assert_eq!(
        h.bpffs.entries(),
        Vec::<String>::new(),
        "failed ADDs leave no pins"
    );
    assert!(
        t.pod
            .link_names()
            .iter()
            .all(|l| !l.starts_with(CARRIER_IFNAME)),
        "failed ADDs leave no carrier"
    );
}

/// The library mounts bpffs on a directory that is not on one.
#[test]
fn bpffs_is_mounted_when_missing() {
    let t = Sbr5::new();
    let fs = Bpffs::unmounted();
    let cfg = SbrConfig::new(fs.path().join("sbr"));
    sbr::add(&cfg, &cid("mount-test"), t.pod.path(), &t.net1_spec())
        .unwrap_or_else(|e| panic!("add: {e}"));
    let out = try_run(
        "stat",
        &["-f", "-c", "%T", &cfg.bpffs_dir.to_string_lossy()],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "bpf_fs");
    let mode = try_run(
        "stat",
        &[
            "-c",
            "%a",
            &cfg.bpffs_dir.join("mount-test").to_string_lossy(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&mode.stdout).trim(),
        "700",
        "pin directories are root-only"
    );
    sbr::del(&cfg, &cid("mount-test"), Some(t.pod.path()), "net1")
        .unwrap_or_else(|e| panic!("del: {e}"));
    let c = std::ffi::CString::new(cfg.bpffs_dir.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: umount2 on a valid path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
}

/// With `debug`, the programs log their decisions through aya-log.
#[test]
fn debug_log() {
    let t = Sbr5::new();
    let mut h = Harness::new();
    h.cfg.debug = true;
    h.add(&t.pod, &t.net1_spec());
    let mut logs = sbr::LogReader::open(&h.cfg, &h.container_id).expect("log reader");
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 2);
    let lines = logs.drain();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sbr: if") && l.contains("->")),
        "no redirect logged: {lines:?}"
    );
    h.del(&t.pod, "net1");

    let h = Harness::new();
    h.add(&t.pod, &t.net1_spec());
    let mut logs = sbr::LogReader::open(&h.cfg, &h.container_id).expect("log reader");
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 2);
    assert_eq!(logs.drain(), Vec::<String>::new(), "quiet without debug");
    h.del(&t.pod, "net1");
}

/// The node's programs are loaded by the first ADD and shared: a second pod only attaches them.
/// DEL of one pod leaves the other's entries intact; the last DEL removes the programs' pins, and
/// so does GC of the last pods.
#[test]
fn pods_share_the_node_programs() {
    let a = Sbr5::new();
    let b = MiniPod::new();
    let h = Harness::new();
    let id_b = cid(&format!("{}-b", h.container_id));
    let add_b = || {
        sbr::add(&h.cfg, &id_b, b.pod.path(), &b.net1_spec())
            .unwrap_or_else(|e| panic!("add b: {e}"))
    };

    assert!(
        h.add(&a.pod, &a.net1_spec()).loaded,
        "the node's first ADD loads the programs"
    );
    assert!(!add_b().loaded, "the second pod only attaches them");
    let versions = program_dirs(h.bpffs.path());
    assert_eq!(versions.len(), 1, "one program version: {versions:?}");
    let (info_a, info_b) = (
        sbr::inspect(&h.cfg, &h.container_id).expect("a"),
        sbr::inspect(&h.cfg, &id_b).expect("b"),
    );
    assert_eq!(info_a.version, versions[0]);
    assert_eq!(info_b.version, versions[0]);
    assert_ne!(
        info_a.cookie, info_b.cookie,
        "each pod has its namespace's cookie"
    );
    let progs = |info: &sbr::PodInfo| -> Vec<u32> {
        let mut v: Vec<u32> = info
            .attachments
            .iter()
            .map(|a| a.target.as_ref().expect("target").prog_id)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(
        progs(&info_a),
        progs(&info_b),
        "the same two programs run in both pods"
    );
    assert_eq!(progs(&info_a).len(), 2);
    let mut both = vec![info_a.cookie, info_b.cookie];
    both.sort();
    assert_eq!(node_map_cookies(h.bpffs.path(), "users"), both);
    assert!(node_map_cookies(h.bpffs.path(), "src").contains(&info_b.cookie));

    // DEL of a: b keeps every entry and keeps working.
    h.del(&a.pod, "net1");
    let after = sbr::inspect(&h.cfg, &id_b).expect("b after a's DEL");
    assert_eq!(
        (&after.entries, after.defaults, &after.interfaces),
        (&info_b.entries, info_b.defaults, &info_b.interfaces)
    );
    sbr::check(&h.cfg, &id_b, b.pod.path(), &b.net1_spec())
        .unwrap_or_else(|e| panic!("check b: {e}"));
    for map in ["src", "counters", "users"] {
        let cookies = node_map_cookies(h.bpffs.path(), map);
        assert!(
            !cookies.is_empty() && cookies.iter().all(|c| *c == info_b.cookie),
            "{map}: {cookies:?}"
        );
    }
    assert!(node_map_cookies(h.bpffs.path(), "defaults")
        .iter()
        .all(|c| *c == info_b.cookie));
    for prog in progs(&info_b) {
        assert!(
            bpf_object_exists("prog", prog),
            "program {prog} still loaded for b"
        );
    }

    // The last DEL removes the programs' pins; the kernel frees them.
    sbr::del(&h.cfg, &id_b, Some(b.pod.path()), "net1").unwrap_or_else(|e| panic!("del b: {e}"));
    assert_eq!(
        h.bpffs.entries(),
        Vec::<String>::new(),
        "pins left after the last DEL"
    );
    for prog in progs(&info_b) {
        assert!(
            !bpf_object_exists("prog", prog),
            "program {prog} still loaded"
        );
    }
    assert!(
        carriers_gone(&a.pod) && carriers_gone(&b.pod),
        "the kernel deleted the retired carriers"
    );

    // GC of the last pods does the same (and deletes their carriers with their anchors).
    h.add(&a.pod, &a.net1_spec());
    add_b();
    let report = sbr::gc(&h.cfg, &[]).expect("gc");
    assert_eq!(report.stale.len(), 2, "{report:?}");
    assert_eq!(report.versions, versions, "{report:?}");
    assert_eq!(
        h.bpffs.entries(),
        Vec::<String>::new(),
        "pins left after GC"
    );
    assert!(
        carriers_gone(&a.pod) && carriers_gone(&b.pod),
        "GC's dropped anchors delete the carriers"
    );
}

/// 100 ADD/DEL cycles of one pod in each attach mode, while another pod keeps the programs
/// loaded: every cycle leaves no pin of the pod, no entry with its cookie in the node-wide maps, no
/// route, rule, neighbour or tc filter; afterwards no link of it exists and the carriers are gone.
#[test]
fn add_del_100_cycles_in_each_mode_leave_nothing() {
    for mode in [AttachMode::Tcx, AttachMode::Netlink] {
        let t = Sbr5::new();
        let keeper = MiniPod::new();
        let h = Harness::with_mode(mode);
        let keeper_id = cid(&format!("{}-keeper", h.container_id));
        sbr::add(&h.cfg, &keeper_id, keeper.pod.path(), &keeper.net1_spec())
            .unwrap_or_else(|e| panic!("keeper: {e}"));
        let keeper_cookie = sbr::inspect(&h.cfg, &keeper_id).expect("keeper").cookie;
        let routes = t.pod.all_routes();
        let rules = t.pod.rules();
        let pod_dir = h.bpffs.pod_dir(&h.container_id);
        let mut links = Vec::new();
        for i in 0..100 {
            let report = h.add(&t.pod, &t.net1_spec());
            assert!(!report.loaded, "{mode}: the keeper's programs are reused");
            if i % 25 == 0 {
                assert_eq!(
                    t.cli2.ping(POD_NET1_V4, 1, &[]),
                    1,
                    "{mode}: cycle {i} works"
                );
                let info = sbr::inspect(&h.cfg, &h.container_id).expect("inspect");
                assert!(
                    info.attachments
                        .iter()
                        .all(|a| a.mode == mode || a.ifname == CARRIER_IFNAME),
                    "{info:?}"
                );
                links.extend(
                    info.attachments
                        .iter()
                        .filter_map(|a| a.target.as_ref().ok())
                        .map(|t| t.id)
                        .filter(|id| *id != 0),
                );
            }
            h.del(&t.pod, "net1");
            assert!(!pod_dir.exists(), "{mode}: cycle {i} left the pod's pins");
            for map in ["src", "defaults", "counters", "users"] {
                let cookies = node_map_cookies(h.bpffs.path(), map);
                assert!(
                    cookies.iter().all(|c| *c == keeper_cookie),
                    "{mode}: cycle {i} left {map} entries: {cookies:?}"
                );
            }
            assert_eq!(
                t.pod.all_routes(),
                routes,
                "{mode}: cycle {i} changed the routes"
            );
            assert_eq!(t.pod.rules(), rules);
            for ifname in ["eth0", "net1"] {
                assert_eq!(
                    tc_leftovers(&t.pod, ifname),
                    Vec::<String>::new(),
                    "{mode}: cycle {i}, {ifname}"
                );
            }
        }
        assert_eq!(
            links.is_empty(),
            mode == AttachMode::Netlink,
            "{mode}: TCX links only in TCX mode"
        );
        for link in links {
            assert!(
                !bpf_object_exists("link", link),
                "{mode}: link {link} still exists"
            );
        }
        assert!(
            carriers_gone(&t.pod),
            "{mode}: carriers left: {:?}",
            t.pod.link_names()
        );
        sbr::del(&h.cfg, &keeper_id, Some(keeper.pod.path()), "net1")
            .unwrap_or_else(|e| panic!("keeper del: {e}"));
        h.assert_clean(&t.pod, &routes, &rules);
    }
}

/// In netlink mode the programs are tc filters: CHECK finds a missing one, ADD puts it back, DEL
/// removes the filters and the clsact qdiscs SBR added.
#[test]
fn netlink_mode_check_repair_and_del() {
    let t = Sbr5::new();
    let h = Harness::with_mode(AttachMode::Netlink);
    let spec = t.net1_spec();
    h.add(&t.pod, &spec);
    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("fresh check: {e}"));
    let info = sbr::inspect(&h.cfg, &h.container_id).expect("inspect");
    assert_eq!(info.attach_mode, AttachMode::Netlink);
    assert!(info
        .attachments
        .iter()
        .all(|a| a.mode == AttachMode::Netlink && a.pin.as_os_str().is_empty()));
    assert!(
        info.attachments.iter().all(|a| a
            .target
            .as_ref()
            .is_ok_and(|t| t.ifindex != 0 && t.prog_id != 0)),
        "{info:?}"
    );
    assert_eq!(info.attachments.len(), 3, "carrier, eth0, net1: {info:?}");
    assert!(
        h.bpffs.entries().iter().all(|e| !e.contains("link-")),
        "nothing pinned for the attachments"
    );

    let out = t.pod.exec(
        "tc",
        &["filter", "del", "dev", "net1", "egress", "pref", "21314"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = drifts(h.check(&t.pod, &spec));
    assert!(
        matches!(&d[..], [Drift::NotAttached { ifname, .. }] if ifname == "net1"),
        "{d:?}"
    );
    assert_eq!(
        t.cli2.ping(POD_NET1_V4, 2, &[]),
        2,
        "the carrier still steers"
    );
    h.add(&t.pod, &spec);
    h.check(&t.pod, &spec)
        .unwrap_or_else(|e| panic!("repaired: {e}"));

    h.del(&t.pod, "net1");
    for ifname in ["eth0", "net1"] {
        assert_eq!(
            tc_leftovers(&t.pod, ifname),
            Vec::<String>::new(),
            "{ifname}"
        );
    }
    assert_eq!(h.bpffs.entries(), Vec::<String>::new());
}

/// A signal pending for the loading thread makes the kernel abandon a program load with EAGAIN,
/// whatever the program (a CI run of this binary failed so, in the 100-cycle test). Here every
/// thread of the process gets a signal
/// every 20 µs or so while a fresh node loads the programs (without the fix, the first load fails,
/// even when tried five times), and every load must succeed.
#[test]
fn program_loads_survive_signals() {
    use std::sync::atomic::{AtomicBool, Ordering};
    extern "C" fn do_nothing(_: libc::c_int) {}
    // SAFETY: an async-signal-safe handler that does nothing; SA_RESTART keeps every restartable
    // system call of the ADD (netlink, locks) unaffected, as tokio's handlers do.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = do_nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        assert_eq!(
            libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
            0
        );
    }
    let t = MiniPod::new();
    // SAFETY: plain system calls on this process and thread.
    let pid = unsafe { libc::getpid() };
    for i in 0..20 {
        let h = Harness::new();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a plain system call.
                let me = unsafe { libc::gettid() };
                while !done.load(Ordering::SeqCst) {
                    // Every thread but this one: the ADD may load on a thread of its own.
                    for task in std::fs::read_dir("/proc/self/task")
                        .expect("tasks")
                        .flatten()
                    {
                        let Some(tid) = task
                            .file_name()
                            .to_str()
                            .and_then(|t| t.parse::<libc::pid_t>().ok())
                        else {
                            continue;
                        };
                        if tid != me {
                            // SAFETY: a signal whose handler does nothing, to a thread of this
                            // process (one that has just exited makes it fail with ESRCH).
                            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR2) };
                        }
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
            });
            /// Stops the signals however the ADD ends (the scope waits for the sender).
            struct Stop<'a>(&'a AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let stop = Stop(&done);
            let report = h.add(&t.pod, &t.net1_spec());
            drop(stop);
            assert!(report.loaded, "load {i}: a fresh bpffs loads the programs");
        });
        h.del(&t.pod, "net1");
    }
}
