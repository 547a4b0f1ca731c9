//! The delegate cache: one file per container under `cniDir`, written atomically (temporary file,
//! then rename) with mode 0600 before any delegate runs, rewritten with the results after ADD, and
//! read by DEL, CHECK and GC so they work without the Kubernetes API.
//!
//! Files are not fsynced: they are exactly as durable as the delegates' own state (host-local's
//! leases are written the same way). A torn or corrupt file is reported as [`CacheError::Corrupt`]
//! so callers can fall back instead of failing.
//!
//! A file the reference Multus wrote (a node switched from it) is read too: it and libcni's result
//! cache beside it become an entry of this format ([`super::reference`]), marked
//! [`Origin::Reference`] so that removing the entry also removes those libcni files.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    reference::{self, LibcniRecord, RequestView, LIBCNI_RESULTS_DIR},
    Attachment,
};
use crate::cni::ContainerId;

/// Format version written in every cache file.
pub const CACHE_FORMAT: u32 = 1;

/// The Kubernetes pod a container belongs to, when known (the cache's name for it).
pub use crate::cni::PodIdentity as PodRef;

/// What the cache records for one container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Format version.
    pub format: u32,
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: ContainerId,
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
    /// How far the ADD got (absent in files of older versions: see [`CacheEntry::added`]).
    #[serde(rename = "addState", default, skip_serializing_if = "Option::is_none")]
    pub add_state: Option<AddState>,
    /// Keys written by other versions (kept).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Who wrote the file (never serialised: an entry written back is this format's).
    #[serde(skip)]
    pub origin: Origin,
}

/// Who wrote a cache file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// This implementation.
    #[default]
    Ours,
    /// The reference Multus (converted on reading).
    Reference {
        /// The libcni result-cache files of the container, removed with the entry (as the
        /// reference's libcni removes them after DEL).
        libcni_results: Vec<PathBuf>,
    },
}

/// How far the ADD of a cache entry got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddState {
    /// Written before the first delegate ran; an entry still in this state under the container's
    /// lock is an ADD that crashed or was killed. DEL tears it down like any other.
    Adding,
    /// Rewritten with the results once the ADD succeeded.
    Added,
}

impl CacheEntry {
    /// Whether this entry records an ADD that succeeded. A file of an older version (no
    /// `addState`) did when every attachment has its result, since results were only written
    /// after the last step succeeded.
    pub fn added(&self) -> bool {
        match self.add_state {
            Some(state) => state == AddState::Added,
            None => {
                !self.attachments.is_empty() && self.attachments.iter().all(|a| a.result.is_some())
            }
        }
    }
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
    pub fn path(&self, container_id: &ContainerId) -> PathBuf {
        self.dir.join(container_id)
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
        let path = self.path(&entry.container_id);
        self.ensure_dir()?;
        let bytes =
            serde_json::to_vec(entry).map_err(|e| CacheError::Io(path.clone(), e.into()))?;
        write_atomic(&path, &bytes, 0o600).map_err(|e| CacheError::Io(path.clone(), e))
    }

    /// Reads an entry; `Ok(None)` when there is none. A file of the reference Multus is converted
    /// with what libcni recorded at its ADD ([`Cache::read_for`] when a request is at hand).
    pub fn read(&self, container_id: &ContainerId) -> Result<Option<CacheEntry>, CacheError> {
        self.read_for(container_id, None)
    }

    /// Reads an entry; a file of the reference Multus is converted for `request` (the runtime's
    /// DEL or CHECK: its interface, CNI_ARGS and runtime config are what the reference used).
    pub fn read_for(
        &self,
        container_id: &ContainerId,
        request: Option<&RequestView<'_>>,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let path = self.path(container_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::Io(path, e)),
        };
        decode(&bytes, &path, container_id, request, || {
            let created_at = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            (self.libcni_records(container_id), created_at)
        })
        .map(Some)
    }

    /// libcni's result-cache records of a container (`<dir>/results/<network>-<id>-<ifname>`,
    /// regular files only), as the reference's libcni finds them.
    fn libcni_records(&self, container_id: &ContainerId) -> Vec<LibcniRecord> {
        let dir = self.dir.join(LIBCNI_RESULTS_DIR);
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let part = format!("-{container_id}-");
        let mut records: Vec<LibcniRecord> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.contains(&part)))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let path = e.path();
                let bytes = fs::read(&path).ok()?;
                LibcniRecord::parse(&bytes, &path, container_id)
            })
            .collect();
        records.sort_by(|a, b| a.path.cmp(&b.path));
        records
    }

    /// Removes an entry; a missing one is fine.
    pub fn remove(&self, container_id: &ContainerId) -> Result<(), CacheError> {
        let path = self.path(container_id);
        remove_if_present(&path)
    }

    /// Removes an entry and, for one the reference wrote, the libcni result-cache files it was
    /// read with.
    pub fn remove_entry(
        &self,
        container_id: &ContainerId,
        origin: &Origin,
    ) -> Result<(), CacheError> {
        if let Origin::Reference { libcni_results } = origin {
            for path in libcni_results {
                remove_if_present(path)?;
            }
        }
        self.remove(container_id)
    }

    /// The container ids that have an entry.
    pub fn list(&self) -> Result<Vec<ContainerId>, CacheError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CacheError::Io(self.dir.clone(), e)),
        };
        let mut ids: Vec<ContainerId> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| ContainerId::parse(&n).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn remove_if_present(path: &Path) -> Result<(), CacheError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Io(path.into(), e)),
        _ => Ok(()),
    }
}

