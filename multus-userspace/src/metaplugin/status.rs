//! STATUS: ready when the readiness indicator exists and every 1.1.0 delegate says so. STATUS is
//! defined from cniVersion 1.1.0; an older configuration gets the spec's code 1, as with GC.

use crate::{
    cni::{CniError, ErrorCode},
    delegate,
    error::Error,
};

use super::{plan, readiness, Call};

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    if !call.version.supports_status_gc() {
        return Err(Error::Cni(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "STATUS is not defined for cniVersion {}; it needs 1.1.0",
                call.version
            ),
        )));
    }
    if !readiness::is_ready(call.conf) {
        return Err(readiness::not_ready(
            call.conf,
            ErrorCode::PluginNotAvailable,
            None,
        ));
    }
    let ctx = call.context(None, None);
    // Networks that need the API to resolve (a NAD as clusterNetwork) are not asked: STATUS says
    // whether multus can serve ADD, and ADD resolves them then.
    let networks = plan::from_config(call).unwrap_or_else(|e| {
        tracing::info!("STATUS: not forwarded to the configured networks: {e}");
        Vec::new()
    });
    for a in networks {
        delegate::status(&a, &ctx)?;
    }
    Ok(())
}
