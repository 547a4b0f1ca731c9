//! ADD: validate everything, cache the plan, run the delegates in order, roll back on failure.

use serde_json::Value;

use crate::{
    cni::{env::EnvError, result::CniResult},
    delegate::{self, cache::{CacheEntry, CACHE_FORMAT}, Attachment, Context},
    error::Error,
    netns::NetNs,
};

use super::{plan, readiness, Call};

pub(super) fn run(call: &Call<'_>) -> Result<Value, Error> {
    let req = call.req;
    let netns = req.netns.as_deref().ok_or(EnvError::Missing("CNI_NETNS"))?;
    NetNs::open(netns)?;
    readiness::wait(call.conf)?;
    let attachments = plan::from_delegates(call)?;
    for a in &attachments {
        delegate::resolve_binaries(a, &call.path)?;
    }
    let mut lock = call.lock(&req.container_id)?;
    let mut entry = CacheEntry {
        format: CACHE_FORMAT,
        container_id: req.container_id.clone(),
        netns: Some(netns.to_path_buf()),
        ifname: req.ifname.clone(),
        cni_version: call.version.to_string(),
        cni_args: req.args.to_string(),
        pod: None,
        attachments,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        extra: Default::default(),
    };
    call.cache.write(&entry)?;
    let ctx = call.context(&req.container_id, Some(netns));
    for i in 0..entry.attachments.len() {
        match delegate::add(&entry.attachments[i], &ctx) {
            Ok(result) => entry.attachments[i].result = Some(result),
            Err(e) => return Err(rollback(call, &ctx, &entry.attachments[..=i], &mut lock, e.into())),
        }
    }
    if let Err(e) = call.cache.write(&entry) {
        return Err(rollback(call, &ctx, &entry.attachments, &mut lock, e.into()));
    }
    let master = entry.attachments.iter().find(|a| a.master).and_then(|a| a.result.as_ref());
    let result = master.cloned().unwrap_or_else(|| CniResult::default().to_json(call.version));
    Ok(CniResult::convert(&result, call.version).map_err(|e| {
        Error::Cni(crate::cni::CniError::new(crate::cni::ErrorCode::DecodingFailure, format!("master delegate result: {e}")))
    })?)
}

/// Deletes `done` in reverse (the last one may be half-made), removes the cache, and wraps `cause`.
fn rollback(
    call: &Call<'_>,
    ctx: &Context<'_>,
    done: &[Attachment],
    lock: &mut crate::delegate::lock::ContainerLock,
    cause: Error,
) -> Error {
    tracing::warn!("ADD failed, rolling back {} attachment(s): {cause}", done.len());
    let mut failures = Vec::new();
    for a in done.iter().rev() {
        if let Err(errors) = delegate::del(a, ctx) {
            failures.extend(errors.iter().map(ToString::to_string));
        }
    }
    if let Err(e) = call.cache.remove(&call.req.container_id) {
        failures.push(e.to_string());
    }
    lock.remove_on_release();
    Error::RolledBack { source: Box::new(cause), rollback: failures }
}
