//! The pin layout on bpffs: one directory per program version (shared by the node's pods) and one
//! per container, validation of the names that become paths, mounting bpffs when needed, and the
//! lock that serialises SBR operations.
//!
//! ```text
//! <bpffs_dir>/_sbr-<hash>[-debug]/      programs and node-wide maps of one version of the object
//!     prog-carrier, prog-egress          the loaded programs
//!     map-src, map-defaults, map-counters   the maps they read (keys start with the pod's cookie)
//!     map-users                          cookies of the pods using this version
//! <bpffs_dir>/<container id>/
//!     map-pod                            the pod record (cookie, attach mode, version, netns path)
//!     map-state                          interface records
//!     map-src                            the pod's own source entries (its share of the node map)
//!     anchor                             mount point of the namespace holding the carrier's peer
//!     link-if-<ifname>                   TCX egress link on a real interface (TCX mode)
//! ```
//! A version directory's name starts with `_`, which no container id does. Directories are created
//! with mode 0700; the kernel creates pins with mode 0600.

use crate::cni::ContainerId;
use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::DirBuilderExt},
    path::{Path, PathBuf},
};

use super::error::describe;
use super::error::SbrError;

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Prefix of the link pins of real interfaces.
const IF_LINK_PREFIX: &str = "link-if-";

/// Checks a Linux interface name (the kernel's `dev_valid_name`, the one rule of
/// [`crate::cni::IfName`]) before it becomes part of a path.
pub fn validate_ifname(name: &str) -> Result<(), SbrError> {
    crate::cni::IfName::parse(name)
        .map(|_| ())
        .map_err(|_| SbrError::InvalidIfName(name.to_string()))
}

/// The node's usual bpffs mount point (systemd mounts one there; other eBPF CNIs mount it when
/// nothing did).
pub const SYS_FS_BPF: &str = "/sys/fs/bpf";

/// Where bpffs must be mounted for `dir` to be on one: `/sys/fs/bpf` for a directory below it
/// (sysfs cannot hold directories of its own, so the subdirectory can only be made on the bpffs),
/// `dir` itself otherwise.
pub fn bpffs_mount_point(dir: &Path) -> &Path {
    let sys = Path::new(SYS_FS_BPF);
    if dir.starts_with(sys) {
        sys
    } else {
        dir
    }
}

/// Makes `dir` a directory on bpffs: mounts bpffs on its mount point ([`bpffs_mount_point`]) when
/// that is not on one, then creates `dir` (mode 0700) if needed. Call it in the node's mount
/// namespace, so that the mount outlives the call.
pub fn ensure_bpffs(dir: &Path) -> Result<(), SbrError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SbrError::Bpffs { path, source }
    };
    if is_bpffs(dir).unwrap_or(false) {
        return Ok(());
    }
    let point = bpffs_mount_point(dir);
    let mkdir = |d: &Path| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(err(d))
    };
    mkdir(point)?;
    if !is_bpffs(point).map_err(err(point))? {
        mount_bpffs(point).map_err(err(point))?;
    }
    mkdir(dir)
}

fn mount_bpffs(point: &Path) -> std::io::Result<()> {
    let target = cstring(point)?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c"bpffs".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            flags,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `path` lives on a bpffs.
pub fn is_bpffs(path: &Path) -> std::io::Result<bool> {
    let c = cstring(path)?;
    // SAFETY: statfs into a zeroed struct with a valid path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

fn cstring(path: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// An exclusive lock on the bpffs directory: SBR operations of one node run one at a time (each
/// takes a few milliseconds), so ADD, DEL and GC of the same pod never interleave.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Blocks until the lock on `dir` is held.
    pub fn acquire(dir: &Path) -> Result<Self, SbrError> {
        let file = File::open(dir).map_err(|source| SbrError::Bpffs {
            path: dir.to_path_buf(),
            source,
        })?;
        loop {
            // SAFETY: flock on an open descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Self { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(SbrError::Bpffs {
                    path: dir.to_path_buf(),
                    source: e,
                });
            }
        }
    }
}

