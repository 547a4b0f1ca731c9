//! The `ebpf-sbr` binary's lifecycle and contract: 100 ADD/DEL cycles leave nothing, DEL is
//! idempotent (netns or link gone, no ADD, twice), bad inputs fail with the right CNI code and leave
//! nothing, VERSION/STATUS/GC, and `multus` running it for `sbr` entries (`ebpfSbr.replaceSbr`) and
//! after every secondary (`ebpfSbr.allSecondary`) with replies leaving by net1, covering an
//! interface that a later network of the pod adds, and leaving no program on a device that such a
//! network hands back to the node at DEL.

use std::{path::Path, time::Duration};

use serde_json::{json, Value};
use testkit::{
    chain::Runtime,
    cni::sbr_conf,
    netns::unique_name,
    sbr::{tc_leftovers, Harness},
    sbrplugin::{plugin_path, MultusPod},
    topo::{MiniPod, Net1, Sbr5, NET1_GW_V4, NET1_IPS, POD_NET1_V4},
    CniOutput,
};

/// An `ebpf-sbr` configuration with a prevResult for `ifname` in `netns`.
fn conf(h: &Harness, netns: &Path, ifname: &str, ips: &[(&str, Option<&str>)]) -> Value {
    let mut c = sbr_conf(netns, ifname, ips);
    c["type"] = json!("ebpf-sbr");
    c["table"] = json!(100);
    c["bpffsDir"] = json!(h.bpffs.path());
    c
}

fn runtime(h: &Harness, host: &Path, pod: &Path, ifname: &str) -> Runtime {
    Runtime {
        host: host.to_path_buf(),
        path: plugin_path(),
        container_id: h.container_id.to_string(),
        netns: pod.to_path_buf(),
        ifname: ifname.into(),
    }
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

#[test]
fn hundred_add_del_cycles_leave_nothing() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let c = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    let (routes, rules) = (t.pod.all_routes(), t.pod.rules());
    for i in 0..100 {
        let add = rt.exec("ADD", &c);
        ok(&add, &format!("ADD #{i}"));
        if i == 0 {
            let mut expected = c["prevResult"].clone();
            expected["cniVersion"] = json!("1.0.0");
            assert_eq!(
                add.json.as_ref(),
                Some(&expected),
                "ADD returns prevResult unchanged"
            );
            assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 2, "replies leave by net1");
        }
        ok(&rt.exec("DEL", &c), &format!("DEL #{i}"));
    }
    h.assert_clean(&t.pod, &routes, &rules);
    assert_eq!(
        multus::sbr::pods(&h.cfg).expect("pods"),
        Vec::<multus::cni::ContainerId>::new(),
        "no pod state left"
    );
}

/// The result comes back in the version the configuration asks for.
#[test]
fn result_in_the_requested_version() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let mut c = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    c["cniVersion"] = json!("0.4.0");
    let add = rt.exec("ADD", &c);
    ok(&add, "ADD 0.4.0");
    let r = add.json.expect("result");
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(
        r["ips"][0]["version"], "4",
        "0.4.0 results carry ips[].version"
    );
    ok(&rt.exec("CHECK", &c), "CHECK 0.4.0");
    ok(&rt.exec("DEL", &c), "DEL 0.4.0");
}

#[test]
fn del_is_idempotent() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let c = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    let (routes, rules) = (t.pod.all_routes(), t.pod.rules());
    ok(&rt.exec("DEL", &c), "DEL without ADD");
    ok(&rt.exec("ADD", &c), "ADD");
    ok(&rt.exec("DEL", &c), "DEL");
    ok(&rt.exec("DEL", &c), "DEL again");
    h.assert_clean(&t.pod, &routes, &rules);

    // The link goes before DEL (the main plugin's DEL ran first).
    ok(&rt.exec("ADD", &c), "ADD");
    t.pod.ip(&["link", "del", "net1"]);
    ok(&rt.exec("DEL", &c), "DEL with the link gone");
    assert_eq!(h.bpffs.entries(), Vec::<String>::new(), "pins left behind");

    // The namespace goes before DEL, with and without CNI_NETNS.
    let t = Sbr5::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let c = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    ok(&rt.exec("ADD", &c), "ADD");
    t.pod.delete();
    ok(&rt.exec("DEL", &c), "DEL with the netns gone");
    ok(
        &rt.exec_with("DEL", &c, Path::new("")),
        "DEL without CNI_NETNS",
    );
    assert_eq!(h.bpffs.entries(), Vec::<String>::new(), "pins left behind");
}

