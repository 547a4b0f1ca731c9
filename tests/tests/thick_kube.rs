//! Thick mode with the Kubernetes API (the in-tree stand-in): the daemon's watch caches of this
//! node's pods and of the NADs serve ADD without GETs; a NAD created after the daemon started is
//! used without a restart; the watches survive an API restart and a 410 (relist); a pod the cache
//! does not hold (another node's, as a static pod is) costs one GET; the daemon starts and serves
//! config-only networks while the API is down.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::thick_api::ApiNode;

const NODE: &str = ApiNode::NODE;
const NADS: &str = "network-attachment-definitions";
const SYNC: Duration = Duration::from_secs(15);

/// A node, the API, and a daemon with a kubeconfig for it (not started).
fn new() -> ApiNode {
    ApiNode::new("tk", "10.86.0.0/24", |node, api| {
        let kubeconfig = api.write_kubeconfig(node.root()).expect("kubeconfig");
        json!({"kubeconfig": kubeconfig, "apiDeadlineSeconds": 3})
    })
}

/// GETs of `path` the API stand-in answered.
fn gets(t: &ApiNode, path: &str) -> usize {
    t.api.request_count("GET", path)
}

#[test]
fn a_nad_created_after_start_is_used_from_the_cache_without_gets() {
    let mut t = new();
    t.start(Duration::from_secs(10));
    t.daemon.wait_cache(NADS, 0, SYNC);
    // Created while the daemon runs: it reaches the caches through the watches.
    t.nad("late", "tkl0", "10.86.1.0/24");
    let uid = t.pod("web", NODE, "late");
    t.daemon.wait_cache(NADS, 1, SYNC);
    t.daemon.wait_cache("pods", 1, SYNC);
    t.add_del("web", &uid);
    assert_eq!(
        gets(&t, "/api/v1/namespaces/default/pods/web"),
        0,
        "the pod came from the cache"
    );
    assert_eq!(
        gets(
            &t,
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/late"
        ),
        0,
        "the NAD came from the cache"
    );
    assert_eq!(
        t.api
            .request_count("PATCH", "/api/v1/namespaces/default/pods/web"),
        1
    );
}

#[test]
fn watches_survive_an_api_restart_and_relist_after_410() {
    let mut t = new();
    t.nad("first", "tkf0", "10.86.2.0/24");
    t.start(Duration::from_secs(10));
    t.daemon.wait_cache(NADS, 1, SYNC);
    t.api.begin_outage().expect("outage");
    std::thread::sleep(Duration::from_millis(300));
    // While the API is away: changes the watches must catch up with, and a compaction so that
    // resuming from the old resourceVersion gets 410 Expired.
    t.nad("second", "tks0", "10.86.3.0/24");
    let uid = t.pod("after", NODE, "second");
    t.api.compact_watch_history();
    t.api.end_outage().expect("restore");
    t.daemon.wait_cache(NADS, 2, SYNC);
    t.daemon.wait_cache("pods", 1, SYNC);
    let status = t.daemon.status();
    assert!(
        status.caches.iter().any(|c| c.errors > 0),
        "the outage was seen by the watches: {status:?}"
    );
    t.add_del("after", &uid);
    assert_eq!(gets(&t, "/api/v1/namespaces/default/pods/after"), 0);
    assert_eq!(
        gets(
            &t,
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/second"
        ),
        0
    );
}

#[test]
fn the_daemon_speaks_http2_to_the_api_over_one_connection() {
    let mut t = new();
    t.nad("multi", "tkm0", "10.86.5.0/24");
    // One pod from the cache, one another node's (a GET): the list, the two watches, the GET,
    // the status PATCHes and the events all go as streams of one connection.
    let cached = t.pod("cached", NODE, "multi");
    let elsewhere = t.pod("elsewhere", "node-2", "multi");
    t.start(Duration::from_secs(10));
    t.daemon.wait_cache(NADS, 1, SYNC);
    t.daemon.wait_cache("pods", 1, SYNC);
    t.add_del("cached", &cached);
    t.add_del("elsewhere", &elsewhere);
    let requests = t.api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/pods/elsewhere"))
            && requests.iter().any(|r| r.query.contains("watch"))
            && requests.iter().filter(|r| r.method == "PATCH").count() >= 2,
        "{requests:#?}"
    );
    let not_h2: Vec<_> = requests
        .iter()
        .filter(|r| r.version != "HTTP/2.0")
        .collect();
    assert!(not_h2.is_empty(), "requests not in HTTP/2: {not_h2:#?}");
    let mut connections: Vec<u64> = requests.iter().map(|r| r.connection).collect();
    connections.sort_unstable();
    connections.dedup();
    assert_eq!(connections.len(), 1, "one connection: {requests:#?}");
}

#[test]
fn a_pod_the_cache_does_not_hold_costs_one_get() {
    let mut t = new();
    t.nad("other", "tko0", "10.86.4.0/24");
    // Another node's pod is never in this node's cache (as a static pod is not, in the reference).
    let uid = t.pod("elsewhere", "node-2", "other");
    t.start(Duration::from_secs(10));
    t.daemon.wait_cache(NADS, 1, SYNC);
    t.daemon.wait_cache("pods", 0, SYNC);
    t.add_del("elsewhere", &uid);
    assert_eq!(gets(&t, "/api/v1/namespaces/default/pods/elsewhere"), 1);
    assert_eq!(
        gets(
            &t,
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/other"
        ),
        0
    );
}

#[test]
fn the_daemon_starts_and_serves_config_only_networks_while_the_api_is_down() {
    let mut t = new();
    t.api.begin_outage().expect("outage");
    let started = std::time::Instant::now();
    t.start(Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "ready without the API in {:?}",
        started.elapsed()
    );
    t.add_del_config_only();
    let status = t.daemon.status();
    assert!(
        status.kubernetes && status.caches.iter().all(|c| !c.synced),
        "{status:?}"
    );
    t.api.end_outage().expect("restore");
    t.daemon.wait_cache(NADS, 0, SYNC);
}

#[test]
fn multusctl_daemon_reports_readiness_calls_and_cache_state() {
    let mut t = new();
    t.nad("shown", "tkm0", "10.86.5.0/24");
    let uid = t.pod("shown", NODE, "shown");
    t.start(Duration::from_secs(10));
    t.daemon.wait_cache(NADS, 1, SYNC);
    t.daemon.wait_cache("pods", 1, SYNC);
    t.add_del("shown", &uid);
    let socket_dir = t.daemon.socket_dir();
    let ctl = |extra: &[&str]| {
        let out = std::process::Command::new(testkit::bins::product("multusctl"))
            .arg("daemon")
            .arg("--socket-dir")
            .arg(&socket_dir)
            .args(extra)
            .output()
            .expect("multusctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, table) = ctl(&[]);
    println!("{table}");
    assert_eq!(code, Some(0), "{table}");
    assert!(table.contains(": ready"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("pods") && l.contains("yes") && l.contains(" 1 ")),
        "{table}"
    );
    assert!(
        table.contains("ADD code 0: 1") && table.contains("DEL code 0: 1"),
        "{table}"
    );
    let (_, json) = ctl(&["-o", "json"]);
    let doc: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(doc["status"]["ready"], true);
    assert_eq!(doc["status"]["caches"].as_array().unwrap().len(), 2);
    t.daemon.signal(libc::SIGTERM);
    t.daemon.wait_exit(Duration::from_secs(10));
    let (code, table) = ctl(&[]);
    println!("{table}");
    assert_eq!(code, Some(1));
    assert!(table.contains("not running"), "{table}");
}
