//! Running the Debian reference CNI plugins (/usr/lib/cni) directly, the way a runtime does.

use std::{path::Path, process::Command};

use crate::{bins, CniOutput};

/// Runs `plugin` with `command` (ADD, DEL, CHECK) and the network configuration `conf` on stdin.
pub fn exec(
    plugin: &str,
    command: &str,
    container_id: &str,
    netns: &Path,
    ifname: &str,
    conf: &serde_json::Value,
) -> CniOutput {
    let path = bins::reference(plugin);
    let mut cmd = Command::new(&path);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", bins::REFERENCE_PLUGINS);
    CniOutput::capture(&mut cmd, &path, conf.to_string().as_bytes())
}

/// A chained `sbr` configuration whose prevResult gives `ifname` the addresses (CIDR, gateway).
pub fn sbr_conf(netns: &Path, ifname: &str, ips: &[(&str, Option<&str>)]) -> serde_json::Value {
    let ips: Vec<serde_json::Value> = ips
        .iter()
        .map(|(cidr, gw)| {
            let mut ip = serde_json::json!({ "address": cidr, "interface": 0 });
            if let Some(gw) = gw {
                ip["gateway"] = serde_json::json!(gw);
            }
            ip
        })
        .collect();
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "sbr-test",
        "type": "sbr",
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{ "name": ifname, "sandbox": netns }],
            "ips": ips,
        }
    })
}

/// Runs Debian's sbr for ADD or DEL on `ifname`, panicking on failure.
pub fn debian_sbr(command: &str, netns: &Path, ifname: &str, ips: &[(&str, Option<&str>)]) {
    let out = exec(
        "sbr",
        command,
        "debian-sbr",
        netns,
        ifname,
        &sbr_conf(netns, ifname, ips),
    );
    assert!(
        out.status.success(),
        "sbr {command} failed: {}\n{}",
        out.stdout,
        out.stderr
    );
}