/// The pins of one container.
#[derive(Clone, Debug)]
pub struct PodDir {
    dir: PathBuf,
}

impl PodDir {
    /// The pin directory of `container_id` under `bpffs_dir` (not created).
    pub fn new(bpffs_dir: &Path, container_id: &ContainerId) -> Self {
        Self {
            dir: bpffs_dir.join(container_id),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory exists (a symlink in its place is not it: never followed).
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.dir).is_ok_and(|m| m.is_dir())
    }

    /// Creates the directory (mode 0700) if needed; a symlink (or anything but a directory) in
    /// its place is refused, never followed, so no pin or mount is made through it.
    pub fn create(&self) -> Result<(), SbrError> {
        if let Ok(meta) = std::fs::symlink_metadata(&self.dir) {
            if !meta.is_dir() {
                let what = if meta.file_type().is_symlink() {
                    "a symlink, which is never followed"
                } else {
                    "not a directory"
                };
                return Err(SbrError::Bpffs {
                    path: self.dir.clone(),
                    source: std::io::Error::other(format!(
                        "the pod's pin directory is {what}; remove it"
                    )),
                });
            }
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| SbrError::Bpffs {
                path: self.dir.clone(),
                source,
            })
    }

    /// Pin of a pod map (`pod`, `state`, `src`).
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(format!("map-{name}"))
    }

    /// Mount point of the carrier's anchor namespace.
    pub fn anchor(&self) -> PathBuf {
        self.dir.join("anchor")
    }

    /// Pin of the carrier's TCX link (made by earlier versions; the carrier's program is now a
    /// netlink filter, which goes with the device).
    pub fn carrier_link(&self) -> PathBuf {
        self.dir.join("link-carrier")
    }

    /// Pin of a real interface's link (the name must be valid, see [`validate_ifname`]).
    pub fn if_link(&self, ifname: &str) -> PathBuf {
        self.dir.join(format!("{IF_LINK_PREFIX}{ifname}"))
    }

    /// Interfaces that have a link pin, with the pin path.
    pub fn if_links(&self) -> Result<Vec<(String, PathBuf)>, SbrError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|p| {
                let name = p
                    .file_name()?
                    .to_str()?
                    .strip_prefix(IF_LINK_PREFIX)?
                    .to_string();
                Some((name, p))
            })
            .collect())
    }

    /// Every pin in the directory.
    pub fn entries(&self) -> Result<Vec<PathBuf>, SbrError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SbrError::Bpffs {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| SbrError::Bpffs {
                path: self.dir.clone(),
                source,
            })?;
            out.push(entry.path());
        }
        out.sort();
        Ok(out)
    }

    /// Removes every pin and the directory (a missing directory is fine). The anchor namespace is
    /// unmounted first, so the kernel deletes the carrier pair in the background; removing a link
    /// pin detaches its program (also in the background); maps go with their last pin.
    /// A symlink in the directory's place is removed itself, never followed (following it
    /// would unmount and unpin whatever directory it points at).
    pub fn remove(&self) -> Result<(), SbrError> {
        if std::fs::symlink_metadata(&self.dir).is_ok_and(|m| !m.is_dir()) {
            tracing::warn!(
                "sbr: {} is not a directory (a planted symlink?); removing it without following it",
                self.dir.display()
            );
            return std::fs::remove_file(&self.dir).map_err(|source| SbrError::Bpffs {
                path: self.dir.clone(),
                source,
            });
        }
        unmount_anchor(&self.anchor())?;
        let mut links = Vec::new();
        for p in self.entries()? {
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("link-"))
            {
                links.push(p);
            } else {
                remove_pin(&p)?;
            }
        }
        // Links last: their release runs in a kernel worker that holds RTNL for an RCU grace period.
        for p in links {
            remove_pin(&p)?;
        }
        remove_empty_dir(&self.dir)
    }
}

