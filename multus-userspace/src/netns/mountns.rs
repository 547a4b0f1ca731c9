//! The node's mount namespace: where mounts that must outlive one call are made and found.
//!
//! A mount made in a private mount namespace (`ip netns exec` gives its command one, with `/`
//! made rslave and a fresh sysfs on `/sys`) never reaches the node and dies with that namespace
//! when its last process exits. Work that makes or reads such mounts (bpffs, SBR's anchor
//! namespaces) therefore runs in *the node's* mount namespace: the one pid 1 runs in, or, when pid
//! 1's cannot be read (a hardened pid 1 in the initial pid namespace), the one the kernel's own
//! threads run in (kthreadd, pid 2: always the initial one).
//!
//! [`in_node_mount_ns`] runs the work in place when the calling thread already is in that
//! namespace (two `stat` calls), and otherwise on a dedicated thread that leaves the process's
//! shared filesystem context (`unshare(CLONE_FS)`, which `setns` into a mount namespace requires)
//! and enters the node's with `setns(2)`. Threads that work starts inherit that namespace; the
//! caller's threads are never moved. Paths the work opens are then resolved in the node's
//! namespace, as the next call, from whatever namespace, will resolve them.
//!
//! [`decide`] is the pure decision, from what the process could observe ([`observe`]).

use std::{
    fs::File,
    os::fd::AsRawFd,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::NetnsError;

/// pid 1's mount namespace: the node's.
pub const PID1_MNT_NS: &str = "/proc/1/ns/mnt";
/// kthreadd's mount namespace (the initial one), used when pid 1's cannot be read.
pub const KTHREADD_MNT_NS: &str = "/proc/2/ns/mnt";
/// The calling thread's own mount namespace (not `/proc/self`, which is the main thread's).
const OWN_MNT_NS: &str = "/proc/thread-self/ns/mnt";
/// `NS_GET_NSTYPE` ioctl: returns the `CLONE_NEW*` type of a namespace file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsId {
    /// `st_dev` of the namespace file.
    pub dev: u64,
    /// `st_ino` of the namespace file.
    pub ino: u64,
}

