//! The I/O of an installation: observe each target with `lstat` and compare contents, then write
//! a temporary file (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0755, fsync) and rename it over the target.
//! Contents are streamed, never held whole: the init container's memory limit
//! (deploy/daemonset.yaml) is smaller than the binaries.
//! A file a runtime is executing is never opened for writing (no `ETXTBSY`, no half-written binary
//! ever executed); a temporary file is removed when anything fails.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::plan::{temp_name, Target};

/// Buffer size of the streamed comparison.
const CHUNK: usize = 64 * 1024;

/// Reads what `target` is now, never following a symlink; its content is compared with
/// `source`'s (`source_len` bytes).
pub fn observe(target: &Path, source: &Path, source_len: u64) -> io::Result<Target> {
    let meta = match fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::Missing),
        Err(e) => return Err(e),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Ok(Target::Symlink);
    }
    if !kind.is_file() {
        return Ok(Target::Other);
    }
    let mode_0755 = meta.permissions().mode() & 0o7777 == 0o755;
    let same_content = meta.len() == source_len && {
        // O_NOFOLLOW: a symlink swapped in since the lstat fails here instead of being followed.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(target)?;
        same_stream(file, File::open(source)?)?
    };
    Ok(Target::File {
        same_content,
        mode_0755,
    })
}

/// Whether `target` (never followed if a symlink) is the same file as `sibling` and a 0755
/// regular file: a hard link installed earlier from the same source.
pub fn same_inode(target: &Path, sibling: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (t, s) = match (fs::symlink_metadata(target), fs::symlink_metadata(sibling)) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok(t.file_type().is_file()
        && t.permissions().mode() & 0o7777 == 0o755
        && (t.dev(), t.ino()) == (s.dev(), s.ino()))
}

/// Whether `a` and `b` read the same bytes, [`CHUNK`] at a time.
fn same_stream(mut a: impl Read, mut b: impl Read) -> io::Result<bool> {
    let (mut x, mut y) = (vec![0; CHUNK], vec![0; CHUNK]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        if read_full(&mut b, &mut y[..n.clamp(1, CHUNK)])? != n || x[..n] != y[..n] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Removes the temporary file unless the rename consumed it.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Writes `source`'s content to `dir/name` through `dir/.<name>.tmp-<pid>` and a rename.
pub fn replace(dir: &Path, name: &str, source: &Path) -> io::Result<()> {
    let temp = dir.join(temp_name(name, std::process::id()));
    let file = create_exclusive(&temp)?;
    let mut guard = TempGuard(Some(temp.clone()));
    write_synced(file, &mut File::open(source)?)?;
    fs::rename(&temp, dir.join(name))?;
    guard.0 = None;
    // The rename itself is durable once the directory is.
    File::open(dir).and_then(|d| d.sync_all())
}

/// Puts `existing` (a file of this directory installed from the same source in this run) at
/// `dir/name` as a hard link, through `dir/.<name>.tmp-<pid>` and a rename: a multi-call binary
/// installed under several names is written once.
pub fn replace_by_link(dir: &Path, name: &str, existing: &Path) -> io::Result<()> {
    let temp = dir.join(temp_name(name, std::process::id()));
    // link(2) never follows a symlink at the new name: anything there is EEXIST.
    match fs::hard_link(existing, &temp) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            tracing::warn!(path = %temp.display(), "removing a leftover temporary file");
            fs::remove_file(&temp)?;
            fs::hard_link(existing, &temp)?;
        }
        other => other?,
    }
    let mut guard = TempGuard(Some(temp.clone()));
    fs::rename(&temp, dir.join(name))?;
    guard.0 = None;
    File::open(dir).and_then(|d| d.sync_all())
}

/// Creates `temp` as a new 0755 file. A leftover of an earlier run killed mid-way (or anything
/// planted there, a symlink included) is unlinked, never followed, and the creation retried once.
fn create_exclusive(temp: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(temp)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            tracing::warn!(path = %temp.display(), "removing a leftover temporary file");
            fs::remove_file(temp)?;
            open()
        }
        other => other,
    }
}

fn write_synced(mut file: File, source: &mut File) -> io::Result<()> {
    // The umask may have narrowed the creation mode.
    file.set_permissions(fs::Permissions::from_mode(0o755))?;
    // copy_file_range where the kernel offers it: no copy through this process's memory.
    io::copy(source, &mut file)?;
    file.flush()?;
    file.sync_all()
}