/// Unmounts the anchor namespace mounted on `path` (lazily) and removes the mount point; neither
/// existing is fine. Once the last reference to the namespace is gone, the kernel destroys it and
/// the carrier pair with it, in a worker.
pub fn unmount_anchor(path: &Path) -> Result<(), SbrError> {
    let c = cstring(path).map_err(|e| SbrError::Pin {
        path: path.to_path_buf(),
        reason: describe(&e),
    })?;
    // SAFETY: umount2 with a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: not a mount point; ENOENT: no such path.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(SbrError::Pin {
                path: path.to_path_buf(),
                reason: format!("unmount: {e}"),
            });
        }
    }
    remove_pin(path)
}

/// Removes one pin; a missing pin is fine.
pub fn remove_pin(path: &Path) -> Result<(), SbrError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SbrError::Pin {
            path: path.to_path_buf(),
            reason: describe(&e),
        }),
    }
}

/// Removes an empty pin directory; one already gone is fine.
pub fn remove_empty_dir(dir: &Path) -> Result<(), SbrError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SbrError::Bpffs {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// The names of the directories directly under `bpffs_dir`, sorted (none when it is absent).
pub fn subdirectories(bpffs_dir: &Path) -> Result<Vec<String>, SbrError> {
    let rd = match std::fs::read_dir(bpffs_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SbrError::Bpffs {
                path: bpffs_dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| SbrError::Bpffs {
            path: bpffs_dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The container ids that have a pin directory under `bpffs_dir`.
pub fn pod_ids(bpffs_dir: &Path) -> Result<Vec<ContainerId>, SbrError> {
    Ok(subdirectories(bpffs_dir)?
        .into_iter()
        .filter_map(|name| ContainerId::parse(&name).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        for ok in ["eth0", "net1", "a.b", "x-y_z", "123456789012345"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "1234567890123456"] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bpffs_mount_points() {
        for (dir, point) in [
            ("/sys/fs/bpf/multus-sbr", "/sys/fs/bpf"),
            ("/sys/fs/bpf/a/b", "/sys/fs/bpf"),
            ("/sys/fs/bpf", "/sys/fs/bpf"),
            ("/sys/fs/bpfx/y", "/sys/fs/bpfx/y"),
            ("/run/multus/bpf", "/run/multus/bpf"),
        ] {
            assert_eq!(bpffs_mount_point(Path::new(dir)), Path::new(point), "{dir}");
        }
    }

    #[test]
    fn a_symlink_in_place_of_a_pod_directory_is_refused_and_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let d = PodDir::new(root.path(), &ContainerId::parse("c1").unwrap());
        std::os::unix::fs::symlink(&target, d.path()).unwrap();
        std::fs::create_dir(target.join("keep")).unwrap();
        assert!(!d.exists(), "a link is not the pod's directory");
        let e = d.create().unwrap_err().to_string();
        assert!(e.contains("symlink") && e.contains("c1"), "{e}");
        // removing the pod removes the link, not what it points at
        d.remove().unwrap();
        assert!(std::fs::symlink_metadata(d.path()).is_err());
        assert!(target.join("keep").is_dir());
        d.create().unwrap();
        assert!(d.exists());
    }

    #[test]
    fn layout() {
        let d = PodDir::new(
            Path::new("/sys/fs/bpf/sbr"),
            &ContainerId::parse("c1").unwrap(),
        );
        assert_eq!(
            d.if_link("net1"),
            Path::new("/sys/fs/bpf/sbr/c1/link-if-net1")
        );
        assert_eq!(d.map("pod"), Path::new("/sys/fs/bpf/sbr/c1/map-pod"));
        assert_eq!(d.anchor(), Path::new("/sys/fs/bpf/sbr/c1/anchor"));
        assert!(
            ContainerId::parse("_sbr-0123").is_err(),
            "version directories are never pods"
        );
    }
}
