//! Size-based rotation of the log file, with the reference's semantics (Multus rotates through
//! lumberjack): when the file reached `maxSize` MiB it is renamed to
//! `<stem>-<UTC time, 2006-01-02T15-04-05.000><.ext>`, backups beyond `maxBackups` or older than
//! `maxAge` days are removed, and the others are gzip-compressed (`<backup>.gz`).
//!
//! Every CNI call is its own short process, so the check runs once, when the log is opened: one
//! `stat` when nothing is due. Concurrent calls rotate at most once: the rotating process holds an
//! exclusive `flock` on the full file and renames it only if the path still names that file.
//! Compressing a full file takes about a second per 100 MiB, so it is left to a detached process
//! (see [`spawn_compressor`]) and never delays the CNI result.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, BufWriter, Write},
    os::{
        fd::AsRawFd,
        unix::{
            fs::{MetadataExt, OpenOptionsExt},
            process::CommandExt,
        },
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use crate::config::LogOptions;

/// The reference's defaults (Multus `SetLogFile`).
const DEFAULT_MAX_SIZE_MIB: u32 = 100;
const DEFAULT_MAX_BACKUPS: u32 = 5;
const DEFAULT_MAX_AGE_DAYS: u32 = 5;
const MIB: u64 = 1024 * 1024;
/// Time stamp of a backup's name (lumberjack's `2006-01-02T15-04-05.000`, UTC).
const STAMP_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";
/// Length of a formatted time stamp.
const STAMP_LEN: usize = "2006-01-02T15-04-05.000".len();
/// The argument of the `multus` binary that runs [`compress_backups`] (see [`spawn_compressor`]).
pub const COMPRESS_ARG: &str = "--compress-log-backups";

/// The rotation policy of one log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Size at which the file is rotated.
    pub max_bytes: u64,
    /// Backups kept (`None`: all).
    pub max_backups: Option<usize>,
    /// Age after which a backup is removed (`None`: never).
    pub max_age: Option<Duration>,
    /// Backups are compressed.
    pub compress: bool,
}

impl Rotation {
    /// The policy of `logOptions`, with the reference's defaults for what is absent.
    pub fn from_options(options: Option<&LogOptions>) -> Rotation {
        let o = options.cloned().unwrap_or_default();
        let size = match o.max_size.unwrap_or(DEFAULT_MAX_SIZE_MIB) {
            0 => DEFAULT_MAX_SIZE_MIB,
            n => n,
        };
        let backups = o.max_backups.unwrap_or(DEFAULT_MAX_BACKUPS);
        let age = o.max_age.unwrap_or(DEFAULT_MAX_AGE_DAYS);
        Rotation {
            max_bytes: u64::from(size) * MIB,
            max_backups: (backups > 0).then_some(backups as usize),
            max_age: (age > 0).then(|| Duration::from_secs(u64::from(age) * 86_400)),
            compress: o.compress.unwrap_or(true),
        }
    }
}

/// What one rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotated {
    /// The backup the full file became.
    pub backup: PathBuf,
    /// Backups removed by `maxBackups` / `maxAge`.
    pub removed: Vec<PathBuf>,
    /// Uncompressed backups left to compress (empty unless `compress`).
    pub to_compress: Vec<PathBuf>,
}

/// Rotates `path` if it reached the policy's size; `Ok(None)` when nothing was due or another
/// process is rotating it.
pub fn rotate_if_full(
    path: &Path,
    policy: &Rotation,
    now: SystemTime,
) -> io::Result<Option<Rotated>> {
    match fs::metadata(path) {
        Ok(m) if m.len() >= policy.max_bytes => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: flock on a descriptor this function owns; released when `file` is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    // Under the lock: rotate only if the path still names the full file we locked.
    let locked = file.metadata()?;
    match fs::metadata(path) {
        Ok(m)
            if m.dev() == locked.dev()
                && m.ino() == locked.ino()
                && m.len() >= policy.max_bytes => {}
        _ => return Ok(None),
    }
    let backup = backup_path(path, now);
    fs::rename(path, &backup)?;
    drop(file);
    let (removed, left) = prune(path, policy, now)?;
    let to_compress = if policy.compress { left } else { Vec::new() };
    Ok(Some(Rotated {
        backup,
        removed,
        to_compress,
    }))
}

/// The backup name of `path` rotated at `at`.
pub fn backup_path(path: &Path, at: SystemTime) -> PathBuf {
    let (stem, ext) = split_name(path);
    let stamp = jiff::Timestamp::try_from(at)
        .map(|t| t.strftime(STAMP_FORMAT).to_string())
        .unwrap_or_else(|_| "1970-01-01T00-00-00.000".into());
    path.with_file_name(format!("{stem}-{stamp}{ext}"))
}

/// File stem and extension (with its dot; empty when none) of `path`'s name.
fn split_name(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
        _ => (name, String::new()),
    }
}