/// Each bad input fails with its code and an actionable message, and leaves nothing behind.
#[test]
fn bad_inputs_fail_with_the_right_code_and_leave_nothing() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let good = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    let no_gw = conf(&h, t.pod.path(), "net1", &[("10.1.0.2/24", None)]);
    let file = tempfile::NamedTempFile::new().expect("file");
    let (routes, rules) = (t.pod.all_routes(), t.pod.rules());
    let with = |base: &Value, key: &str, v: Value| {
        let mut c = base.clone();
        if v.is_null() {
            c.as_object_mut().expect("object").remove(key);
        } else {
            c[key] = v;
        }
        c
    };
    let cases: Vec<(&str, Value, u64, &str)> = vec![
        (
            "no prevResult",
            with(&good, "prevResult", Value::Null),
            7,
            "prevResult",
        ),
        (
            "prevResult without the interface",
            {
                let mut c = good.clone();
                c["prevResult"]["interfaces"][0]["name"] = json!("net9");
                c
            },
            7,
            "no interface net1",
        ),
        (
            "prevResult without addresses",
            with(
                &good,
                "prevResult",
                json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": t.pod.path()}]}),
            ),
            7,
            "no IP address",
        ),
        (
            "prevResult not a result",
            with(
                &good,
                "prevResult",
                json!({"cniVersion": "1.0.0", "ips": [{"address": "nope"}]}),
            ),
            6,
            "prevResult",
        ),
        (
            "gateway not an address",
            with(&no_gw, "gateway", json!("10.1.0.300")),
            7,
            "gateway",
        ),
        (
            "gateway off the subnet",
            with(&no_gw, "gateway", json!("10.9.0.1")),
            7,
            "subnet",
        ),
        (
            "two IPv4 gateways",
            with(&no_gw, "gateway", json!(["10.1.0.1", "10.1.0.254"])),
            7,
            "one per family",
        ),
        (
            "bpffsDir relative",
            with(&good, "bpffsDir", json!("sys/fs/bpf")),
            7,
            "absolute",
        ),
        (
            "bpffsDir under a file",
            with(&good, "bpffsDir", json!(file.path().join("pins"))),
            7,
            "not a directory",
        ),
        (
            "cniVersion 0.2.0",
            with(&good, "cniVersion", json!("0.2.0")),
            1,
            "0.3.0",
        ),
        (
            "cniVersion unknown",
            with(&good, "cniVersion", json!("0.9.0")),
            1,
            "0.9.0",
        ),
        (
            "table not a number",
            with(&good, "table", json!("one hundred")),
            6,
            "table",
        ),
        (
            "address not on the interface",
            conf(
                &h,
                t.pod.path(),
                "net1",
                &[("10.1.0.7/24", Some(NET1_GW_V4))],
            ),
            7,
            "not assigned",
        ),
    ];
    for (what, c, code, needle) in cases {
        let out = rt.exec("ADD", &c);
        assert_eq!(out.err_code(), code, "{what}: {}", out.stdout);
        assert!(
            out.err_msg().contains(needle),
            "{what}: message {:?} should mention {needle:?}",
            out.err_msg()
        );
        h.assert_clean(&t.pod, &routes, &rules);
    }
    // ADD/DEL/CHECK also refuse 0.2.0 (no chaining); CHECK refuses 0.3.1 (no CHECK before 0.4.0).
    let out = rt.exec("DEL", &with(&good, "cniVersion", json!("0.2.0")));
    assert_eq!(out.err_code(), 1);
    let out = rt.exec("CHECK", &with(&good, "cniVersion", json!("0.3.1")));
    assert_eq!(out.err_code(), 1);
    // CHECK of a container that was never added names what is missing, and the repair.
    let out = rt.exec("CHECK", &good);
    assert_eq!(out.err_code(), 104, "{}", out.stdout);
    assert!(out.stdout.contains("multusctl repair"), "{}", out.stdout);
    // An interface that does not exist in the pod.
    let rt9 = runtime(&h, t.r1.path(), t.pod.path(), "net9");
    let out = rt9.exec("ADD", &conf(&h, t.pod.path(), "net9", &NET1_IPS));
    assert_eq!(out.err_code(), 3, "{}", out.stdout);
    // A netns that does not exist.
    let out = rt.exec_with("ADD", &good, Path::new("/run/netns/does-not-exist-sbr"));
    assert_eq!(out.err_code(), 3, "{}", out.stdout);
    h.assert_clean(&t.pod, &routes, &rules);
}

