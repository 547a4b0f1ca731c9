//! DEL: from the cache (or, without one, from the configuration), every delegate is deleted in
//! reverse order; all failures are reported together. Never fails for a missing cache, a missing
//! namespace or a DEL repeated.

use crate::{delegate, error::Error};

use super::{plan, usable_netns, Call};

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    let req = call.req;
    let mut lock = call.lock(&req.container_id)?;
    let (attachments, from_cache) = match call.cache.read(&req.container_id) {
        Ok(Some(entry)) => (entry.attachments, true),
        Ok(None) => (plan::from_delegates(call).unwrap_or_default(), false),
        Err(e) => {
            tracing::warn!("{e}; deleting the configured delegates instead");
            (plan::from_delegates(call).unwrap_or_default(), false)
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