/// One backup of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backup {
    /// When it was rotated (from its name).
    at: SystemTime,
    /// The uncompressed file, if present.
    plain: Option<PathBuf>,
    /// The compressed file, if present.
    gz: Option<PathBuf>,
}

/// The backups of `path`, newest first.
fn backups(path: &Path) -> io::Result<Vec<Backup>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (stem, ext) = split_name(path);
    let prefix = format!("{stem}-");
    let mut found: Vec<Backup> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (base, compressed) = match name.strip_suffix(".gz") {
            Some(b) => (b, true),
            None => (name.as_str(), false),
        };
        let Some(stamp) = base
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(ext.as_str()))
        else {
            continue;
        };
        let Some(at) = parse_stamp(stamp) else {
            continue;
        };
        let file = entry.path();
        let backup = match found.iter_mut().find(|b| b.at == at) {
            Some(b) => b,
            None => {
                found.push(Backup {
                    at,
                    plain: None,
                    gz: None,
                });
                found.last_mut().expect("just pushed")
            }
        };
        if compressed {
            backup.gz = Some(file);
        } else {
            backup.plain = Some(file);
        }
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.at));
    Ok(found)
}

/// The time of a backup's stamp.
fn parse_stamp(stamp: &str) -> Option<SystemTime> {
    if stamp.len() != STAMP_LEN {
        return None;
    }
    let dt = jiff::civil::DateTime::strptime(STAMP_FORMAT, stamp).ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(SystemTime::from(ts))
}

