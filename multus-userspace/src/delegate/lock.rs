//! A per-container lock, so concurrent CNI calls for one container run one after the other.
//!
//! `flock(2)` on `<cniDir>/.locks/<containerID>`. After locking, the holder checks that the path
//! still names the locked inode (a DEL may have removed the file while others waited); if not, it
//! locks again. A lock file outlives its holder only while the container has a cache entry
//! (`<cniDir>/<containerID>`), so lock files never accumulate.

use std::{
    fs::{self, File, OpenOptions},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::cni::env::validate_container_id;

/// Lock failures.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be created or locked.
    #[error("cannot lock {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Another call held the lock for too long.
    #[error("another CNI call for this container held the lock {0} for more than {1:?}")]
    Timeout(PathBuf, Duration),
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct ContainerLock {
    file: File,
    path: PathBuf,
    cache_entry: PathBuf,
    remove: bool,
}

impl ContainerLock {
    /// Locks `container_id` under `cni_dir`, waiting up to `timeout`.
    pub fn acquire(cni_dir: &Path, container_id: &str, timeout: Duration) -> Result<Self, LockError> {
        let dir = cni_dir.join(".locks");
        let bad_id = || LockError::Io(dir.clone(), std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid container id"));
        validate_container_id(container_id).map_err(|_| bad_id())?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| LockError::Io(dir.clone(), e))?;
        let path = dir.join(container_id);
        let deadline = Instant::now() + timeout;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| LockError::Io(path.clone(), e))?;
            lock_until(&file, &path, deadline, timeout)?;
            // Still the file at `path`? (a DEL may have unlinked it while we waited)
            let held = file.metadata().map_err(|e| LockError::Io(path.clone(), e))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    let cache_entry = cni_dir.join(container_id);
                    return Ok(Self { file, path, cache_entry, remove: false });
                }
                _ => continue,
            }
        }
    }

    /// Removes the lock file when the lock is released (DEL: the container is gone).
    pub fn remove_on_release(&mut self) {
        self.remove = true;
    }
}

fn lock_until(file: &File, path: &Path, deadline: Instant, timeout: Duration) -> Result<(), LockError> {
    let mut pause = Duration::from_micros(500);
    loop {
        // SAFETY: flock on an open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.kind() != std::io::ErrorKind::Interrupted {
            return Err(LockError::Io(path.to_path_buf(), err));
        }
        if Instant::now() >= deadline {
            return Err(LockError::Timeout(path.to_path_buf(), timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

impl Drop for ContainerLock {
    fn drop(&mut self) {
        if self.remove || !self.cache_entry.exists() {
            let _ = fs::remove_file(&self.path);
        }
        // Closing the descriptor (after the unlink) releases the lock.
        // SAFETY: unlocking our own descriptor.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    #[test]
    fn serializes_and_survives_removal() {
        let dir = tempfile::tempdir().unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (dir, inside, max) = (dir.path().to_path_buf(), inside.clone(), max.clone());
                std::thread::spawn(move || {
                    let mut l = ContainerLock::acquire(&dir, "c1", Duration::from_secs(10)).unwrap();
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    if i % 2 == 0 {
                        l.remove_on_release();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(max.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn times_out() {
        let dir = tempfile::tempdir().unwrap();
        let _held = ContainerLock::acquire(dir.path(), "c2", Duration::from_secs(1)).unwrap();
        let t = std::thread::spawn({
            let d = dir.path().to_path_buf();
            move || ContainerLock::acquire(&d, "c2", Duration::from_millis(100)).map(|_| ())
        });
        assert!(matches!(t.join().unwrap(), Err(LockError::Timeout(..))));
    }
}