impl NsId {
    /// The identity of the namespace `path` refers to (`stat` follows the namespace link).
    pub fn of(path: &Path) -> std::io::Result<NsId> {
        let m = std::fs::metadata(path)?;
        Ok(NsId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// What the calling thread could see of the mount namespaces that matter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The calling thread's own.
    pub own: Option<NsId>,
    /// pid 1's (None: cannot be read, e.g. a pid 1 that denies ptrace access).
    pub pid1: Option<NsId>,
    /// kthreadd's, when pid 2 is kthreadd (the caller is in the initial pid namespace).
    pub kthreadd: Option<NsId>,
}

/// Where work that makes or reads long-lived mounts runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In place: the calling thread is in the node's mount namespace.
    Here,
    /// On a thread that enters the mount namespace at this path.
    Enter(PathBuf),
    /// The node's namespace cannot be determined (why).
    Unknown(&'static str),
}

/// Decides where long-lived mounts belong from what [`observe`] saw.
pub fn decide(seen: &Observed) -> Placement {
    let Some(own) = seen.own else {
        return Placement::Unknown("the caller's own mount namespace cannot be read (no /proc?)");
    };
    let (node, path) = match (seen.pid1, seen.kthreadd) {
        (Some(pid1), _) => (pid1, PID1_MNT_NS),
        (None, Some(kthreadd)) => (kthreadd, KTHREADD_MNT_NS),
        (None, None) => {
            return Placement::Unknown(
                "neither pid 1's mount namespace nor the kernel threads' can be read",
            )
        }
    };
    if own == node {
        Placement::Here
    } else {
        Placement::Enter(PathBuf::from(path))
    }
}

/// Reads the namespaces [`decide`] needs (kthreadd's only when pid 1's cannot be read).
pub fn observe() -> Observed {
    let pid1 = NsId::of(Path::new(PID1_MNT_NS)).ok();
    let kthreadd = pid1
        .is_none()
        .then(|| {
            std::fs::read_to_string("/proc/2/comm")
                .is_ok_and(|c| c.trim_end() == "kthreadd")
                .then(|| NsId::of(Path::new(KTHREADD_MNT_NS)).ok())
                .flatten()
        })
        .flatten();
    Observed {
        own: NsId::of(Path::new(OWN_MNT_NS)).ok(),
        pid1,
        kthreadd,
    }
}

/// What to do when the node's namespace cannot be determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfUnknown {
    /// Fail: the work makes mounts that must outlive the call (ADD).
    Refuse,
    /// Run in place: the work only reads or removes (DEL, CHECK, GC, inspection).
    RunHere,
}

/// Runs `work` in the node's mount namespace (see the module documentation): in place when the
/// calling thread is in it, else on a dedicated thread that enters it. Fails, before `work` runs,
/// when that namespace cannot be entered, or cannot be determined and `if_unknown` refuses.
pub fn in_node_mount_ns<T, F>(if_unknown: IfUnknown, work: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    match decide(&observe()) {
        Placement::Here => Ok(work()),
        Placement::Unknown(why) if if_unknown == IfUnknown::RunHere => {
            tracing::debug!("the node's mount namespace is unknown ({why}); working in place");
            Ok(work())
        }
        Placement::Unknown(why) => Err(NetnsError::NodeMountNs(format!(
            "the node's mount namespace cannot be determined ({why}), so mounts made here might \
             vanish with the caller's"
        ))),
        Placement::Enter(path) => in_mount_ns(&path, work),
    }
}

/// Runs `work` on a dedicated thread inside the mount namespace at `path`.
pub fn in_mount_ns<T, F>(path: &Path, work: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let enter_err = |e: std::io::Error| {
        NetnsError::NodeMountNs(format!(
            "the caller runs in a private mount namespace, where mounts vanish when it exits, and \
             cannot enter the node's ({}): {e}",
            path.display()
        ))
    };
    let ns = File::open(path).map_err(enter_err)?;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the namespace type.
    if unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_NSTYPE) } != libc::CLONE_NEWNS {
        return Err(enter_err(std::io::Error::other("not a mount namespace")));
    }
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("node-mountns".into())
            .spawn_scoped(scope, || -> Result<T, NetnsError> {
                // SAFETY: both calls affect only this thread, which ends when the work ends: a
                // private filesystem context (setns into a mount namespace refuses a shared
                // one), then the namespace, whose root and cwd the thread takes.
                if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
                    return Err(enter_err(std::io::Error::last_os_error()));
                }
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
                    return Err(enter_err(std::io::Error::last_os_error()));
                }
                Ok(work())
            })
            .map_err(|e| NetnsError::Thread(e.to_string()))?;
        handle
            .join()
            .map_err(|_| NetnsError::Thread("mount namespace worker panicked".into()))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NsId = NsId { dev: 4, ino: 1 };
    const B: NsId = NsId { dev: 4, ino: 2 };

    fn seen(own: Option<NsId>, pid1: Option<NsId>, kthreadd: Option<NsId>) -> Observed {
        Observed {
            own,
            pid1,
            kthreadd,
        }
    }

    #[test]
    fn pid1s_namespace_is_the_nodes() {
        assert_eq!(decide(&seen(Some(A), Some(A), Some(B))), Placement::Here);
        assert_eq!(
            decide(&seen(Some(B), Some(A), Some(B))),
            Placement::Enter(PID1_MNT_NS.into()),
            "pid 1's, when it can be read, is the node's"
        );
    }

    #[test]
    fn kthreadd_stands_in_for_an_unreadable_pid1() {
        assert_eq!(decide(&seen(Some(A), None, Some(A))), Placement::Here);
        assert_eq!(
            decide(&seen(Some(B), None, Some(A))),
            Placement::Enter(KTHREADD_MNT_NS.into())
        );
    }

    #[test]
    fn unknown_without_either() {
        assert!(matches!(
            decide(&seen(Some(A), None, None)),
            Placement::Unknown(_)
        ));
        assert!(matches!(
            decide(&seen(None, Some(A), Some(A))),
            Placement::Unknown(_)
        ));
    }
}
