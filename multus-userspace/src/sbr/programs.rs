//! The node-wide programs: loaded once (by the first ADD of a node, under the node lock) and pinned
//! with the maps they read in a directory named after a hash of the embedded object, so that an
//! upgrade loads its programs beside the old ones while pods made by the old version keep theirs.
//! Later ADDs open the pinned programs (no BTF parsing, no verification) and only attach them and
//! write map entries. A version no pod uses any more is removed (by the last DEL, or by GC).

use std::{
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use aya::{
    maps::{HashMap, Map, MapData},
    programs::{ProgramInfo, SchedClassifier},
    EbpfLoader,
};
use multus_common::{names, MAP_NO_PREALLOC};

use crate::hash::fnv1a;

use super::error::describe;
use super::{
    btf,
    error::SbrError,
    pins::{remove_empty_dir, remove_pin, subdirectories},
};

/// aya-log level of the programs when debugging is on (`Level::Debug`); 0 turns logging off and
/// the verifier removes the log calls, since the level is a read-only global.
const DEBUG_LOG_LEVEL: u8 = 4;
/// Size of the log ring buffer when debugging is off (one page: the smallest a ring buffer can be).
const QUIET_LOG_BYTES: u32 = 4096;
/// Capacity of the users map (pods per version).
const USERS_ENTRIES: u32 = 8192;

/// Prefix of every version directory (no container id starts with `_`).
pub const VERSION_PREFIX: &str = "_sbr-";

/// Map name (in the object) and short pin name of each node-wide map the programs read.
const MAPS: [(&str, &str); 3] = [
    (names::SRC_MAP, "src"),
    (names::DEFAULTS_MAP, "defaults"),
    (names::COUNTERS_MAP, "counters"),
];

/// The two programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgKind {
    /// On the carrier's egress.
    Carrier,
    /// On real interfaces' egress.
    Egress,
}

impl ProgKind {
    /// The program's name in the object.
    pub fn name(self) -> &'static str {
        match self {
            ProgKind::Carrier => names::CARRIER_PROG,
            ProgKind::Egress => names::EGRESS_PROG,
        }
    }
}

/// A stable 64-bit hash of a string (the container id in the users map).
pub fn id_hash(s: &str) -> u64 {
    fnv1a(s.as_bytes())
}

/// One version of the programs under a bpffs directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programs {
    dir: PathBuf,
    name: String,
}

fn pin_err(path: &Path) -> impl FnOnce(String) -> SbrError + '_ {
    move |reason| SbrError::Pin {
        path: path.to_path_buf(),
        reason,
    }
}

impl Programs {
    /// The directory name of the embedded object loaded with (`debug`) or without aya-log output.
    pub fn current_name(debug: bool) -> String {
        format!(
            "{VERSION_PREFIX}{}{}",
            crate::bpf_objects::SBR_HASH,
            if debug { "-debug" } else { "" }
        )
    }

    /// The version called `name` under `bpffs_dir` (which may not exist).
    pub fn at(bpffs_dir: &Path, name: &str) -> Result<Self, SbrError> {
        let valid = name
            .strip_prefix(VERSION_PREFIX)
            .is_some_and(|rest| crate::cni::ContainerId::parse(rest).is_ok());
        if !valid || name.len() >= super::state::VERSION_LEN {
            return Err(SbrError::Pin {
                path: bpffs_dir.join(name),
                reason: "not a program version".into(),
            });
        }
        Ok(Self {
            dir: bpffs_dir.join(name),
            name: name.to_string(),
        })
    }

    /// The version's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pin of a program.
    pub fn prog(&self, kind: ProgKind) -> PathBuf {
        self.dir.join(match kind {
            ProgKind::Carrier => "prog-carrier",
            ProgKind::Egress => "prog-egress",
        })
    }

