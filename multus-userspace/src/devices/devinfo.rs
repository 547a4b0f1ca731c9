//! NPWG device-information files (Device Info spec v1.1.0), under
//! `/var/run/k8s.cni.cncf.io/devinfo` by default:
//!
//! - `dp/<resourceName>-<deviceID>-device.json`, written by a device plugin for each device it
//!   allocates (the name is fixed by the spec, since the plugin and the meta-plugin never talk);
//! - `cni/<network>-<containerID>_<ifname>`, whose path the meta-plugin passes to a delegate as
//!   runtimeConfig `CNIDeviceInfoFile` when the attachment has a `deviceID`. Before the delegate
//!   runs, the device plugin's file is copied there; the delegate may write its own; after ADD it
//!   is read into the network-status `device-info`, and DEL removes it.
//!
//! File names are the reference's (network-attachment-definition-client `GetCNIDeviceInfoPath`
//! and `getDPDeviceInfoPath`, with Multus's `"%s-%s_%s"` for the CNI name), so a node can move
//! between the two implementations with pods running: every `/` in a name becomes `-`. Beyond
//! the reference, every component is checked before it becomes a path: no NUL or control
//! character, no empty component, `/` refused in container IDs and interface names, and the
//! file name within `NAME_MAX`.

use std::{
    fs,
    io::{self, Read},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    cni::{ContainerId, IfName},
    delegate::cache::write_atomic,
};

/// The spec's base directory.
pub const DEFAULT_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo";
/// Sub-directory of the device plugins' files.
pub const DP_SUBDIR: &str = "dp";
/// Sub-directory of the files passed to delegates.
pub const CNI_SUBDIR: &str = "cni";
/// The runtimeConfig key (and capability) that carries the CNI file's path to a delegate.
pub const CNI_DEVICE_INFO_FILE: &str = "CNIDeviceInfoFile";
/// Largest device-info file read.
pub const MAX_FILE: u64 = 1024 * 1024;
/// Longest file name (Linux `NAME_MAX`).
const NAME_MAX: usize = 255;

/// Device-info failures.
#[derive(Debug, thiserror::Error)]
pub enum DevInfoError {
    /// A component of a file name is unusable.
    #[error("invalid {what} {value:?} for a device-info file name: {reason}")]
    InvalidName {
        /// Which component (network name, container ID, interface name, resource name, device ID).
        what: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The file exists and is not a device-info object.
    #[error("device-info file {}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A symbolic link is where a device-info file is read: never followed (a device plugin
    /// could otherwise make the product copy any file of the node into the pod's status).
    #[error("device-info file {} is a symlink, which is never followed; remove it", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("device-info file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
}

/// A device-info object. `type` and `version` are typed; every other key (`pci`, `vhost-user`,
/// `memif`, `vdpa`, and keys of later spec versions) is kept as written, so the object reaches
/// network-status unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `pci`, `vhost-user`, `memif` or `vdpa` (others are kept, not rejected).
    #[serde(rename = "type")]
    pub kind: String,
    /// Spec version of the object (`1.1.0`, `1.0.0`); empty when the writer left it out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Every other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeviceInfo {
    /// `pci.pci-address` (or `vdpa.pci-address`), when present.
    pub fn pci_address(&self) -> Option<&str> {
        ["pci", "vdpa"].iter().find_map(|k| {
            self.extra
                .get(*k)
                .and_then(|v| v.get("pci-address"))
                .and_then(Value::as_str)
        })
    }
}

/// The device-info directory; configurable so tests use temporary directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevInfoDir {
    /// The base directory (holds `cni/` and `dp/`).
    pub root: PathBuf,
}

impl Default for DevInfoDir {
    fn default() -> Self {
        DevInfoDir {
            root: PathBuf::from(DEFAULT_DEVINFO_DIR),
        }
    }
}

