//! Running the Debian reference CNI plugins (/usr/lib/cni) directly, the way a runtime does, and
//! building the CNI_ARGS a kubelet passes.

use std::{path::Path, process::Command};

use crate::{bins, CniOutput};

/// The CNI_ARGS a kubelet passes for a pod: `IgnoreUnknown=1;K8S_POD_NAMESPACE=<namespace>;
/// K8S_POD_NAME=<name>`, then `;K8S_POD_INFRA_CONTAINER_ID=<id>` and `;K8S_POD_UID=<uid>` when
/// given (in that order).
pub fn k8s_args(
    namespace: &str,
    name: &str,
    infra_container_id: Option<&str>,
    uid: Option<&str>,
) -> String {
    let mut args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}");
    if let Some(id) = infra_container_id {
        args.push_str(&format!(";K8S_POD_INFRA_CONTAINER_ID={id}"));
    }
    if let Some(uid) = uid {
        args.push_str(&format!(";K8S_POD_UID={uid}"));
    }
    args
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

#[cfg(test)]
mod tests {
    use super::k8s_args;

    #[test]
    fn k8s_args_keeps_each_callers_string() {
        assert_eq!(
            k8s_args("ns", "p", Some("c1"), Some("u1")),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1"
        );
        assert_eq!(
            k8s_args("ns", "p", None, Some("u1")),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u1"
        );
        assert_eq!(
            k8s_args("ns1", "p1", None, None),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p1"
        );
    }
}