    /// Pin of a node-wide map (`src`, `defaults`, `counters`, `users`).
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(format!("map-{name}"))
    }

    /// Every pin the version needs.
    pub fn pins(&self) -> Vec<PathBuf> {
        let mut v = vec![
            self.prog(ProgKind::Carrier),
            self.prog(ProgKind::Egress),
            self.map("users"),
        ];
        v.extend(MAPS.iter().map(|(_, pin)| self.map(pin)));
        v
    }

    /// Whether all its pins exist.
    pub fn complete(&self) -> bool {
        self.pins().iter().all(|p| p.exists())
    }

    /// Opens a program from its pin (no verification: the kernel hands back the loaded program);
    /// returns its id with it.
    ///
    /// Through [`ProgramInfo`] rather than `SchedClassifier::from_pin`, which reads the program's
    /// name and so makes aya 0.14 probe every kernel feature it knows (about 20 test loads).
    pub fn open(&self, kind: ProgKind) -> Result<(u32, SchedClassifier), SbrError> {
        let path = self.prog(kind);
        let info = ProgramInfo::from_pin(&path).map_err(|e| pin_err(&path)(describe(&e)))?;
        let id = info.id();
        SchedClassifier::from_program_info(info, kind.name().into())
            .map(|prog| (id, prog))
            .map_err(|e| pin_err(&path)(describe(&e)))
    }

    /// The id of a pinned program.
    pub fn prog_id(&self, kind: ProgKind) -> Result<u32, SbrError> {
        let path = self.prog(kind);
        ProgramInfo::from_pin(&path)
            .map(|i| i.id())
            .map_err(|e| pin_err(&path)(describe(&e)))
    }

    /// Loads the embedded object (with aya-log output when `debug`) and pins its programs and maps
    /// here, unless that was done already. Returns whether it loaded.
    pub fn ensure_loaded(&self, debug: bool) -> Result<bool, SbrError> {
        if self.complete() {
            return Ok(false);
        }
        // A half-made directory (a load that died): start again.
        self.remove()?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| SbrError::Bpffs {
                path: self.dir.clone(),
                source,
            })?;
        let result = {
            // aya's feature probes load programs too, and a probe that fails so reads as a
            // feature the kernel lacks.
            let _held = SignalsHeld::new();
            self.load(debug)
        };
        if result.is_err() {
            if let Err(e) = self.remove() {
                tracing::warn!("sbr: cannot remove {}: {e}", self.dir.display());
            }
        }
        result.map(|()| true)
    }

    fn load(&self, debug: bool) -> Result<(), SbrError> {
        // The programs read a packet's namespace with bpf_probe_read_kernel, which the kernel
        // withholds under lockdown=confidentiality.
        if std::fs::read_to_string("/sys/kernel/security/lockdown")
            .is_ok_and(|l| l.contains("[confidentiality]"))
        {
            return Err(SbrError::Unsupported(
                "kernel lockdown is in confidentiality mode: BPF programs cannot read kernel memory".into(),
            ));
        }
        let offsets = btf::netns_offsets(Path::new(btf::VMLINUX_BTF))?;
        let mut loader = EbpfLoader::new();
        // The programs need no CO-RE relocation (aya 0.14 parses the kernel BTF in
        // EbpfLoader::new() anyway: once per node now).
        loader.btf(None);
        let map_pins: Vec<_> = MAPS
            .iter()
            .map(|(name, pin)| (*name, self.map(pin)))
            .collect();
        for (name, path) in &map_pins {
            loader.map_pin_path(name, path.as_path());
        }
        let level: u8 = if debug { DEBUG_LOG_LEVEL } else { 0 };
        loader.override_global(names::LOG_LEVEL, &level, false);
        loader.override_global(names::SKB_DEV_OFFSET, &offsets.skb_dev, true);
        loader.override_global(names::DEV_NET_OFFSET, &offsets.dev_net, true);
        loader.override_global(names::NET_COOKIE_OFFSET, &offsets.net_cookie, true);
        if !debug {
            loader.map_max_entries(names::LOG_MAP, QUIET_LOG_BYTES);
        }
        let mut ebpf = loader
            .load(crate::bpf_objects::SBR)
            .map_err(|e| SbrError::Load(describe(&e)))?;
        for kind in [ProgKind::Carrier, ProgKind::Egress] {
            let name = kind.name();
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| SbrError::Load(format!("program {name} missing from the object")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| SbrError::Load(describe(&e)))?;
            load_retrying_interrupts(prog).map_err(|e| SbrError::Load(format!("{name}: {e}")))?;
            let path = self.prog(kind);
            prog.pin(&path).map_err(|e| pin_err(&path)(describe(&e)))?;
        }
        let users =
            HashMap::<MapData, u64, u64>::create(USERS_ENTRIES, MAP_NO_PREALLOC).map_err(|e| {
                SbrError::Map {
                    map: "users",
                    reason: describe(&e),
                }
            })?;
        let path = self.map("users");
        users.pin(&path).map_err(|e| pin_err(&path)(describe(&e)))?;
        Ok(())
    }

    /// Removes every pin and the directory (a missing directory is fine). Programs still
    /// attached somewhere stay loaded until they are detached.
    pub fn remove(&self) -> Result<(), SbrError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(SbrError::Bpffs {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        for entry in rd {
            let entry = entry.map_err(|source| SbrError::Bpffs {
                path: self.dir.clone(),
                source,
            })?;
            remove_pin(&entry.path())?;
        }
        remove_empty_dir(&self.dir)
    }

    /// The users map: cookie of each pod using this version -> hash of its container id.
    pub fn users(&self) -> Result<HashMap<MapData, u64, u64>, SbrError> {
        let path = self.map("users");
        let data = MapData::from_pin(&path).map_err(|e| pin_err(&path)(describe(&e)))?;
        HashMap::try_from(Map::HashMap(data)).map_err(|e| SbrError::Map {
            map: "users",
            reason: describe(&e),
        })
    }

    /// Whether no pod uses this version (or its users map is gone).
    pub fn unused(&self) -> bool {
        self.users()
            .map(|u| u.keys().next().is_none())
            .unwrap_or(true)
    }
}