/// A typo in a key that changes nothing DEL removes (`attachMode`, `gateway`, `debug`, `table`)
/// is refused by ADD but never blocks DEL: it runs, and names the key on stderr.
#[test]
fn a_typo_in_a_neutral_key_never_blocks_del() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let good = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    let (routes, rules) = (t.pod.all_routes(), t.pod.rules());
    ok(&rt.exec("ADD", &good), "ADD");
    let mut typo = good.clone();
    typo["attachMode"] = json!("tc");
    typo["gateway"] = json!("10.1.0.300");
    assert_eq!(rt.exec("ADD", &typo).err_code(), 7, "ADD refuses it");
    let del = rt.exec("DEL", &typo);
    ok(&del, "DEL with a typo in attachMode and gateway");
    assert!(
        del.stderr.contains("attachMode") && del.stderr.contains("gateway"),
        "DEL names the ignored keys: {}",
        del.stderr
    );
    h.assert_clean(&t.pod, &routes, &rules);
}

/// A repeated ADD of the same interface that fails (here: prevResult names an address the
/// interface does not have) leaves the earlier ADD's state as it was: CHECK of the first ADD
/// still passes, and replies still leave by net1.
#[test]
fn a_failed_repeated_add_keeps_the_running_attachment() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let good = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    let (routes, rules) = (t.pod.all_routes(), t.pod.rules());
    ok(&rt.exec("ADD", &good), "ADD");
    ok(&rt.exec("CHECK", &good), "CHECK");
    let wrong = conf(
        &h,
        t.pod.path(),
        "net1",
        &[("10.1.0.7/24", Some(NET1_GW_V4))],
    );
    assert_eq!(
        rt.exec("ADD", &wrong).err_code(),
        7,
        "the repeated ADD fails"
    );
    let check = rt.exec("CHECK", &good);
    ok(&check, "CHECK after the failed repeated ADD");
    assert_eq!(
        t.cli2.ping(POD_NET1_V4, 2, &[]),
        2,
        "replies still leave by net1"
    );
    // A repeated ADD that succeeds changes nothing either.
    ok(&rt.exec("ADD", &good), "repeated ADD");
    ok(&rt.exec("CHECK", &good), "CHECK after the repeated ADD");
    ok(&rt.exec("DEL", &good), "DEL");
    h.assert_clean(&t.pod, &routes, &rules);
}

