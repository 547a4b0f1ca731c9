//! A real CNI client: podman with its CNI backend runs containers on a network whose plugin is
//! `multus` with two delegates; the container sees both interfaces; removing it leaves nothing.

use serde_json::json;
use testkit::{bins, confs, leaks, podman::Podman, Node};

#[test]
fn podman_runs_a_container_on_multus_with_two_networks() {
    let node = Node::new();
    node.install("multus", &bins::product("multus"));
    let podman = Podman::new(&node);
    let mut plugin = confs::multus(
        "1.0.0",
        &node.cache_dir(),
        &node.bin_dir(),
        vec![
            confs::bridge("net-a", "pbra", "10.66.0.0/24", "1.0.0", &node.ipam_dir()),
            confs::bridge_tuning_list("net-b", "pbrb", "10.67.0.0/24", "1.0.0", &node.ipam_dir()),
        ],
    );
    plugin.as_object_mut().unwrap().remove("cniVersion");
    plugin.as_object_mut().unwrap().remove("name");
    podman.network(
        "multusnet",
        &json!({"cniVersion": "1.0.0", "name": "multusnet", "plugins": [plugin]}),
    );
    let cache = node.cache_dir();
    let out = podman.script(&format!(
        "podman network ls --format '{{{{.Name}}}} {{{{.Driver}}}}'\n\
         echo '--- run'\npodman run --rm --network multusnet localhost/bb ip -o addr\n\
         echo '--- detached'\npodman run -d --name keep --network multusnet localhost/bb sleep 60 >/dev/null\n\
         podman exec keep ip -o -4 addr\necho \"--- cache $(ls {cache})\"\n\
         podman rm -f -t 0 keep >/dev/null\necho \"--- after $(ls {cache})\"",
        cache = cache.display()
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("multusnet multus"),
        "podman loaded the multus network (VERSION answered): {stdout}"
    );
    let run = stdout
        .split("--- run")
        .nth(1)
        .unwrap()
        .split("--- detached")
        .next()
        .unwrap();
    assert!(
        run.contains("eth0") && run.contains("inet 10.66.0."),
        "eth0 from net-a: {run}"
    );
    assert!(
        run.contains("net1") && run.contains("inet 10.67.0."),
        "net1 from net-b: {run}"
    );
    let detached = stdout.split("--- detached").nth(1).unwrap();
    assert!(
        detached.contains("net1") && detached.contains("inet 10.67.0."),
        "{detached}"
    );
    let cached = stdout
        .split("--- cache")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        cached.len(),
        64,
        "one cache entry named by podman's container id while it runs: {cached:?}"
    );
    assert_eq!(
        stdout.split("--- after").nth(1).unwrap().trim(),
        "",
        "cache emptied by podman's DEL"
    );
    assert_eq!(
        leaks::host_local_leases(&node.ipam_dir()),
        Vec::<String>::new()
    );
    assert_eq!(leaks::cache_files(&node.cache_dir()), Vec::<String>::new());
    let veths: Vec<String> = node
        .ns
        .link_names()
        .into_iter()
        .filter(|n| n.starts_with("veth"))
        .collect();
    assert_eq!(veths, Vec::<String>::new(), "no host-side veth left");
}
