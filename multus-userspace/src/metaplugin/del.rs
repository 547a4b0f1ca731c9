//! DEL: from the cache (or, without one, from the pod through the API within a short deadline, or
//! from the configuration), every delegate is deleted in reverse order; all failures are reported
//! together. Never fails for a missing cache, a missing namespace, an unreachable API, or a DEL
//! repeated. With a cache, DEL does not use the API at all; without one, API work is bounded by
//! `delApiDeadlineSeconds`. network-status is left to the next ADD: clearing it here could erase
//! the status of the pod's newer sandbox when kubelet removes an old one late.

use std::time::Instant;

use crate::{delegate, error::Error};

use super::{plan, usable_netns, Call};

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    let req = call.req;
    let mut lock = call.lock(&req.container_id)?;
    let deadline = Instant::now() + call.conf.del_api_deadline();
    let cached = match call.cache.read(&req.container_id) {
        Ok(entry) => entry,
        Err(e) => {
            tracing::warn!("{e}; falling back to the pod or the configuration");
            None
        }
    };
    let from_cache = cached.is_some();
    let attachments = match cached {
        Some(entry) => entry.attachments,
        None => {
            let kube = call.kube().unwrap_or_else(|e| {
                tracing::warn!("no Kubernetes API for DEL: {e}");
                None
            });
            let rebuilt = kube.as_ref().and_then(|k| match plan::build(call, Some(k), deadline) {
                Ok(p) => Some(p.attachments),
                Err(e) => {
                    tracing::warn!("cannot rebuild the attachments from the pod: {e}");
                    None
                }
            });
            rebuilt.unwrap_or_else(|| plan::from_config(call).unwrap_or_default())
        }
    };
    let netns = usable_netns(req.netns.as_deref());
    let ctx = call.context(&req.container_id, netns);
    let mut errors = Vec::new();
    for a in attachments.iter().rev() {
        if let Err(mut e) = delegate::del(a, &ctx) {
            errors.append(&mut e);
        }
    }
    super::devices::remove_info_files(call, &req.container_id, &attachments);
    if !from_cache && !errors.is_empty() {
        // Nothing was recorded for this container: the DEL was a best-effort cleanup.
        for e in &errors {
            tracing::warn!("cleanup without a cache: {e}");
        }
        errors.clear();
    }
    if errors.is_empty() || !call.conf.retry_delete_on_error {
        if let Err(e) = call.cache.remove(&req.container_id) {
            tracing::warn!("{e}");
        }
        lock.remove_on_release();
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Delegates(errors))
    }
}