/// Decodes the content of the cache file at `path` for `container_id`: this format, or a file of
/// the reference Multus converted with `reference_state` (libcni's records of the container and
/// the file's modification time, asked for only then). Pure but for what `reference_state` reads.
pub fn decode(
    bytes: &[u8],
    path: &Path,
    container_id: &ContainerId,
    request: Option<&RequestView<'_>>,
    reference_state: impl FnOnce() -> (Vec<LibcniRecord>, u64),
) -> Result<CacheEntry, CacheError> {
    let entry: CacheEntry = match crate::explain::from_bytes(bytes) {
        Ok(entry) => entry,
        Err(ours) if bytes.trim_ascii_start().starts_with(b"[") => {
            let delegates = reference::parse(bytes).map_err(|theirs| {
                CacheError::Corrupt(
                    path.to_path_buf(),
                    format!("neither this implementation's format ({ours}) nor the reference Multus's ({theirs})"),
                )
            })?;
            let (records, created_at) = reference_state();
            return reference::to_entry(container_id, &delegates, &records, request, created_at)
                .map_err(|e| {
                    CacheError::Corrupt(
                        path.to_path_buf(),
                        format!("a reference Multus cache file, but {e}"),
                    )
                });
        }
        Err(ours) => return Err(CacheError::Corrupt(path.to_path_buf(), ours.to_string())),
    };
    if entry.format != CACHE_FORMAT || entry.container_id != *container_id {
        return Err(CacheError::Corrupt(
            path.to_path_buf(),
            format!(
                "format {} for container {:?}",
                entry.format, entry.container_id
            ),
        ));
    }
    Ok(entry)
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

    fn cid(id: &str) -> ContainerId {
        ContainerId::parse(id).unwrap()
    }

    fn entry(id: &str) -> CacheEntry {
        CacheEntry {
            format: CACHE_FORMAT,
            container_id: cid(id),
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
            add_state: Some(AddState::Added),
            extra: Map::new(),
            origin: Origin::Ours,
        }
    }

    #[test]
    fn writes_reads_lists_removes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("multus"));
        cache.write(&entry("abc")).unwrap();
        let mode = fs::metadata(cache.path(&cid("abc")))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(cache.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(cache.read(&cid("abc")).unwrap().unwrap(), entry("abc"));
        assert_eq!(cache.list().unwrap(), vec![cid("abc")]);
        cache.remove(&cid("abc")).unwrap();
        cache.remove(&cid("abc")).unwrap();
        assert!(cache.read(&cid("abc")).unwrap().is_none());
    }

    #[test]
    fn the_longest_container_id_is_cached() {
        // 255 bytes: the spec's id fills NAME_MAX, and the temporary file must still fit.
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let id = "a".repeat(255);
        cache.write(&entry(&id)).unwrap();
        assert_eq!(
            cache.read(&cid(&id)).unwrap().map(|e| e.container_id),
            Some(cid(&id))
        );
        assert_eq!(cache.list().unwrap(), vec![cid(&id)]);
    }

    #[test]
    fn reference_files_are_read_with_libcni_records_and_removed_with_them() {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "cluster", "type": "bridge"});
        let bytes = base64::engine::general_purpose::STANDARD.encode(conf.to_string());
        let file = serde_json::json!([{"Conf": {"ipam": {}, "dns": {}}, "Name": "cluster", "Bytes": bytes}]);
        fs::write(dir.path().join("abc"), file.to_string()).unwrap();
        fs::create_dir(dir.path().join("results")).unwrap();
        let record = serde_json::json!({"kind": "cniCacheV1", "containerId": "abc", "ifName": "eth0",
            "networkName": "cluster", "netns": "/run/netns/p", "result": {"cniVersion": "1.0.0"}});
        let results = dir.path().join("results/cluster-abc-eth0");
        fs::write(&results, record.to_string()).unwrap();
        // Another container's record is neither read nor removed.
        let other = dir.path().join("results/cluster-abcd-eth0");
        fs::write(&other, record.to_string()).unwrap();
        let e = cache.read(&cid("abc")).unwrap().unwrap();
        assert_eq!(e.netns.as_deref(), Some(Path::new("/run/netns/p")));
        assert_eq!(e.attachments[0].ifname, "eth0");
        assert_eq!(
            e.origin,
            Origin::Reference {
                libcni_results: vec![results.clone()]
            }
        );
        assert_eq!(cache.list().unwrap(), vec![cid("abc")]);
        cache.remove_entry(&cid("abc"), &e.origin).unwrap();
        assert!(!results.exists() && other.exists());
        assert!(cache.read(&cid("abc")).unwrap().is_none());
        // An array of something else is unreadable, and says which formats it is not.
        fs::write(dir.path().join("abc"), b"[1, 2]").unwrap();
        let err = cache.read(&cid("abc")).unwrap_err().to_string();
        assert!(err.contains("nor the reference Multus's"), "{err}");
    }

    #[test]
    fn torn_files_are_corrupt_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let full = serde_json::to_vec(&entry("abc")).unwrap();
        fs::write(cache.path(&cid("abc")), &full[..full.len() / 2]).unwrap();
        assert!(matches!(
            cache.read(&cid("abc")),
            Err(CacheError::Corrupt(..))
        ));
        fs::write(cache.path(&cid("abc")), b"").unwrap();
        assert!(matches!(
            cache.read(&cid("abc")),
            Err(CacheError::Corrupt(..))
        ));
    }
}