/// The version directories under `bpffs_dir`, by name.
pub fn versions(bpffs_dir: &Path) -> Result<Vec<Programs>, SbrError> {
    Ok(subdirectories(bpffs_dir)?
        .iter()
        .filter(|name| name.starts_with(VERSION_PREFIX))
        .filter_map(|name| Programs::at(bpffs_dir, name).ok())
        .collect())
}

/// Whether the kernel lets this process load tc (sched_cls) programs: aya's probe, which loads a
/// minimal program, with signals held back (a pending signal would fail the probe).
pub fn tc_programs_supported() -> Result<bool, aya::programs::ProgramError> {
    let _held = SignalsHeld::new();
    aya::sys::is_program_supported(aya::programs::ProgramType::SchedClassifier)
}

/// How many times a program load interrupted by a signal is tried (libbpf's figure).
const LOAD_ATTEMPTS: u32 = 5;

/// Loads `prog`, trying again on EAGAIN as libbpf does: the kernel abandons a program load so
/// whenever a signal is pending for the loading thread. The caller holds signals back
/// ([`SignalsHeld`]); this covers the two it cannot block, SIGKILL and SIGSTOP.
fn load_retrying_interrupts(prog: &mut SchedClassifier) -> Result<(), aya::programs::ProgramError> {
    let mut attempt = 1;
    loop {
        match prog.load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < LOAD_ATTEMPTS =>
            {
                tracing::debug!(
                    "sbr: program load interrupted by a signal (attempt {attempt}), trying again"
                );
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Every blockable signal blocked on this thread until dropped, when the previous mask returns
/// and what arrived meanwhile is delivered. The kernel abandons a program load with EAGAIN
/// whenever a signal is pending for the loading thread (a CI run of the tests failed so), and a
/// busy process can have one pending at every attempt; a blocked signal does not count.
struct SignalsHeld {
    previous: Option<libc::sigset_t>,
    /// A signal mask belongs to a thread: the guard must not move to another.
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl SignalsHeld {
    fn new() -> Self {
        // SAFETY: sigset_t is plain data, filled by sigfillset; pthread_sigmask only changes this
        // thread's mask and writes the previous one into `previous`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let ok = libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous) == 0;
            Self {
                previous: ok.then_some(previous),
                _this_thread: std::marker::PhantomData,
            }
        }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restores the mask saved by `new` on this same thread (the guard is not Send).
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names() {
        let n = Programs::current_name(false);
        assert!(
            n.starts_with(VERSION_PREFIX) && n.len() == VERSION_PREFIX.len() + 16,
            "{n}"
        );
        assert_eq!(Programs::current_name(true), format!("{n}-debug"));
        assert!(n.len() + 6 < super::super::state::VERSION_LEN);
        assert!(Programs::at(Path::new("/b"), &n).is_ok());
        for bad in ["ctr1", "_sbr-", "_sbr-../x", "_other"] {
            assert!(Programs::at(Path::new("/b"), bad).is_err(), "{bad}");
        }
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            crate::bpf_objects::SBR_HASH,
            format!("{:016x}", fnv1a(crate::bpf_objects::SBR)),
            "build script"
        );
    }
}
