//! DEL: from the cache (or, without one, from the pod through the API within a short deadline, or
//! from the configuration), every delegate is deleted in reverse order; all failures are reported
//! together. Never fails for a missing cache, a missing namespace, an unreachable API, or a DEL
//! repeated. With a cache, DEL does not use the API at all; without one, API work is bounded by
//! `delApiDeadlineSeconds`. network-status is left to the next ADD: clearing it here could erase
//! the status of the pod's newer sandbox when kubelet removes an old one late.
//!
//! [`teardown`] is the one way a container's attachments are deleted: DEL, GC of stale containers
//! and `multusctl gc` all go through it. A cache file of the reference Multus (a node switched from
//! it) is read like one of ours (`delegate::reference`), so its pods are torn down without the API.

use std::{path::Path, time::Instant};

use crate::{
    cni::ContainerId,
    delegate::{
        self,
        cache::{CacheEntry, Origin},
        lock::ContainerLock,
        Attachment,
    },
    devices::inject,
    error::Error,
    fault,
};

use super::{plan, usable_netns, Call, Released};

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    let req = call.req;
    let id = req.container_id()?;
    let lock = call.lock(id)?;
    let deadline = Instant::now() + call.conf.del_api_deadline();
    let cached = match call.read_cache(id, true) {
        Ok(entry) => entry,
        Err(e) => {
            tracing::warn!("{e}; falling back to the pod or the configuration");
            None
        }
    };
    fault::point("del.cache-read");
    let from_cache = cached.is_some();
    let origin = cached
        .as_ref()
        .map(|e| e.origin.clone())
        .unwrap_or_default();
    let attachments = match cached {
        Some(entry) => entry.attachments,
        None => {
            let kube = call.kube().unwrap_or_else(|e| {
                tracing::warn!("no Kubernetes API for DEL: {e}");
                None
            });
            let rebuilt = kube
                .as_ref()
                .and_then(|k| match plan::build(call, Some(k), deadline) {
                    Ok(p) => Some(p.attachments),
                    Err(e) => {
                        tracing::warn!("cannot rebuild the attachments from the pod: {e}");
                        None
                    }
                });
            rebuilt.unwrap_or_else(|| plan::from_config_for_del(call).unwrap_or_default())
        }
    };
    teardown(
        call,
        id,
        &attachments,
        req.netns.as_deref(),
        from_cache.then_some(&origin),
        &lock,
    )
}

/// Deletes `attachments` of `container_id` in reverse order (every delegate is attempted), removes
/// their device-info files, and removes the cache entry (with, for a reference Multus entry, the
/// libcni result-cache files it was read with) unless a delegate failed and `retryDeleteOnError`
/// asks to keep it. `netns` is passed to the delegates only while it is still a namespace. Without
/// a cache (`cached` is `None`) the DEL was a best-effort cleanup and its failures are only logged.
/// The caller holds the container's lock (`_held`).
pub(super) fn teardown(
    call: &Call<'_>,
    container_id: &ContainerId,
    attachments: &[Attachment],
    netns: Option<&Path>,
    cached: Option<&Origin>,
    _held: &ContainerLock,
) -> Result<(), Error> {
    let from_cache = cached.is_some();
    let ctx = call.context(Some(container_id), usable_netns(netns));
    let mut errors = Vec::new();
    for a in attachments.iter().rev() {
        if let Err(mut e) = delegate::del(a, &ctx) {
            errors.append(&mut e);
        }
    }
    inject::remove_info_files(call.conf, container_id, attachments);
    fault::point("del.info-files-removed");
    if !from_cache && !errors.is_empty() {
        // Nothing was recorded for this container: the DEL was a best-effort cleanup.
        for e in &errors {
            tracing::warn!("cleanup without a cache: {e}");
        }
        errors.clear();
    }
    if errors.is_empty() || !call.conf.retry_delete_on_error {
        if let Err(e) = call
            .cache
            .remove_entry(container_id, cached.unwrap_or(&Origin::Ours))
        {
            tracing::warn!("{e}");
        }
        fault::point("del.cache-removed");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Delegates(errors))
    }
}

/// Deletes a cached container the way DEL does, with the namespace recorded at ADD (passed to the
/// delegates only if it still exists), when the entry read under the lock is `still_garbage`.
pub(super) fn release_cached(
    call: &Call<'_>,
    container_id: &ContainerId,
    still_garbage: &dyn Fn(&CacheEntry) -> bool,
) -> Result<Released, Error> {
    let lock = call.lock(container_id)?;
    let Some(entry) = call.read_cache(container_id, false)? else {
        return Ok(Released::NoEntry);
    };
    if !still_garbage(&entry) {
        return Ok(Released::Kept);
    }
    teardown(
        call,
        container_id,
        &entry.attachments,
        entry.netns.as_deref(),
        Some(&entry.origin),
        &lock,
    )?;
    Ok(Released::TornDown)
}