impl DevInfoDir {
    /// A device-info directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DevInfoDir {
        DevInfoDir { root: root.into() }
    }

    /// The CNI file of one attachment: `<root>/cni/<network>-<containerID>_<ifname>`, `/` in the
    /// network name replaced by `-` (the reference's name, for `CNIDeviceInfoFile`). `network` is
    /// the delegate's network name (its configuration's `name`), as in the reference.
    pub fn cni_path(
        &self,
        network: &str,
        container_id: &ContainerId,
        ifname: &str,
    ) -> Result<PathBuf, DevInfoError> {
        let network = component("network name", network)?;
        IfName::parse(ifname).map_err(|e| invalid("interface name", ifname, e.to_string()))?;
        file_name(
            &self.root.join(CNI_SUBDIR),
            format!("{network}-{container_id}_{ifname}"),
        )
    }

    /// A device plugin's file: `<root>/dp/<resourceName>-<deviceID>-device.json`, `/` replaced
    /// by `-` in both.
    pub fn dp_path(&self, resource: &str, device_id: &str) -> Result<PathBuf, DevInfoError> {
        let resource = component("resource name", resource)?;
        let device_id = component("device ID", device_id)?;
        file_name(
            &self.root.join(DP_SUBDIR),
            format!("{resource}-{device_id}-device.json"),
        )
    }

    /// Loads a device plugin's file; `Ok(None)` when the plugin wrote none (most do not).
    pub fn load_dp(
        &self,
        resource: &str,
        device_id: &str,
    ) -> Result<Option<DeviceInfo>, DevInfoError> {
        load(&self.dp_path(resource, device_id)?)
    }

    /// Copies a device plugin's file to the attachment's CNI file (replacing an older copy) so
    /// the delegate finds it; `Ok(false)` when the plugin wrote none.
    pub fn copy_dp_to_cni(
        &self,
        resource: &str,
        device_id: &str,
        cni_path: &Path,
    ) -> Result<bool, DevInfoError> {
        match self.load_dp(resource, device_id)? {
            Some(info) => save(cni_path, &info).map(|()| true),
            None => Ok(false),
        }
    }
}

/// Loads a device-info file: `Ok(None)` when it does not exist, an error when it exists and is
/// not a JSON object with a string `type`, or is a symlink (not followed).
pub fn load(path: &Path) -> Result<Option<DeviceInfo>, DevInfoError> {
    let io_err = |source| DevInfoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let malformed = |reason: String| DevInfoError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(DevInfoError::Symlink {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(malformed(format!("larger than {MAX_FILE} bytes")));
    }
    let value: Value = crate::explain::from_bytes(&bytes).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("not a JSON object".into()));
    }
    match value.get("type") {
        Some(Value::String(t)) if !t.is_empty() => {}
        Some(Value::String(_)) | None => return Err(malformed("no \"type\"".into())),
        Some(other) => return Err(malformed(format!("\"type\" is {other}, not a string"))),
    }
    if value.get("version").is_some_and(|v| !v.is_string()) {
        return Err(malformed("\"version\" is not a string".into()));
    }
    crate::explain::from_value(&value)
        .map(Some)
        .map_err(|e| malformed(e.to_string()))
}

/// Writes a device-info file atomically (temporary file in the same directory, then rename),
/// creating the directory (0755) when needed; the file is 0644.
pub fn save(path: &Path, info: &DeviceInfo) -> Result<(), DevInfoError> {
    let io_err = |p: &Path, source| DevInfoError::Io {
        path: p.to_path_buf(),
        source,
    };
    let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
        return Err(io_err(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        ));
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| io_err(dir, e))?;
    let json = serde_json::to_vec(info).map_err(|e| DevInfoError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &json, 0o644).map_err(|e| io_err(path, e))
}

/// Removes a device-info file; a file that is already gone is not an error (DEL is idempotent).
pub fn remove(path: &Path) -> Result<(), DevInfoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DevInfoError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn invalid(what: &'static str, value: &str, reason: String) -> DevInfoError {
    DevInfoError::InvalidName {
        what,
        value: value.to_string(),
        reason,
    }
}

