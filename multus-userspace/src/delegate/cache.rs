//! The delegate cache: one file per container under `cniDir`, written atomically (temporary file,
//! then rename) with mode 0600 before any delegate runs, rewritten with the results after ADD, and
//! read by DEL, CHECK and GC so they work without the Kubernetes API.
//!
//! Files are not fsynced: they are exactly as durable as the delegates' own state (host-local's
//! leases are written the same way). A torn or corrupt file is reported as [`CacheError::Corrupt`]
//! so callers can fall back instead of failing.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Attachment;
use crate::cni::env::validate_container_id;

/// Format version written in every cache file.
pub const CACHE_FORMAT: u32 = 1;

/// The Kubernetes pod a container belongs to, when known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// What the cache records for one container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Format version.
    pub format: u32,
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Network namespace path at ADD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// Interface name the runtime asked for.
    pub ifname: String,
    /// Version the runtime asked for.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The runtime's CNI_ARGS.
    #[serde(rename = "cniArgs", default)]
    pub cni_args: String,
    /// The pod, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// The attachments in ADD order.
    pub attachments: Vec<Attachment>,
    /// Unix time of the ADD.
    #[serde(rename = "createdAt", default)]
    pub created_at: u64,
    /// Keys written by other versions (kept).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Cache failures.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("delegate cache {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file exists but cannot be used (torn write, foreign format).
    #[error("delegate cache {0} is unreadable ({1})")]
    Corrupt(PathBuf, String),
    /// A container id that cannot be a file name.
    #[error("container id {0:?} cannot name a cache file")]
    BadId(String),
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache under `cni_dir`.
    pub fn new(cni_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: cni_dir.into(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one container.
    pub fn path(&self, container_id: &str) -> Result<PathBuf, CacheError> {
        validate_container_id(container_id)
            .map_err(|_| CacheError::BadId(container_id.to_string()))?;
        Ok(self.dir.join(container_id))
    }

    /// Creates the directory (0700) if needed.
    pub fn ensure_dir(&self) -> Result<(), CacheError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| CacheError::Io(self.dir.clone(), e))
    }

    /// Writes an entry atomically with mode 0600.
    pub fn write(&self, entry: &CacheEntry) -> Result<(), CacheError> {
        let path = self.path(&entry.container_id)?;
        self.ensure_dir()?;
        let bytes =
            serde_json::to_vec(entry).map_err(|e| CacheError::Io(path.clone(), e.into()))?;
        write_atomic(&path, &bytes, 0o600).map_err(|e| CacheError::Io(path.clone(), e))
    }

    /// Reads an entry; `Ok(None)` when there is none.
    pub fn read(&self, container_id: &str) -> Result<Option<CacheEntry>, CacheError> {
        let path = self.path(container_id)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::Io(path, e)),
        };
        let entry: CacheEntry = crate::explain::from_bytes(&bytes)
            .map_err(|e| CacheError::Corrupt(path.clone(), e.to_string()))?;
        if entry.format != CACHE_FORMAT || entry.container_id != container_id {
            return Err(CacheError::Corrupt(
                path,
                format!(
                    "format {} for container {:?}",
                    entry.format, entry.container_id
                ),
            ));
        }
        Ok(Some(entry))
    }

    /// Removes an entry; a missing one is fine.
    pub fn remove(&self, container_id: &str) -> Result<(), CacheError> {
        let path = self.path(container_id)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Io(path, e)),
            _ => Ok(()),
        }
    }

    /// The container ids that have an entry.
    pub fn list(&self) -> Result<Vec<String>, CacheError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CacheError::Io(self.dir.clone(), e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_container_id(n).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory (created with `mode`),
/// then renames it over `path`: readers see the old or the new content, never a mix. The temporary
/// name is short, so a `path` whose name is near NAME_MAX (a 255-byte container id) still has one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|_| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::NetworkConfig;

    fn entry(id: &str) -> CacheEntry {
        CacheEntry {
            format: CACHE_FORMAT,
            container_id: id.into(),
            netns: Some("/var/run/netns/x".into()),
            ifname: "eth0".into(),
            cni_version: "1.0.0".into(),
            cni_args: String::new(),
            pod: None,
            attachments: vec![Attachment::new(
                "n",
                "eth0",
                NetworkConfig::from_value(serde_json::json!({"type": "bridge", "x": 1}), "t")
                    .unwrap(),
                "",
            )],
            created_at: 1,
            extra: Map::new(),
        }
    }

    #[test]
    fn writes_reads_lists_removes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("multus"));
        cache.write(&entry("abc")).unwrap();
        let mode = fs::metadata(cache.path("abc").unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(cache.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(cache.read("abc").unwrap().unwrap(), entry("abc"));
        assert_eq!(cache.list().unwrap(), vec!["abc".to_string()]);
        cache.remove("abc").unwrap();
        cache.remove("abc").unwrap();
        assert!(cache.read("abc").unwrap().is_none());
    }

    #[test]
    fn the_longest_container_id_is_cached() {
        // 255 bytes: the spec's id fills NAME_MAX, and the temporary file must still fit.
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let id = "a".repeat(255);
        cache.write(&entry(&id)).unwrap();
        assert_eq!(
            cache.read(&id).unwrap().map(|e| e.container_id),
            Some(id.clone())
        );
        assert_eq!(cache.list().unwrap(), vec![id]);
    }

    #[test]
    fn torn_files_are_corrupt_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let full = serde_json::to_vec(&entry("abc")).unwrap();
        fs::write(cache.path("abc").unwrap(), &full[..full.len() / 2]).unwrap();
        assert!(matches!(cache.read("abc"), Err(CacheError::Corrupt(..))));
        fs::write(cache.path("abc").unwrap(), b"").unwrap();
        assert!(matches!(cache.read("abc"), Err(CacheError::Corrupt(..))));
        assert!(matches!(cache.path("../x"), Err(CacheError::BadId(_))));
    }
}
