//! GC: containers not in `cni.dev/valid-attachments` lose their attachments and cache; then each
//! delegate network gets GC with the attachments still valid for it.

use std::collections::{BTreeMap, HashSet};

use crate::{
    cni::{CniError, ErrorCode},
    config::{netconf::ValidAttachment, ConfigError},
    delegate::{self, Attachment},
    error::Error,
};

use super::{plan, Call};

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    if !call.version.supports_status_gc() {
        return Err(Error::Cni(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "GC is not defined for cniVersion {}; it needs 1.1.0",
                call.version
            ),
        )));
    }
    let valid = call.conf.valid_attachments.as_ref().ok_or_else(|| {
        ConfigError::Invalid(
            "GC needs \"cni.dev/valid-attachments\" (an empty list removes everything)".into(),
        )
    })?;
    let keep: HashSet<&str> = valid.iter().map(|v| v.container_id.as_str()).collect();
    let mut errors = Vec::new();
    // Networks still in use, with their valid attachments, for forwarding GC.
    let mut networks: BTreeMap<String, (Attachment, Vec<ValidAttachment>)> = BTreeMap::new();
    let configured = plan::from_config(call).unwrap_or_else(|e| {
        tracing::warn!("GC: the configured networks are not forwarded GC: {e}");
        Vec::new()
    });
    for a in configured {
        networks.entry(a.name.clone()).or_insert((a, Vec::new()));
    }
    for id in call.cache.list()? {
        let lock = call.lock(&id)?;
        let entry = match call.read_cache(&id, false) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("{e}; removing it");
                let _ = call.cache.remove(&id);
                continue;
            }
        };
        if keep.contains(id.as_str()) {
            for a in entry.attachments {
                let slot = networks
                    .entry(a.name.clone())
                    .or_insert_with(|| (a.clone(), Vec::new()));
                slot.1.push(ValidAttachment {
                    container_id: id.to_string(),
                    ifname: a.ifname.clone(),
                });
            }
            continue;
        }
        tracing::info!(container = %id, "GC: removing stale attachments");
        if let Err(e) = super::del::teardown(
            call,
            &id,
            &entry.attachments,
            entry.netns.as_deref(),
            Some(&entry.origin),
            &lock,
        ) {
            match e {
                Error::Delegates(mut list) => errors.append(&mut list),
                other => return Err(other),
            }
        }
    }
    let ctx = call.context(None, None);
    for (att, valid) in networks.values() {
        if let Err(mut e) = delegate::gc(att, &ctx, valid) {
            errors.append(&mut e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Delegates(errors))
    }
}
