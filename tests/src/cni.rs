//! Running the Debian reference CNI plugins (/usr/lib/cni) directly, the way a runtime does.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

/// Where the Debian `containernetworking-plugins` package installs the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// The output of one plugin call.
#[derive(Debug)]
pub struct CniOutput {
    /// Exit status was 0.
    pub ok: bool,
    /// stdout (the result or the error JSON).
    pub stdout: String,
    /// stderr (plugin logs).
    pub stderr: String,
}

/// Runs `plugin` with `command` (ADD, DEL, CHECK) and the network configuration `conf` on stdin.
pub fn exec(
    plugin: &str,
    command: &str,
    container_id: &str,
    netns: &Path,
    ifname: &str,
    conf: &serde_json::Value,
) -> CniOutput {
    let path = Path::new(CNI_BIN_DIR).join(plugin);
    assert!(path.exists(), "{} is missing: install Debian's containernetworking-plugins", path.display());
    let mut child = Command::new(&path)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", CNI_BIN_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    child.stdin.take().expect("stdin").write_all(conf.to_string().as_bytes()).expect("write config");
    let out = child.wait_with_output().expect("plugin output");
    CniOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    let out = exec("sbr", command, "debian-sbr", netns, ifname, &sbr_conf(netns, ifname, ips));
    assert!(out.ok, "sbr {command} failed: {}\n{}", out.stdout, out.stderr);
}
