//! Leak checks: what a plugin may leave behind.

use std::path::Path;

use crate::{netns::Netns, node::Node};

/// IP leases held by host-local under `data_dir` (files named like addresses), as `network/ip`.
pub fn host_local_leases(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(nets) = std::fs::read_dir(data_dir) else {
        return out;
    };
    for net in nets.flatten() {
        let Ok(files) = std::fs::read_dir(net.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.parse::<std::net::IpAddr>().is_ok() {
                out.push(format!("{}/{name}", net.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

/// Files in the multus cache directory (the node-wide `.lock` file excluded: it is not per
/// container), and those of libcni's result cache in its `results/` (as `results/<name>`; the
/// reference Multus's libcni keeps it there).
pub fn cache_files(cache_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(cache_dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == ".lock" {
            continue;
        }
        if name == "results" && e.path().is_dir() {
            for r in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                out.push(format!("results/{}", r.file_name().to_string_lossy()));
            }
            continue;
        }
        out.push(name);
    }
    out.sort();
    out
}

/// Everything a pod namespace holds beyond what it had: links (but `lo`), routes not in
/// `routes_before`, neighbour entries, and an IPv4 `rp_filter` (all, default) other than
/// `rp_filter` when given. Waits for retired SBR carriers first (up to 5 s). Readable lines;
/// empty: nothing left.
pub fn pod_leftovers(
    pod: &Netns,
    routes_before: &[String],
    rp_filter: Option<&str>,
) -> Vec<String> {
    crate::sbr::carriers_gone(pod);
    let mut left: Vec<String> = pod
        .link_names()
        .into_iter()
        .map(|l| format!("pod link {l}"))
        .collect();
    left.extend(
        pod.all_routes()
            .iter()
            .filter(|r| !routes_before.contains(r))
            .map(|r| format!("pod route {r}")),
    );
    let neigh = pod.ip(&["neigh", "show"]);
    left.extend(
        String::from_utf8_lossy(&neigh.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("pod neighbour {l}")),
    );
    if let Some(want) = rp_filter {
        for key in ["all", "default"] {
            let v = pod.read_sysctl(&format!("net.ipv4.conf.{key}.rp_filter"));
            if v.trim() != want {
                left.push(format!("pod rp_filter {key} = {}", v.trim()));
            }
        }
    }
    left
}

/// Everything left on a node after its pods are gone: links in its namespace (but `keep`),
/// host-local leases, multus cache files, anything in `bpffs` (pins, program versions), entries
/// in the node-wide SBR maps, anchor namespaces still mounted below `bpffs`, and files in
/// `device_info_dir`. Readable lines; empty: nothing left.
pub fn node_leftovers(
    node: &Node,
    keep: &[&str],
    bpffs: &Path,
    device_info_dir: &Path,
) -> Vec<String> {
    let mut left: Vec<String> = node
        .ns
        .link_names()
        .into_iter()
        .filter(|l| !keep.contains(&l.as_str()))
        .map(|l| format!("node link {l}"))
        .collect();
    left.extend(
        host_local_leases(&node.ipam_dir())
            .into_iter()
            .map(|l| format!("lease {l}")),
    );
    left.extend(
        cache_files(&node.cache_dir())
            .into_iter()
            .map(|f| format!("cache file {f}")),
    );
    left.extend(
        crate::bpffs::entries(bpffs)
            .into_iter()
            .map(|p| format!("bpffs {p}")),
    );
    for map in ["src", "defaults", "counters", "users"] {
        left.extend(
            crate::sbr::node_map_cookies(bpffs, map)
                .into_iter()
                .map(|c| format!("node map {map} entry of cookie {c}")),
        );
    }
    // An anchor namespace is a mount below the bpffs directory.
    let below = format!("{}/", bpffs.to_string_lossy());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(
        mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&below))
            .map(|m| format!("mount {m}")),
    );
    left.extend(
        std::fs::read_dir(device_info_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| format!("device-info {}", e.file_name().to_string_lossy())),
    );
    left
}

/// host-local leases held by container `id` under `data_dir` (a lease file holds the id on
/// its first line), as `network/ip`.
pub fn host_local_leases_of(data_dir: &Path, id: &str) -> Vec<String> {
    host_local_leases(data_dir)
        .into_iter()
        .filter(|l| {
            std::fs::read_to_string(data_dir.join(l))
                .is_ok_and(|c| c.lines().next().is_some_and(|first| first.trim() == id))
        })
        .collect()
}
