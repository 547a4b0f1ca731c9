//! Network namespaces: opening and validating a namespace path, and running work inside it.
//!
//! Work runs on a dedicated thread that switches into the target namespace with `setns(2)` and is
//! switched back by a guard (taken from `/proc/thread-self/ns/net`, not `/proc/self`, which is the
//! main thread's). The thread ends when the work ends, so even a failed switch back can never leak a
//! namespace into the rest of the process. Netlink work opens its rtnetlink socket inside the
//! namespace and drives it on a current-thread tokio runtime owned by that thread.

pub mod mountns;
pub mod netlink;

use std::{
    fs::File,
    future::Future,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
};

/// Filesystem magic of nsfs (`NSFS_MAGIC` in linux/magic.h).
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `NS_GET_NSTYPE` ioctl: returns the `CLONE_NEW*` type of a namespace file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Why a namespace could not be opened or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The path does not exist (the container is gone).
    #[error("network namespace {0} does not exist")]
    NotFound(PathBuf),
    /// The path exists but is not a network namespace.
    #[error("{0} is not a network namespace")]
    NotNetns(PathBuf),
    /// Opening the path failed for another reason.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The namespace path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `setns(2)` into the namespace failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The namespace path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The worker thread could not be started or panicked.
    #[error("namespace worker thread failed: {0}")]
    Thread(String),
    /// The node's mount namespace, where mounts that outlive a call belong, cannot be entered or
    /// determined (see [`mountns`]).
    #[error("{0}")]
    NodeMountNs(String),
    /// The netlink socket or runtime could not be created inside the namespace.
    #[error("cannot open netlink in {path}: {source}")]
    Netlink {
        /// The namespace path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens `path` and checks that it is a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => NetnsError::NotFound(path.clone()),
            _ => NetnsError::Open {
                path: path.clone(),
                source,
            },
        })?;
        // SAFETY: statfs on a valid, open descriptor into a zeroed struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
        if rc != 0 || st.f_type as i64 != NSFS_MAGIC {
            return Err(NetnsError::NotNetns(path));
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and returns the namespace type.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind != libc::CLONE_NEWNET {
            return Err(NetnsError::NotNetns(path));
        }
        Ok(Self { file, path })
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` inside the namespace on a dedicated thread and returns its result.
    pub fn run<T, F>(&self, work: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(scope, || -> Result<T, NetnsError> {
                    let _guard = NsGuard::enter(self)?;
                    Ok(work())
                })
                .map_err(|e| NetnsError::Thread(e.to_string()))?;
            handle
                .join()
                .map_err(|_| NetnsError::Thread("worker panicked".into()))?
        })
    }

    /// Runs an async netlink job inside the namespace: the rtnetlink socket is opened there and
    /// driven by a current-thread runtime on the namespace thread.
    pub fn netlink<T, F, Fut>(&self, work: F) -> Result<T, NetnsError>
    where
        F: FnOnce(rtnetlink::Handle) -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        self.run(|| {
            netlink::with_handle(work).map_err(|source| NetnsError::Netlink {
                path: self.path.clone(),
                source,
            })
        })?
    }
}

/// Switches the current thread into a namespace and back when dropped.
struct NsGuard {
    original: File,
}

impl NsGuard {
    fn enter(ns: &NetNs) -> Result<Self, NetnsError> {
        let original =
            File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Open {
                path: "/proc/thread-self/ns/net".into(),
                source,
            })?;
        setns(ns.file.as_fd().as_raw_fd()).map_err(|source| NetnsError::Enter {
            path: ns.path.clone(),
            source,
        })?;
        Ok(Self { original })
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        // The thread is dedicated and ends right after; a failure here cannot leak the namespace.
        if let Err(e) = setns(self.original.as_raw_fd()) {
            tracing::warn!("cannot switch back to the original network namespace: {e}");
        }
    }
}

fn setns(fd: i32) -> std::io::Result<()> {
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the calling thread is in the namespace whose cookie is `cookie` (false when the cookie
/// cannot be read): a recorded namespace path may name another namespace by now.
pub fn current_netns_is(cookie: u64) -> bool {
    current_netns_cookie().ok() == Some(cookie)
}

/// The cookie of the calling thread's network namespace (a 64-bit number the kernel never reuses,
/// the same the BPF programs read from `struct net`). Call it from inside [`NetNs::run`] for a
/// pod's namespace. Needs Linux 5.14 or later.
pub fn current_netns_cookie() -> std::io::Result<u64> {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket, owned by the OwnedFd below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}