/// A name that becomes part of a file name: `/` replaced by `-` (as in the reference), and no
/// empty value, NUL or control character.
fn component(what: &'static str, value: &str) -> Result<String, DevInfoError> {
    if value.is_empty() {
        return Err(invalid(what, value, "it is empty".into()));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(
            what,
            value,
            format!("it contains the control character {c:?}"),
        ));
    }
    Ok(value.replace('/', "-"))
}

fn file_name(dir: &Path, name: String) -> Result<PathBuf, DevInfoError> {
    if name.len() > NAME_MAX {
        return Err(invalid(
            "file name",
            &name,
            format!("longer than {NAME_MAX} bytes"),
        ));
    }
    // unreachable for names built above (they always contain '-'), kept as the last guard
    if name.contains('/') || name == "." || name == ".." {
        return Err(invalid(
            "file name",
            &name,
            "not a single path component".into(),
        ));
    }
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cid(id: &str) -> ContainerId {
        ContainerId::parse(id).unwrap()
    }

    #[test]
    fn reference_file_names() {
        let d = DevInfoDir::default();
        assert_eq!(
            d.cni_path("sriov-net", &cid("8f0c7a1b2c3d"), "net1")
                .unwrap(),
            Path::new("/var/run/k8s.cni.cncf.io/devinfo/cni/sriov-net-8f0c7a1b2c3d_net1")
        );
        assert_eq!(
            d.cni_path("ns/sriov-net", &cid("abc"), "net1").unwrap(),
            Path::new("/var/run/k8s.cni.cncf.io/devinfo/cni/ns-sriov-net-abc_net1")
        );
        assert_eq!(
            d.dp_path("intel.com/intel_sriov_netdevice", "0000:18:02.5").unwrap(),
            Path::new("/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-intel_sriov_netdevice-0000:18:02.5-device.json")
        );
        assert_eq!(
            DevInfoDir::new("/tmp/x").dp_path("a/b/c", "d/e").unwrap(),
            Path::new("/tmp/x/dp/a-b-c-d-e-device.json")
        );
    }

    #[test]
    fn names_that_would_escape_or_break_the_path_are_refused() {
        let d = DevInfoDir::new("/tmp/x");
        let bad_cni = [
            ("", "abc", "net1", "network name"),
            ("net\0", "abc", "net1", "network name"),
            ("net\n", "abc", "net1", "network name"),
            ("net", "abc", "..", "interface name"),
            ("net", "abc", "a/b", "interface name"),
            ("net", "abc", "eth\0", "interface name"),
            ("net", "abc", "", "interface name"),
        ];
        // A container id that could escape cannot be made at all (cni::ContainerId).
        for id in ["../etc", "a/b", ""] {
            assert!(ContainerId::parse(id).is_err(), "{id:?}");
        }
        for (net, id, ifname, what) in bad_cni {
            let err = d.cni_path(net, &cid(id), ifname).unwrap_err();
            assert!(
                matches!(&err, DevInfoError::InvalidName { what: w, .. } if *w == what),
                "{net:?} {id:?} {ifname:?}: {err}"
            );
        }
        for (resource, dev) in [("", "x"), ("r/x", ""), ("r\0", "x"), ("r/x", "a\u{7f}")] {
            assert!(
                matches!(
                    d.dp_path(resource, dev),
                    Err(DevInfoError::InvalidName { .. })
                ),
                "{resource:?} {dev:?}"
            );
        }
        // "..": harmless once '/' is gone, and stays inside dp/
        let p = d.dp_path("..", "..").unwrap();
        assert_eq!(p, Path::new("/tmp/x/dp/..-..-device.json"));
        let p = d.cni_path("../../etc", &cid("abc"), "net1").unwrap();
        assert_eq!(p.parent().unwrap(), Path::new("/tmp/x/cni"));
        assert!(matches!(
            d.dp_path(&"r".repeat(250), "x"),
            Err(DevInfoError::InvalidName {
                what: "file name",
                ..
            })
        ));
        // the longest accepted name can still be written (its temporary sibling is short)
        let dir = tempfile::tempdir().unwrap();
        let long = DevInfoDir::new(dir.path())
            .dp_path(&"r".repeat(241), "x")
            .unwrap();
        assert_eq!(long.file_name().unwrap().len(), 255);
        save(
            &long,
            &DeviceInfo {
                kind: "pci".into(),
                version: String::new(),
                extra: Map::new(),
            },
        )
        .unwrap();
        assert!(load(&long).unwrap().is_some());
    }

    #[test]
    fn load_keeps_unknown_keys_and_reports_absence_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(load(&path).unwrap(), None);
        let doc = json!({
            "type": "pci", "version": "1.1.0",
            "pci": {"pci-address": "0000:18:02.5", "rdma-device": "mlx5_3", "pf-pci-address": "0000:18:00.0"},
            "x-future": [1, 2]
        });
        fs::write(&path, doc.to_string()).unwrap();
        let info = load(&path).unwrap().unwrap();
        assert_eq!(info.kind, "pci");
        assert_eq!(info.version, "1.1.0");
        assert_eq!(info.pci_address(), Some("0000:18:02.5"));
        assert_eq!(serde_json::to_value(&info).unwrap(), doc);

        fs::write(
            &path,
            r#"{"type":"vhost-user","vhost-user":{"mode":"server","path":"/var/run/vhu/x.sock"}}"#,
        )
        .unwrap();
        let info = load(&path).unwrap().unwrap();
        assert_eq!(
            (
                info.kind.as_str(),
                info.version.as_str(),
                info.pci_address()
            ),
            ("vhost-user", "", None)
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for (text, want) in [
            ("", "empty; expected JSON"),
            ("[1]", "not a JSON object"),
            ("{}", "no \"type\""),
            (r#"{"type":""}"#, "no \"type\""),
            (r#"{"type":7}"#, "not a string"),
            (r#"{"type":"pci","version":1}"#, "\"version\""),
        ] {
            fs::write(&path, text).unwrap();
            let err = load(&path).unwrap_err();
            assert!(
                matches!(err, DevInfoError::Malformed { .. }) && err.to_string().contains(want),
                "{text}: {err}"
            );
        }
        fs::write(&path, vec![b' '; MAX_FILE as usize + 1]).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("larger"));
        // a directory where the file should be
        assert!(matches!(load(dir.path()), Err(DevInfoError::Io { .. })));
        // a symlink to a valid file, or a dangling one: never followed
        let target = dir.path().join("target");
        fs::write(&target, r#"{"type":"pci"}"#).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(load(&link), Err(DevInfoError::Symlink { .. })));
        fs::remove_file(&target).unwrap();
        assert!(matches!(load(&link), Err(DevInfoError::Symlink { .. })));
    }

    #[test]
    fn copy_from_device_plugin_then_remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let d = DevInfoDir::new(dir.path().join("devinfo"));
        let cni = d.cni_path("sriov-net", &cid("abc"), "net1").unwrap();
        // no plugin file: nothing copied, nothing created
        assert!(!d
            .copy_dp_to_cni("intel.com/sriov", "0000:18:02.5", &cni)
            .unwrap());
        assert!(!cni.exists());
        let info = DeviceInfo {
            kind: "pci".into(),
            version: "1.1.0".into(),
            extra: json!({"pci": {"pci-address": "0000:18:02.5"}})
                .as_object()
                .unwrap()
                .clone(),
        };
        save(
            &d.dp_path("intel.com/sriov", "0000:18:02.5").unwrap(),
            &info,
        )
        .unwrap();
        assert!(d
            .copy_dp_to_cni("intel.com/sriov", "0000:18:02.5", &cni)
            .unwrap());
        assert_eq!(load(&cni).unwrap(), Some(info.clone()));
        // an older copy is replaced
        assert!(d
            .copy_dp_to_cni("intel.com/sriov", "0000:18:02.5", &cni)
            .unwrap());
        assert_eq!(
            fs::read_dir(cni.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file left"
        );
        remove(&cni).unwrap();
        assert!(!cni.exists());
        remove(&cni).unwrap();
        // removing inside a directory that does not exist is also fine
        remove(&dir.path().join("nowhere/x")).unwrap();
    }
}
