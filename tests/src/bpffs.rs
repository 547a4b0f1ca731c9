//! A private bpffs mounted on a temporary directory, unmounted and removed on drop.

use std::path::{Path, PathBuf};

/// A bpffs mount only this test uses.
#[derive(Debug)]
pub struct Bpffs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Bpffs {
    /// Mounts a fresh bpffs on a new temporary directory.
    pub fn new() -> Self {
        let mut fs = Self::unmounted();
        crate::netns::run(
            "mount",
            &["-t", "bpf", "bpffs", &fs.dir.path().to_string_lossy()],
        );
        fs.mounted = true;
        fs
    }

    /// A new temporary directory with nothing mounted (the library mounts bpffs itself); it is
    /// unmounted on drop if something was mounted there.
    pub fn unmounted() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sbr-bpffs-")
            .tempdir()
            .expect("temp dir");
        Self {
            dir,
            mounted: false,
        }
    }

    /// The directory to give the SBR library.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The pin directory of a container.
    pub fn pod_dir(&self, container_id: &str) -> PathBuf {
        self.dir.path().join(container_id)
    }

    /// Every entry below the mount (relative paths), for "nothing left behind" assertions.
    pub fn entries(&self) -> Vec<String> {
        entries(self.dir.path())
    }
}

/// Every entry below the bpffs directory `dir` (relative paths), for "nothing left behind"
/// assertions.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            // bpffs shows its iterator files at the root of every mount.
            if rel == "maps.debug" || rel == "progs.debug" {
                continue;
            }
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

impl Default for Bpffs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let c =
            std::ffi::CString::new(self.dir.path().as_os_str().as_encoded_bytes()).expect("path");
        // Detach lazily: pins still referenced elsewhere must not make cleanup fail. The library may
        // have mounted it itself, so always try.
        // SAFETY: umount2 with a valid NUL-terminated path.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 && self.mounted && !std::thread::panicking() {
            eprintln!(
                "warning: cannot unmount {}: {}",
                self.dir.path().display(),
                std::io::Error::last_os_error()
            );
        }
    }
}
