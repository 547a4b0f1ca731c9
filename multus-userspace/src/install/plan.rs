//! What to do with each binary, decided from what the CNI bin dir holds (pure; the I/O that
//! observes the directory and applies the plan is in [`super::apply`]).

use std::fmt;

/// Which set of binaries a node needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `multus-shim` (the runtime's plugin) plus the thin `multus` it runs for a DEL without the
    /// daemon, `ebpf-sbr` and `multusctl`.
    Thick,
    /// The thin `multus` plugin, `ebpf-sbr` and `multusctl`.
    Thin,
}

impl Mode {
    /// Parses `thick` or `thin`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "thick" => Some(Mode::Thick),
            "thin" => Some(Mode::Thin),
            _ => None,
        }
    }

    /// The binaries this mode installs, in installation order: the shim last, so that a shim
    /// never runs before the thin binary it falls back to is in place.
    pub fn binaries(self) -> &'static [&'static str] {
        match self {
            Mode::Thick => &["multus", "ebpf-sbr", "multusctl", "multus-shim"],
            Mode::Thin => &["multus", "ebpf-sbr", "multusctl"],
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Thick => "thick",
            Mode::Thin => "thin",
        })
    }
}

/// What the target name in the CNI bin dir is now (observed with `lstat`, never following a
/// symlink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing there.
    Missing,
    /// A regular file.
    File {
        /// Its content equals the source's.
        same_content: bool,
        /// Its mode is 0755.
        mode_0755: bool,
    },
    /// A symbolic link (maybe planted to make us write elsewhere).
    Symlink,
    /// A directory, socket, device...: not ours to replace.
    Other,
}

/// The decision for one binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Already installed: leave it (a runtime may be executing it).
    Skip,
    /// Write a temporary file beside it and rename it over the name.
    Replace,
    /// Do not touch it; the installation fails with this reason.
    Refuse(&'static str),
}

/// Decides for one binary.
pub fn decide(target: Target) -> Action {
    match target {
        Target::File {
            same_content: true,
            mode_0755: true,
        } => Action::Skip,
        // The rename replaces the link itself: nothing is ever written through it.
        Target::Missing | Target::File { .. } | Target::Symlink => Action::Replace,
        Target::Other => Action::Refuse("it is neither a regular file nor a symlink"),
    }
}

/// The temporary name a binary is written under before the rename: hidden, in the same
/// directory (so the rename is atomic), unique to this process.
pub fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.tmp-{pid}")
}

/// Whether a directory entry is one of our temporary files (for tests and clean-up checks).
pub fn is_temp_name(entry: &str) -> bool {
    entry.starts_with('.') && entry.contains(".tmp-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thick_installs_the_shim_last_and_thin_has_no_shim() {
        assert_eq!(Mode::Thick.binaries().last(), Some(&"multus-shim"));
        assert!(Mode::Thick.binaries().contains(&"multus"));
        assert!(!Mode::Thin.binaries().contains(&"multus-shim"));
        assert_eq!(Mode::parse("thin"), Some(Mode::Thin));
        assert_eq!(Mode::parse("Thick"), None);
    }

    #[test]
    fn only_an_identical_executable_file_is_skipped() {
        let file = |same_content, mode_0755| Target::File {
            same_content,
            mode_0755,
        };
        assert_eq!(decide(file(true, true)), Action::Skip);
        assert_eq!(decide(file(false, true)), Action::Replace);
        assert_eq!(decide(file(true, false)), Action::Replace);
        assert_eq!(decide(Target::Missing), Action::Replace);
        assert_eq!(decide(Target::Symlink), Action::Replace);
        assert!(matches!(decide(Target::Other), Action::Refuse(_)));
    }

    #[test]
    fn temporary_names_are_hidden_and_recognised() {
        let t = temp_name("multus-shim", 42);
        assert_eq!(t, ".multus-shim.tmp-42");
        assert!(is_temp_name(&t));
        assert!(!is_temp_name("multus-shim"));
    }
}
