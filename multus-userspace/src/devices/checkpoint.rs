//! The kubelet device manager's checkpoint file
//! (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`): the devices allocated to a
//! pod, matched by pod UID, when the kubelet's PodResources API does not answer.
//!
//! The checkpoint's `Checksum` is not verified: kubelet computes it over a Go-specific deep
//! hash of its in-memory structures that cannot be reproduced outside Go.

use std::{fs, io, path::Path};

use serde_json::Value;

use super::{PodDevices, Source};

/// The kubelet device manager's checkpoint file.
pub const DEFAULT_CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";
/// Largest checkpoint file read.
pub const MAX_CHECKPOINT: u64 = 64 * 1024 * 1024;

/// Why the checkpoint file gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The pod UID is unknown, and the checkpoint is keyed by UID.
    #[error("the pod UID is unknown (K8S_POD_UID was not passed)")]
    NoUid,
    /// The file does not exist.
    #[error("the file does not exist")]
    Missing,
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(#[source] io::Error),
    /// The file is not the JSON kubelet writes.
    #[error("malformed: {0}")]
    Malformed(String),
}

/// Reads the checkpoint at `path` and collects the devices of the pod with UID `uid`.
pub fn read(path: &Path, uid: &str) -> Result<PodDevices, CheckpointError> {
    if uid.is_empty() {
        return Err(CheckpointError::NoUid);
    }
    let text = read_capped(path, MAX_CHECKPOINT)?;
    parse(&text, uid)
}

fn read_capped(path: &Path, cap: u64) -> Result<String, CheckpointError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CheckpointError::Missing,
        _ => CheckpointError::Read(e),
    })?;
    let mut text = String::new();
    file.take(cap + 1)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => CheckpointError::Malformed("not UTF-8".into()),
            _ => CheckpointError::Read(e),
        })?;
    if text.len() as u64 > cap {
        return Err(CheckpointError::Malformed(format!(
            "larger than {cap} bytes"
        )));
    }
    Ok(text)
}

/// Parses a device-manager checkpoint and collects the devices of the pod with UID `uid`.
///
/// Both formats kubelet has written are accepted: `DeviceIDs` as a map from NUMA node to IDs
/// (kubelet 1.20 and later) and as a plain list (earlier). Unknown keys (`AllocResp`,
/// `RegisteredDevices`, `Checksum`) are ignored.
pub fn parse(text: &str, uid: &str) -> Result<PodDevices, CheckpointError> {
    let root: Value = crate::explain::from_bytes(text.as_bytes())
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let entries = match root.get("Data").and_then(|d| d.get("PodDeviceEntries")) {
        Some(Value::Array(entries)) => entries.as_slice(),
        // kubelet writes null when no pod has devices
        Some(Value::Null) => &[],
        Some(_) => {
            return Err(CheckpointError::Malformed(
                "Data.PodDeviceEntries is not a list".into(),
            ))
        }
        None => {
            if root.get("Data").is_some_and(Value::is_object) {
                &[]
            } else {
                return Err(CheckpointError::Malformed("no Data object".into()));
            }
        }
    };
    let mut devices = PodDevices::new(Source::Checkpoint);
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        let (Some(pod_uid), Some(resource)) = (field("PodUID"), field("ResourceName")) else {
            return Err(CheckpointError::Malformed(format!(
                "entry {i} lacks PodUID or ResourceName"
            )));
        };
        if pod_uid != uid {
            continue;
        }
        let ids = device_ids(entry.get("DeviceIDs")).map_err(|reason| {
            CheckpointError::Malformed(format!("entry {i} ({resource}): {reason}"))
        })?;
        devices.add(resource, ids);
    }
    Ok(devices)
}

