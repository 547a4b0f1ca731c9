//! Installs the node's CNI binaries (`multus-daemon install`, and the daemon's
//! `-install-cni-bin-dir` at start): copies them from the image's `/usr/bin` (the directory of the
//! running executable) into the host's CNI bin dir. Each binary is skipped when the same content is
//! already there, else written to a temporary file in that directory and renamed over the old one,
//! so a runtime executing the old binary keeps running it and no runtime ever executes a partial
//! one. Decisions are pure ([`plan`]); [`apply`] does the I/O.

pub mod apply;
pub mod plan;

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

pub use plan::Mode;
use plan::{decide, Action, Target};

/// One installation.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which binaries.
    pub mode: Mode,
    /// Where they come from.
    pub from: PathBuf,
    /// The CNI bin dir they go to.
    pub to: PathBuf,
}

/// What an installation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Binaries written.
    pub copied: Vec<String>,
    /// Binaries already in place.
    pub skipped: Vec<String>,
}

/// Why an installation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The directory of the running executable is unknown.
    #[error("cannot find the directory of the running executable (give --from DIR): {0}")]
    OwnDirectory(std::io::Error),
    /// The CNI bin dir is not a directory.
    #[error(
        "the CNI bin dir {path} is not a directory (mount the host's CNI bin dir there): {source}"
    )]
    BinDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A source binary cannot be read.
    #[error("cannot read {path}: {source}")]
    Source {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Observing or writing a target failed.
    #[error("cannot install {path}: {source}")]
    Target {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The target is something we must not replace.
    #[error("refusing to replace {path}: {reason}; remove it by hand")]
    Refused {
        /// The file.
        path: String,
        /// Why.
        reason: &'static str,
    },
}

/// The directory of the running executable (the image's `/usr/bin`).
pub fn own_directory() -> Result<PathBuf, InstallError> {
    let exe = std::env::current_exe().map_err(InstallError::OwnDirectory)?;
    exe.parent().map(Path::to_path_buf).ok_or_else(|| {
        InstallError::OwnDirectory(std::io::Error::other(format!(
            "{} has no parent directory",
            exe.display()
        )))
    })
}

/// Installs the binaries of `options.mode`, one after the other; stops at the first failure
/// (the binaries installed before it are complete files).
pub fn run(options: &Options) -> Result<Report, InstallError> {
    let dir = &options.to;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(InstallError::BinDir {
                path: dir.display().to_string(),
                source: std::io::Error::other("not a directory"),
            })
        }
        Err(source) => {
            return Err(InstallError::BinDir {
                path: dir.display().to_string(),
                source,
            })
        }
    }
    let mut report = Report::default();
    // The targets in place from each source file (device, inode) so far: one multi-call binary
    // (the image's names are hard links of one file) is written once and linked under its other
    // names, not copied three times into the node's bin directory.
    let mut in_place: Vec<((u64, u64), PathBuf)> = Vec::new();
    for name in options.mode.binaries() {
        let source_path = options.from.join(name);
        let source_meta = std::fs::metadata(&source_path)
            .and_then(|m| {
                if m.is_file() {
                    Ok(m)
                } else {
                    Err(std::io::Error::other("not a file"))
                }
            })
            .map_err(|source| InstallError::Source {
                path: source_path.display().to_string(),
                source,
            })?;
        let source_id = (source_meta.dev(), source_meta.ino());
        let target = dir.join(name);
        let target_error = |source| InstallError::Target {
            path: target.display().to_string(),
            source,
        };
        let sibling = in_place
            .iter()
            .find(|(id, _)| *id == source_id)
            .map(|(_, path)| path.clone());
        let state = match &sibling {
            Some(sibling) if apply::same_inode(&target, sibling).map_err(target_error)? => {
                Target::File {
                    same_content: true,
                    mode_0755: true,
                }
            }
            _ => apply::observe(&target, &source_path, source_meta.len()).map_err(target_error)?,
        };
        match decide(state) {
            Action::Skip => {
                tracing::info!(binary = %target.display(), "already installed, skipped");
                report.skipped.push(name.to_string());
            }
            Action::Replace => {
                match &sibling {
                    Some(sibling) => apply::replace_by_link(dir, name, sibling),
                    None => apply::replace(dir, name, &source_path),
                }
                .map_err(target_error)?;
                tracing::info!(binary = %target.display(), from = %source_path.display(), was = ?state, linked_to = ?sibling, "installed");
                report.copied.push(name.to_string());
            }
            Action::Refuse(reason) => {
                return Err(InstallError::Refused {
                    path: target.display().to_string(),
                    reason,
                })
            }
        }
        if sibling.is_none() {
            in_place.push((source_id, target));
        }
    }
    tracing::info!(mode = %options.mode, dir = %dir.display(), copied = ?report.copied, skipped = ?report.skipped, "CNI binaries installed");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    use super::*;

    fn source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in Mode::Thick.binaries() {
            std::fs::write(dir.path().join(name), format!("#!binary {name}\n")).unwrap();
        }
        dir
    }

    fn options(from: &Path, to: &Path, mode: Mode) -> Options {
        Options {
            mode,
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn copies_then_skips_what_is_identical() {
        let (from, to) = (source(), tempfile::tempdir().unwrap());
        let o = options(from.path(), to.path(), Mode::Thin);
        let first = run(&o).unwrap();
        assert_eq!(first.copied, ["multus", "ebpf-sbr", "multusctl"]);
        assert_eq!(entries(to.path()), ["ebpf-sbr", "multus", "multusctl"]);
        let mode = std::fs::metadata(to.path().join("multus"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        let again = run(&o).unwrap();
        assert!(again.copied.is_empty(), "{again:?}");
        assert_eq!(again.skipped.len(), 3);
    }

    #[test]
    fn names_of_one_source_file_are_written_once_and_linked() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(from.path().join("multus"), "#!multi-call\n").unwrap();
        for name in ["ebpf-sbr", "multusctl"] {
            std::fs::hard_link(from.path().join("multus"), from.path().join(name)).unwrap();
        }
        std::fs::write(from.path().join("multus-shim"), "#!shim\n").unwrap();
        // an old installation's separate copy of another content
        std::fs::write(to.path().join("multusctl"), "old").unwrap();
        let o = options(from.path(), to.path(), Mode::Thick);
        let first = run(&o).unwrap();
        assert_eq!(first.copied.len(), 4, "{first:?}");
        let ino = |n: &str| std::fs::metadata(to.path().join(n)).unwrap().ino();
        assert_eq!(ino("multus"), ino("ebpf-sbr"));
        assert_eq!(ino("multus"), ino("multusctl"));
        assert_ne!(ino("multus"), ino("multus-shim"));
        assert_eq!(
            std::fs::read_to_string(to.path().join("multusctl")).unwrap(),
            "#!multi-call\n"
        );
        let again = run(&o).unwrap();
        assert!(again.copied.is_empty(), "{again:?}");
        assert_eq!(
            entries(to.path()),
            ["ebpf-sbr", "multus", "multus-shim", "multusctl"]
        );
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_never_followed() {
        let (from, to) = (source(), tempfile::tempdir().unwrap());
        let victim = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(victim.path(), "precious").unwrap();
        let temp = to
            .path()
            .join(plan::temp_name("multus", std::process::id()));
        symlink(victim.path(), &temp).unwrap();
        run(&options(from.path(), to.path(), Mode::Thin)).unwrap();
        assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(to.path().join("multus")).unwrap(),
            "#!binary multus\n"
        );
        assert!(!entries(to.path()).iter().any(|e| plan::is_temp_name(e)));
    }

    #[test]
    fn a_directory_in_the_way_is_refused_and_nothing_is_left_behind() {
        let (from, to) = (source(), tempfile::tempdir().unwrap());
        std::fs::create_dir(to.path().join("ebpf-sbr")).unwrap();
        let e = run(&options(from.path(), to.path(), Mode::Thin)).unwrap_err();
        assert!(matches!(e, InstallError::Refused { .. }), "{e}");
        assert_eq!(entries(to.path()), ["ebpf-sbr", "multus"]);
    }

    #[test]
    fn a_missing_source_or_bin_dir_is_an_error_naming_it() {
        let (from, to) = (source(), tempfile::tempdir().unwrap());
        std::fs::remove_file(from.path().join("multus-shim")).unwrap();
        let e = run(&options(from.path(), to.path(), Mode::Thick)).unwrap_err();
        assert!(e.to_string().contains("multus-shim"), "{e}");
        let e = run(&options(from.path(), &to.path().join("nope"), Mode::Thin)).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
