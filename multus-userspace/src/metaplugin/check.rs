//! CHECK: every cached attachment is checked by its delegates with its cached result.

use crate::{
    cni::{env::EnvError, CniError, ErrorCode},
    delegate,
    error::Error,
    netns::NetNs,
};

use super::Call;

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    let req = call.req;
    let id = req.container_id()?;
    if !call.version.supports_check() {
        return Err(Error::Cni(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "CHECK is not defined for cniVersion {}; it needs 0.4.0 or later",
                call.version
            ),
        )));
    }
    let netns = req.netns.as_deref().ok_or(EnvError::Missing("CNI_NETNS"))?;
    NetNs::open(netns)?;
    let _lock = call.lock(id)?;
    let entry = call.read_cache(id, true)?.ok_or_else(|| {
        Error::UnknownContainer(format!(
            "nothing is cached for container {}: ADD did not run or DEL already ran",
            id
        ))
    })?;
    let ctx = call.context(Some(id), Some(netns));
    for a in &entry.attachments {
        delegate::check(a, &ctx)?;
    }
    Ok(())
}