fn device_ids(value: Option<&Value>) -> Result<Vec<String>, String> {
    let strings = |list: &[Value]| -> Result<Vec<String>, String> {
        list.iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("device ID {v} is not a string"))
            })
            .collect()
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => strings(list),
        Some(Value::Object(per_numa)) => {
            let mut ids = Vec::new();
            for (numa, list) in per_numa {
                match list {
                    Value::Array(list) => ids.extend(strings(list)?),
                    Value::Null => {}
                    _ => return Err(format!("DeviceIDs[{numa:?}] is not a list")),
                }
            }
            Ok(ids)
        }
        Some(_) => Err("DeviceIDs is neither a list nor a map of lists".into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const NEW_FORMAT: &str = r#"{"Data":{"PodDeviceEntries":[
        {"PodUID":"uid-1","ContainerName":"app","ResourceName":"intel.com/sriov",
         "DeviceIDs":{"0":["0000:18:02.5"],"1":["0000:86:02.1","0000:86:02.2"]},"AllocResp":"CgQKAkZPTw=="},
        {"PodUID":"uid-1","ContainerName":"sidecar","ResourceName":"intel.com/sriov",
         "DeviceIDs":{"0":["0000:18:02.5","0000:18:02.7"]},"AllocResp":""},
        {"PodUID":"uid-1","ContainerName":"app","ResourceName":"nvidia.com/gpu","DeviceIDs":{"-1":["GPU-1"]}},
        {"PodUID":"uid-2","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:18:03.0"]}}
      ],
      "RegisteredDevices":{"intel.com/sriov":["0000:18:02.5","0000:18:02.6"]}},
      "Checksum":1234567890}"#;

    pub(crate) const OLD_FORMAT: &str = r#"{"Data":{"PodDeviceEntries":[
        {"PodUID":"uid-1","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":["0000:18:02.5","0000:18:02.6"],"AllocResp":null},
        {"PodUID":"uid-9","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":["0000:18:03.0"]}
      ],"RegisteredDevices":{}},"Checksum":42}"#;

    #[test]
    fn checkpoint_numa_map_format() {
        let d = parse(NEW_FORMAT, "uid-1").unwrap();
        assert_eq!(d.source, Source::Checkpoint);
        assert_eq!(
            d.ids("intel.com/sriov"),
            [
                "0000:18:02.5",
                "0000:86:02.1",
                "0000:86:02.2",
                "0000:18:02.7"
            ]
        );
        assert_eq!(d.ids("nvidia.com/gpu"), ["GPU-1"]);
        assert!(d.ids("other/x").is_empty());
        assert_eq!(
            parse(NEW_FORMAT, "uid-2").unwrap().ids("intel.com/sriov"),
            ["0000:18:03.0"]
        );
        assert!(parse(NEW_FORMAT, "uid-404").unwrap().resources.is_empty());
    }

    #[test]
    fn checkpoint_plain_list_format() {
        let d = parse(OLD_FORMAT, "uid-1").unwrap();
        assert_eq!(d.ids("intel.com/sriov"), ["0000:18:02.5", "0000:18:02.6"]);
    }

    #[test]
    fn checkpoint_without_pods() {
        for text in [
            r#"{"Data":{"PodDeviceEntries":null,"RegisteredDevices":null},"Checksum":1}"#,
            r#"{"Data":{},"Checksum":1}"#,
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":null}]}}"#,
        ] {
            assert!(
                parse(text, "uid-1").unwrap().ids("r/x").is_empty(),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_checkpoints() {
        for (text, want) in [
            ("not json", "expected"),
            (r#"{"Checksum":1}"#, "no Data"),
            (r#"{"Data":{"PodDeviceEntries":{}}}"#, "not a list"),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1"}]}}"#,
                "lacks PodUID or ResourceName",
            ),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":"a"}]}}"#,
                "neither",
            ),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":[1]}]}}"#,
                "not a string",
            ),
            (
                r#"{"Data":{"PodDeviceEntries":[{"PodUID":"uid-1","ResourceName":"r/x","DeviceIDs":{"0":"a"}}]}}"#,
                "not a list",
            ),
        ] {
            let err = parse(text, "uid-1").unwrap_err();
            assert!(matches!(err, CheckpointError::Malformed(_)), "{text}");
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn an_oversized_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        fs::write(&path, "x".repeat(100)).unwrap();
        assert!(matches!(
            read_capped(&path, 10),
            Err(CheckpointError::Malformed(_))
        ));
        assert_eq!(read_capped(&path, 100).unwrap().len(), 100);
    }
}
