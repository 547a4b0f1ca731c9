//! Leak checks: what a plugin may leave behind.

use std::path::Path;

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