/// Drift of `ebpf-sbr` run by a runtime without multus (pins, no multus cache) is repaired by
/// `multusctl repair` from what the pins recorded: the namespace and each address's gateway.
#[test]
fn standalone_drift_is_repaired_by_multusctl() {
    let t = Sbr5::new();
    let h = Harness::new();
    let rt = runtime(&h, t.r1.path(), t.pod.path(), "net1");
    let good = conf(&h, t.pod.path(), "net1", &NET1_IPS);
    let (routes, rules) = (t.pod.all_routes(), t.pod.rules());
    ok(&rt.exec("ADD", &good), "ADD");
    t.pod.ip(&["route", "del", "0.0.0.0/1"]);
    assert_eq!(rt.exec("CHECK", &good).err_code(), 104, "drift");
    let no_cache = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(testkit::bins::product("multusctl"))
        .arg("--cni-dir")
        .arg(no_cache.path())
        .arg("--bpffs-dir")
        .arg(h.bpffs.path())
        .args(["repair", &h.container_id])
        .output()
        .expect("multusctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("repaired (net1)"), "{stdout}");
    ok(&rt.exec("CHECK", &good), "CHECK after the repair");
    assert_eq!(t.cli2.ping(POD_NET1_V4, 2, &[]), 2, "replies leave by net1");
    ok(&rt.exec("DEL", &good), "DEL");
    h.assert_clean(&t.pod, &routes, &rules);
}

#[test]
fn version_status_gc() {
    let h = Harness::new();
    let m: Vec<MiniPod> = (0..3).map(|_| MiniPod::new()).collect();
    let ids: Vec<String> = (0..3).map(|_| unique_name("gc")).collect();
    let base = |pod: &MiniPod| {
        conf(
            &h,
            pod.pod.path(),
            "net1",
            &[("10.5.0.2/24", Some("10.5.0.1"))],
        )
    };
    let rt = |i: usize| Runtime {
        container_id: ids[i].clone(),
        ..runtime(&h, m[i].router.path(), m[i].pod.path(), "net1")
    };

    let v = rt(0).exec(
        "VERSION",
        &json!({"cniVersion": "1.0.0", "type": "ebpf-sbr"}),
    );
    ok(&v, "VERSION");
    assert_eq!(
        v.json.as_ref().expect("json")["supportedVersions"]
            .as_array()
            .map(Vec::len),
        Some(7)
    );

    let mut status = base(&m[0]);
    status["cniVersion"] = json!("1.1.0");
    status.as_object_mut().expect("object").remove("prevResult");
    ok(&rt(0).exec("STATUS", &status), "STATUS");
    let file = tempfile::NamedTempFile::new().expect("file");
    let mut bad = status.clone();
    bad["bpffsDir"] = json!(file.path().join("x"));
    assert_eq!(
        rt(0).exec("STATUS", &bad).err_code(),
        50,
        "STATUS with an unusable bpffsDir"
    );
    let mut old = status.clone();
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(
        rt(0).exec("STATUS", &old).err_code(),
        1,
        "STATUS needs 1.1.0"
    );

    for (i, pod) in m.iter().enumerate() {
        ok(&rt(i).exec("ADD", &base(pod)), "ADD");
    }
    m[1].pod.delete();
    let mut gc = status.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": ids[0], "ifname": "net1"}]);
    ok(&rt(0).exec("GC", &gc), "GC");
    let mut left: Vec<String> = multus::sbr::pods(&h.cfg)
        .expect("pods")
        .iter()
        .map(ToString::to_string)
        .collect();
    left.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(left, expected, "GC removes the container whose namespace is gone; it keeps the listed one and \
                                 one whose interfaces still exist (it may belong to another network)");
    let mut no_list = status.clone();
    no_list
        .as_object_mut()
        .expect("object")
        .remove("cni.dev/valid-attachments");
    assert_eq!(
        rt(0).exec("GC", &no_list).err_code(),
        7,
        "GC needs valid-attachments"
    );
    for i in [0, 2] {
        ok(&rt(i).exec("DEL", &base(&m[i])), "DEL");
    }
    assert_eq!(h.bpffs.entries(), Vec::<String>::new(), "pins left behind");
}

/// ADD through multus, replies to net1's addresses leave by net1, then CHECK and DEL.
fn add_ping_del(p: &MultusPod) {
    ok(&p.rt.exec("ADD", &p.conf), "multus ADD");
    assert_eq!(
        multus::sbr::pods(&p.h.cfg).expect("pods"),
        vec![p.h.container_id.clone()],
        "ebpf-sbr ran"
    );
    p.assert_replies_by_net1();
    check_del_clean(p);
    ok(&p.rt.exec("DEL", &p.conf), "multus DEL again");
}

/// multus CHECK passes, then DEL leaves no pin.
fn check_del_clean(p: &MultusPod) {
    ok(&p.rt.exec("CHECK", &p.conf), "multus CHECK");
    ok(&p.rt.exec("DEL", &p.conf), "multus DEL");
    assert_eq!(
        p.h.bpffs.entries(),
        Vec::<String>::new(),
        "pins left behind"
    );
}
#[test]
fn multus_replace_sbr_runs_it_on_ebpf() {
    let p = MultusPod::new(
        Net1::Bridge,
        vec![json!({"type": "sbr", "table": 5000})],
        json!({"replaceSbr": true}),
    );
    add_ping_del(&p);
    // Without the option the same NAD runs Debian's sbr: no BPF state, policy rules instead.
    let p = MultusPod::new(Net1::Bridge, vec![json!({"type": "sbr"})], json!({}));
    ok(&p.rt.exec("ADD", &p.conf), "multus ADD with Debian's sbr");
    assert_eq!(
        multus::sbr::pods(&p.h.cfg).expect("pods"),
        Vec::<multus::cni::ContainerId>::new()
    );
    assert!(
        p.t.pod.rules().join("\n").contains("lookup 100"),
        "Debian's sbr adds policy rules"
    );
    ok(&p.rt.exec("DEL", &p.conf), "multus DEL");
}

/// Drift that multus CHECK reports (code 104) is repaired by `multusctl repair`, not by a repeated
/// ADD: multus answers a repeated ADD with the same plan from its cache and changes nothing, and
/// CHECK's details name the repair command.
#[test]
fn multus_check_drift_is_repaired_by_multusctl() {
    let p = MultusPod::new(Net1::Bridge, vec![], json!({"allSecondary": true}));
    let added = p.rt.exec("ADD", &p.conf);
    ok(&added, "multus ADD");
    ok(&p.rt.exec("CHECK", &p.conf), "multus CHECK");
    p.t.pod.ip(&["route", "del", "0.0.0.0/1"]);
    let check = p.rt.exec("CHECK", &p.conf);
    assert_eq!(check.err_code(), 104, "{}", check.stdout);
    let details = check.json.as_ref().expect("json")["details"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(details.contains("multusctl repair"), "{details}");
    let again = p.rt.exec("ADD", &p.conf);
    ok(&again, "repeated multus ADD");
    assert_eq!(again.json, added.json, "answered from the cache");
    assert_eq!(p.rt.exec("CHECK", &p.conf).err_code(), 104, "still drifted");
    let cache_dir = p.dirs.path().join("cache");
    let out = std::process::Command::new(testkit::bins::product("multusctl"))
        .arg("--cni-dir")
        .arg(&cache_dir)
        .arg("--bpffs-dir")
        .arg(p.h.bpffs.path())
        .args(["repair", &p.h.container_id])
        .output()
        .expect("multusctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("repaired (net1)"), "{stdout}");
    ok(
        &p.rt.exec("CHECK", &p.conf),
        "multus CHECK after the repair",
    );
    assert_eq!(p.t.cli2.ping(POD_NET1_V4, 3, &[]), 3, "net1 answers");
    check_del_clean(&p);
}

#[test]
fn multus_all_secondary_chains_it() {
    let p = MultusPod::new(Net1::Macvlan, vec![], json!({"allSecondary": true}));
    add_ping_del(&p);
}

/// An interface that a later network adds to the pod (net2, after net1's chain ran `ebpf-sbr`)
/// gets the egress program too: multus covers the pod's interfaces again after its last delegate.
/// Without that, traffic from net1's address to net2's subnet would leave by net2 (Debian's sbr
/// sends it by net1: its table for net1 has only net1's routes), and CHECK of net1's chain would
/// name net2's missing program as drift on a healthy pod.
#[test]
fn multus_covers_interfaces_added_after_the_sbr_network() {
    let mut p = MultusPod::new(
        Net1::Bridge,
        vec![json!({"type": "sbr"})],
        json!({"replaceSbr": true}),
    );
    let late = json!({"cniVersion": "1.0.0", "name": "late", "type": "bridge", "bridge": "br-late",
        "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.99.0.0/24",
        "dataDir": p.dirs.path().join("ipam-late")}});
    p.add_later_network(late);
    ok(&p.rt.exec("ADD", &p.conf), "multus ADD");
    let info = multus::sbr::inspect(&p.h.cfg, &p.h.container_id).expect("inspect");
    let attached: Vec<&str> = info.attachments.iter().map(|a| a.ifname.as_str()).collect();
    assert!(
        attached.contains(&"net2"),
        "the later interface has the program: {attached:?}"
    );
    // Bound to net1's address, towards net2's subnet (its gateway is r1 itself): net2's program
    // redirects it to net1. br-late also receives what a fresh interface sends by itself (IPv6
    // router solicitations, MLD reports, a handful): fewer packets than the pings, but not none.
    const PINGS: u32 = 20;
    let redirected_before = p.h.counters(&p.t.pod, "net2").redirected;
    let (before, late_before) = (
        p.t.r1.link_packets("pod").0,
        p.t.r1.link_packets("br-late").0,
    );
    assert_eq!(
        p.t.pod.ping("10.99.0.1", PINGS, &["-I", POD_NET1_V4]),
        PINGS
    );
    let (after, late_after) = (
        p.t.r1.link_packets("pod").0,
        p.t.r1.link_packets("br-late").0,
    );
    let redirected = p.h.counters(&p.t.pod, "net2").redirected - redirected_before;
    assert!(
        redirected >= u64::from(PINGS)
            && after - before >= u64::from(PINGS)
            && late_after - late_before < u64::from(PINGS),
        "sent by net1: net2's program redirected {redirected}; r1 received {} by net1, {} by net2",
        after - before,
        late_after - late_before
    );
    check_del_clean(&p);
}

/// A later network that hands its device back to the node at DEL (`host-device`, as SR-IOV does
/// with a VF): the device carries the egress program while in the pod (a TCX link, or a netlink
/// filter), and after multus DEL it is back in the node with neither.
#[test]
fn a_device_handed_back_at_del_carries_no_sbr_program() {
    for netlink in [false, true] {
        let sbr = if netlink {
            json!({"type": "sbr"})
        } else {
            json!({"type": "sbr", "attachMode": "tcx"})
        };
        let mut p = MultusPod::new(Net1::Bridge, vec![sbr], json!({"replaceSbr": true}));
        p.t.r1.ip(&[
            "link", "add", "hd0", "type", "veth", "peer", "name", "hd0-peer",
        ]);
        let late =
            json!({"cniVersion": "1.0.0", "name": "late", "type": "host-device", "device": "hd0"});
        p.add_later_network(late);
        ok(&p.rt.exec("ADD", &p.conf), "multus ADD");
        let info = multus::sbr::inspect(&p.h.cfg, &p.h.container_id).expect("inspect");
        let net2 = info
            .attachments
            .iter()
            .find(|a| a.ifname == "net2")
            .expect("the handed-in device has the program");
        let link_id = net2.target.as_ref().map(|t| t.id).unwrap_or_default();
        if netlink {
            assert!(
                !tc_leftovers(&p.t.pod, "net2").is_empty(),
                "a filter on net2"
            );
        } else {
            assert!(link_exists(link_id), "TCX link {link_id} on net2");
        }
        ok(&p.rt.exec("DEL", &p.conf), "multus DEL");
        p.t.r1.ip(&["link", "show", "hd0"]); // back in the node (fails otherwise)
        assert_eq!(
            tc_leftovers(&p.t.r1, "hd0"),
            Vec::<String>::new(),
            "netlink {netlink}"
        );
        if !netlink {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while link_exists(link_id) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(!link_exists(link_id), "TCX link {link_id} released");
        }
        assert_eq!(
            p.h.bpffs.entries(),
            Vec::<String>::new(),
            "pins left behind"
        );
    }
}

/// Whether a BPF link exists.
fn link_exists(id: u32) -> bool {
    testkit::netns::try_run("bpftool", &["link", "show", "id", &id.to_string()])
        .status
        .success()
}
