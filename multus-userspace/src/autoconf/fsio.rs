//! The file-system side of auto-configuration: listing the configuration directory, reading a
//! bounded file, and writing a root-only file atomically and durably (temporary file in the same
//! directory, fsync, rename, fsync of the directory), so a reader sees the old or the new
//! content, never an empty or half-written one, even across a crash.

use std::{
    fs::{self, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

/// Files larger than this are not configurations (and are not read whole).
pub const MAX_FILE: u64 = 1024 * 1024;

/// The names of the entries of `dir` that are not directories (regular files and symlinks, as
/// libcni lists them); an unreadable directory lists nothing.
pub fn list(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// Reads `path` (at most [`MAX_FILE`] bytes; a larger file is an error).
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut f)
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE} bytes"
        )));
    }
    Ok(bytes)
}

/// The content of `path`, `None` when it does not exist or cannot be read.
pub fn current(path: &Path) -> Option<Vec<u8>> {
    read_bounded(path).ok()
}

/// Writes `bytes` to `path` with `mode`: a temporary file (a dot name the runtime ignores,
/// created exclusively, so a planted file or symlink is never written through) is written,
/// fsynced and renamed over `path`, then the directory is fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".multus-tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return written;
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Makes `dir` a directory (mode 0700 when created); a symlink or file in its place is refused.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => Err(std::io::Error::other(format!(
            "{} exists and is not a directory (a symlink is not followed)",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new().mode(0o700).create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Removes `path`; a missing file is not an error.
pub fn remove(path: &Path) -> std::io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_atomic_write_is_0600_leaves_no_temporary_and_replaces_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, b"keep").unwrap();
        let path = dir.path().join("00-multus.conf");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_atomic(&path, b"{}\n", 0o600).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let mut names = list(dir.path()).unwrap();
        names.sort();
        assert_eq!(names, vec!["00-multus.conf", "victim"]);
    }

    #[test]
    fn a_symlink_in_place_of_the_private_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("multus.d");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        assert!(ensure_private_dir(&link).is_err());
        let real = dir.path().join("real.d");
        ensure_private_dir(&real).unwrap();
        ensure_private_dir(&real).unwrap();
    }
}
