//! The carrier's anchor: a network namespace of its own that holds the carrier's veth peer,
//! mounted on the pod directory's `anchor` pin to keep it alive.
//!
//! Deleting a network device makes the deleting process wait for RCU callbacks of the whole
//! machine (`netdev_run_todo()` → `rcu_barrier()`: 14–34 ms measured here, the same when the device
//! is set down first or moved to another namespace). When the carrier's peer lives in the anchor,
//! DEL only sets the carrier down (its routes go at once) and unmounts the anchor: the kernel then
//! destroys the namespace, and with it the veth pair, in a worker, and nobody waits.
//!
//! The anchor also keeps the peer out of the pod. Making the namespace costs about half a
//! millisecond of kernel time. (Making it on a thread started at the beginning of ADD, beside the
//! reads of the pod, was measured slower: entering the pod's namespace then waits for it.)

use std::{fs::File, os::fd::AsRawFd, path::Path};

use super::{error::SbrError, state::RecordMap};

/// Pin name in the pod directory whose map is pinned again as the anchor's mount point.
const RECORD_PIN: &str = "map-pod";

fn anchor_err(what: &str, e: impl std::fmt::Display) -> SbrError {
    SbrError::Pin {
        path: "anchor".into(),
        reason: format!("anchor namespace: {what}: {e}"),
    }
}

/// Makes a new network namespace, with IPv6 off by default (the peer made there sends no
/// DAD/RS/MLD into the carrier), on a thread of its own (unshare must not move the thread that
/// works inside the pod); returns it open.
pub fn new_namespace() -> Result<File, SbrError> {
    let maker = std::thread::Builder::new()
        .name("sbr-anchor".into())
        .spawn(|| {
            // SAFETY: unshare affects only this thread, which ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(anchor_err("unshare", std::io::Error::last_os_error()));
            }
            std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
                .map_err(|e| anchor_err("disable IPv6", e))?;
            File::open("/proc/thread-self/ns/net").map_err(|e| anchor_err("open", e))
        })
        .map_err(|e| anchor_err("thread", e))?;
    maker.join().map_err(|_| anchor_err("thread", "panicked"))?
}

/// Mounts the namespace `ns` on `path` (a second pin of the pod record beside it, made here), so
/// it outlives the process.
pub fn mount(ns: &File, path: &Path) -> Result<(), SbrError> {
    let record = path.with_file_name(RECORD_PIN);
    RecordMap::pin_again(&record, path)?;
    let source = std::ffi::CString::new(format!("/proc/self/fd/{}", ns.as_raw_fd()))
        .map_err(|e| anchor_err("fd", e))?;
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| anchor_err("path", e))?;
    // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = anchor_err("bind mount", std::io::Error::last_os_error());
        if let Err(undo) = super::pins::unmount_anchor(path) {
            tracing::warn!("sbr: {undo}");
        }
        return Err(e);
    }
    Ok(())
}