/// Removes the backups `maxBackups` and `maxAge` do not keep; returns the uncompressed files of
/// those kept.
fn prune(
    path: &Path,
    policy: &Rotation,
    now: SystemTime,
) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let all = backups(path)?;
    let mut removed = Vec::new();
    let mut left = Vec::new();
    for (i, b) in all.into_iter().enumerate() {
        let too_many = policy.max_backups.is_some_and(|n| i >= n);
        let too_old = policy
            .max_age
            .is_some_and(|age| now.duration_since(b.at).is_ok_and(|d| d > age));
        if too_many || too_old {
            for f in [b.plain, b.gz].into_iter().flatten() {
                match fs::remove_file(&f) {
                    Ok(()) => removed.push(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        } else if let Some(plain) = b.plain {
            left.push(plain);
        }
    }
    Ok((removed, left))
}

/// Compresses every uncompressed backup of `path` (what the detached compressor runs), each once
/// it has been quiet for a second: a call that opened the file before the rotation may still be
/// appending to it. A backup another process is compressing is skipped; a `.gz` left half-written
/// by a killed compressor is rewritten.
pub fn compress_backups(path: &Path) -> io::Result<Vec<PathBuf>> {
    compress_backups_when_quiet(path, QUIET, QUIET_WAIT_MAX)
}

/// How long a backup must have been unmodified before it is compressed.
const QUIET: Duration = Duration::from_secs(1);
/// How long the compressor waits for a backup to become quiet (a later rotation retries).
const QUIET_WAIT_MAX: Duration = Duration::from_secs(120);

fn compress_backups_when_quiet(
    path: &Path,
    quiet: Duration,
    wait_max: Duration,
) -> io::Result<Vec<PathBuf>> {
    let started = std::time::Instant::now();
    let mut done = Vec::new();
    for b in backups(path)? {
        let Some(plain) = b.plain else { continue };
        loop {
            let modified = match fs::metadata(&plain).and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            let idle = SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default();
            if idle >= quiet {
                if compress_one(&plain)? {
                    done.push(plain);
                }
                break;
            }
            if started.elapsed() > wait_max {
                return Ok(done);
            }
            std::thread::sleep((quiet - idle).min(Duration::from_millis(250)));
        }
    }
    Ok(done)
}

/// Compresses `plain` into `plain.gz` (0600) and removes it; `false` if another process holds it.
fn compress_one(plain: &Path) -> io::Result<bool> {
    let src = match File::open(plain) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // SAFETY: flock on a descriptor this function owns; released when `src` is closed.
    if unsafe { libc::flock(src.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(false);
    }
    if !plain.exists() {
        return Ok(false); // compressed and removed by another process before we locked it
    }
    let mut gz_name = plain.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz_path = PathBuf::from(gz_name);
    // A leftover (half-written by a killed compressor) is replaced by a new root-only file.
    match fs::remove_file(&gz_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&gz_path)?;
    let mut encoder =
        flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::default());
    io::copy(&mut BufReader::new(&src), &mut encoder)?;
    let mut out = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.flush()?;
    out.sync_all()?;
    fs::remove_file(plain)?;
    Ok(true)
}

/// Starts a detached `multus --compress-log-backups <path>` (the running binary, through
/// `/proc/self/exe`) with no stdio and in its own process group, so the CNI call returns without
/// waiting for it and the runtime never sees it.
pub fn spawn_compressor(path: &Path) -> io::Result<()> {
    Command::new("/proc/self/exe")
        .arg(COMPRESS_ARG)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .process_group(0)
        .spawn()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn defaults_are_the_references() {
        let r = Rotation::from_options(None);
        assert_eq!(
            r,
            Rotation {
                max_bytes: 100 * MIB,
                max_backups: Some(5),
                max_age: Some(Duration::from_secs(5 * 86_400)),
                compress: true
            }
        );
        let zeros = LogOptions {
            max_age: Some(0),
            max_size: Some(0),
            max_backups: Some(0),
            compress: Some(false),
        };
        let r = Rotation::from_options(Some(&zeros));
        assert_eq!(
            r,
            Rotation {
                max_bytes: 100 * MIB,
                max_backups: None,
                max_age: None,
                compress: false
            }
        );
        let set = LogOptions {
            max_age: Some(1),
            max_size: Some(2),
            max_backups: Some(3),
            compress: None,
        };
        let r = Rotation::from_options(Some(&set));
        assert_eq!(
            r,
            Rotation {
                max_bytes: 2 * MIB,
                max_backups: Some(3),
                max_age: Some(Duration::from_secs(86_400)),
                compress: true
            }
        );
    }

    #[test]
    fn backup_names_round_trip() {
        let t = at(1_795_686_827) + Duration::from_millis(42);
        assert_eq!(
            backup_path(Path::new("/var/log/multus.log"), t),
            Path::new("/var/log/multus-2026-11-26T09-53-47.042.log")
        );
        assert_eq!(
            backup_path(Path::new("/x/multus"), t),
            Path::new("/x/multus-2026-11-26T09-53-47.042")
        );
        assert_eq!(
            backup_path(Path::new("/x/a.b.log"), t),
            Path::new("/x/a.b-2026-11-26T09-53-47.042.log")
        );
        assert_eq!(parse_stamp("2026-11-26T09-53-47.042"), Some(t));
        for bad in [
            "2026-11-26T09-53-47",
            "2026-13-26T09-53-47.042",
            "x026-11-26T09-53-47.042",
            "2026-11-26T09:53:47.042",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn rotates_only_when_full_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("multus.log");
        let policy = Rotation {
            max_bytes: 100,
            max_backups: Some(2),
            max_age: Some(Duration::from_secs(86_400)),
            compress: false,
        };
        // absent, then below the size: nothing
        assert_eq!(rotate_if_full(&log, &policy, at(1_000_000)).unwrap(), None);
        fs::write(&log, [b'a'; 99]).unwrap();
        assert_eq!(rotate_if_full(&log, &policy, at(1_000_000)).unwrap(), None);
        // full: renamed
        fs::write(&log, [b'a'; 100]).unwrap();
        let r = rotate_if_full(&log, &policy, at(1_000_000))
            .unwrap()
            .unwrap();
        assert!(!log.exists());
        assert_eq!(fs::read(&r.backup).unwrap().len(), 100);
        assert!(r.removed.is_empty() && r.to_compress.is_empty());
        // unrelated files and an old backup (two days) beside it
        fs::write(dir.path().join("other.log"), "x").unwrap();
        fs::write(dir.path().join("multus-notastamp.log"), "x").unwrap();
        let old = backup_path(&log, at(1_000_000 - 2 * 86_400));
        fs::write(&old, "old").unwrap();
        let mut made = vec![r.backup];
        for i in 1..=3 {
            fs::write(&log, [b'b'; 150]).unwrap();
            let r = rotate_if_full(&log, &policy, at(1_000_000 + i))
                .unwrap()
                .unwrap();
            made.push(r.backup);
        }
        // kept: the two newest; the old one went by age, the others by count
        let kept = backups(&log).unwrap();
        assert_eq!(
            kept.iter()
                .map(|b| b.plain.clone().unwrap())
                .collect::<Vec<_>>(),
            vec![made[3].clone(), made[2].clone()]
        );
        assert!(!old.exists() && !made[0].exists() && !made[1].exists());
        assert!(
            dir.path().join("other.log").exists()
                && dir.path().join("multus-notastamp.log").exists()
        );
    }

    #[test]
    fn compresses_backups_and_counts_a_backup_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("multus.log");
        let policy = Rotation {
            max_bytes: 10,
            max_backups: Some(1),
            max_age: None,
            compress: true,
        };
        let text = "line of log\n".repeat(1000);
        fs::write(&log, &text).unwrap();
        let r = rotate_if_full(&log, &policy, at(2_000_000))
            .unwrap()
            .unwrap();
        assert_eq!(r.to_compress, vec![r.backup.clone()]);
        // a half-written .gz of a killed compressor is rewritten
        let gz = PathBuf::from(format!("{}.gz", r.backup.display()));
        fs::write(&gz, "partial").unwrap();
        assert_eq!(
            compress_backups_when_quiet(&log, Duration::ZERO, Duration::ZERO).unwrap(),
            vec![r.backup.clone()]
        );
        assert!(!r.backup.exists());
        assert_eq!(fs::metadata(&gz).unwrap().mode() & 0o777, 0o600);
        let mut out = String::new();
        flate2::read::GzDecoder::new(File::open(&gz).unwrap())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        assert!(
            compress_backups_when_quiet(&log, Duration::ZERO, Duration::ZERO)
                .unwrap()
                .is_empty(),
            "nothing left to compress"
        );
        // the next rotation keeps one backup: the compressed one goes
        fs::write(&log, &text).unwrap();
        let r2 = rotate_if_full(&log, &policy, at(2_000_001))
            .unwrap()
            .unwrap();
        assert_eq!(r2.removed, vec![gz.clone()]);
        assert!(!gz.exists() && r2.backup.exists());
    }

    #[test]
    fn a_backup_still_written_to_waits() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("multus.log");
        let backup = backup_path(&log, at(4_000_000));
        fs::write(&backup, "just written").unwrap();
        // not quiet yet, and no time to wait: left for later
        assert!(
            compress_backups_when_quiet(&log, Duration::from_secs(60), Duration::ZERO)
                .unwrap()
                .is_empty()
        );
        assert!(backup.exists());
        // quiet after a short wait
        let done =
            compress_backups_when_quiet(&log, Duration::from_millis(300), Duration::from_secs(5))
                .unwrap();
        assert_eq!(done, vec![backup.clone()]);
    }

    #[test]
    fn a_locked_file_is_left_to_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("multus.log");
        let policy = Rotation {
            max_bytes: 1,
            max_backups: None,
            max_age: None,
            compress: false,
        };
        fs::write(&log, "full").unwrap();
        let holder = File::open(&log).unwrap();
        // SAFETY: test descriptor.
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        assert_eq!(rotate_if_full(&log, &policy, at(3_000_000)).unwrap(), None);
        assert!(log.exists());
        drop(holder);
        assert!(rotate_if_full(&log, &policy, at(3_000_000))
            .unwrap()
            .is_some());
    }
}
