//! A per-container lock, so concurrent CNI calls for one container run one after the other.
//!
//! One node-wide file, `<cniDir>/.lock`, and an open-file-description byte-range lock
//! (`F_OFD_SETLK`) on one byte at an offset derived from the container id. Calls for one container
//! exclude each other; calls for different containers almost never do (a 62-bit hash), and no file
//! is created or removed per container — creating and unlinking a lock file per call cost more than
//! everything else multus does besides the cache. The lock is released when its descriptor closes,
//! also if the process dies.

use std::{
    fs::{self, File, OpenOptions},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::cni::ContainerId;

/// Name of the node-wide lock file in `cniDir`.
pub const LOCK_FILE: &str = ".lock";

/// Lock failures.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be created or locked.
    #[error("cannot lock {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A symbolic link is where the lock file must be: it is not followed.
    #[error("cannot lock {0}: it is a symlink, which is never followed; remove it (the lock file is recreated)")]
    Symlink(PathBuf),
    /// Another call held the lock for too long.
    #[error("another CNI call for this container held its lock in {0} for more than {1:?}")]
    Timeout(PathBuf, Duration),
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct ContainerLock {
    _file: File,
}

/// The byte of the lock file that stands for `container_id` (FNV-1a, kept below 2^62).
fn offset(container_id: &str) -> i64 {
    (crate::hash::fnv1a(container_id.as_bytes()) >> 2) as i64
}

impl ContainerLock {
    /// Locks `container_id` under `cni_dir`, waiting up to `timeout`.
    pub fn acquire(
        cni_dir: &Path,
        container_id: &ContainerId,
        timeout: Duration,
    ) -> Result<Self, LockError> {
        let path = cni_dir.join(LOCK_FILE);
        let file = match open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(cni_dir)
                    .map_err(|e| LockError::Io(cni_dir.to_path_buf(), e))?;
                open(&path).map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP) => LockError::Symlink(path.clone()),
                    _ => LockError::Io(path.clone(), e),
                })?
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(LockError::Symlink(path))
            }
            Err(e) => return Err(LockError::Io(path, e)),
        };
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(500);
        let start = offset(container_id);
        loop {
            // SAFETY: a zeroed flock is valid; fcntl on an open descriptor with a valid pointer.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            fl.l_start = start;
            fl.l_len = 1;
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
                return Ok(Self { _file: file });
            }
            let err = std::io::Error::last_os_error();
            let busy = matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES));
            if !busy && err.kind() != std::io::ErrorKind::Interrupted {
                return Err(LockError::Io(path, err));
            }
            if Instant::now() >= deadline {
                return Err(LockError::Timeout(path, timeout));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// Opens (creating) the lock file; a symlink in its place fails with ELOOP, never followed.
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    fn cid(id: &str) -> ContainerId {
        ContainerId::parse(id).unwrap()
    }

    #[test]
    fn a_planted_symlink_is_never_opened_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let lock = dir.path().join(LOCK_FILE);
        for existing in [true, false] {
            let _ = fs::remove_file(&target);
            if existing {
                fs::write(&target, "x").unwrap();
            }
            std::os::unix::fs::symlink(&target, &lock).unwrap();
            let err =
                ContainerLock::acquire(dir.path(), &cid("a"), Duration::from_secs(1)).unwrap_err();
            assert!(
                matches!(err, LockError::Symlink(ref p) if *p == lock),
                "{err}"
            );
            assert!(err.to_string().contains("symlink"), "{err}");
            assert_eq!(target.exists(), existing, "the target is not created");
            fs::remove_file(&lock).unwrap();
        }
    }

    #[test]
    fn serializes_one_container() {
        let dir = tempfile::tempdir().unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (dir, inside, max) = (dir.path().to_path_buf(), inside.clone(), max.clone());
                std::thread::spawn(move || {
                    let _l =
                        ContainerLock::acquire(&dir, &cid("c1"), Duration::from_secs(10)).unwrap();
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(max.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn other_containers_do_not_wait_and_timeouts_fire() {
        let dir = tempfile::tempdir().unwrap();
        let _held = ContainerLock::acquire(dir.path(), &cid("c2"), Duration::from_secs(1)).unwrap();
        let other = ContainerLock::acquire(dir.path(), &cid("c3"), Duration::from_millis(10));
        assert!(other.is_ok(), "a different container is not blocked");
        let t = std::thread::spawn({
            let d = dir.path().to_path_buf();
            move || ContainerLock::acquire(&d, &cid("c2"), Duration::from_millis(100)).map(|_| ())
        });
        assert!(matches!(t.join().unwrap(), Err(LockError::Timeout(..))));
        let entries: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            entries,
            vec![std::ffi::OsString::from(LOCK_FILE)],
            "one file, whatever the containers"
        );
    }
}
