//! The carrier's anchor: a network namespace of its own that holds the carrier's veth peer,
//! mounted on the pod directory's `anchor` pin to keep it alive.
//!
//! Deleting a network device makes the deleting process wait for RCU callbacks of the whole
//! machine (`netdev_run_todo()` → `rcu_barrier()`: 14–34 ms measured here, the same when the device
//! is set down first or moved to another namespace). When the carrier's peer lives in the anchor,
//! DEL only sets the carrier down (its routes go at once) and unmounts the anchor: the kernel then
//! destroys the namespace, and with it the veth pair, in a worker, and nobody waits.
//!
//! The anchor also keeps the peer out of the pod.

use std::{fs::File, path::Path};

use super::{state::RecordMap, SbrError};

/// Pin name in the pod directory whose map is pinned again as the anchor's mount point.
const RECORD_PIN: &str = "map-pod";

fn anchor_err(path: &Path, what: &str, e: impl std::fmt::Display) -> SbrError {
    SbrError::Pin { path: path.to_path_buf(), reason: format!("anchor namespace: {what}: {e}") }
}

/// Creates a new network namespace with IPv6 off by default (the peer made there sends no
/// DAD/RS/MLD into the carrier), mounts it on `path` (a second pin of the pod record beside it,
/// made here) and opens it.
pub fn create(path: &Path) -> Result<File, SbrError> {
    let record = path.with_file_name(RECORD_PIN);
    RecordMap::pin_again(&record, path)?;
    let result = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("sbr-anchor".into())
            .spawn_scoped(s, || -> Result<(), SbrError> {
                // SAFETY: unshare affects only this thread, which ends right after.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(anchor_err(path, "unshare", std::io::Error::last_os_error()));
                }
                std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
                    .map_err(|e| anchor_err(path, "disable IPv6", e))?;
                let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                    .map_err(|e| anchor_err(path, "path", e))?;
                // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
                let rc = unsafe {
                    libc::mount(
                        c"/proc/thread-self/ns/net".as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                };
                if rc != 0 {
                    return Err(anchor_err(path, "bind mount", std::io::Error::last_os_error()));
                }
                Ok(())
            })
            .map_err(|e| anchor_err(path, "thread", e))?
            .join()
            .map_err(|_| anchor_err(path, "thread", "panicked"))?
    });
    let file = result.and_then(|()| File::open(path).map_err(|e| anchor_err(path, "open", e)));
    if file.is_err() {
        if let Err(e) = super::pins::unmount_anchor(path) {
            tracing::warn!("sbr: {e}");
        }
    }
    file
}
