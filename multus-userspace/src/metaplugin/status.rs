//! STATUS: ready when the readiness indicator exists and every 1.1.0 delegate says so.

use crate::{cni::ErrorCode, delegate, error::Error};

use super::{plan, readiness, Call};

pub(super) fn run(call: &Call<'_>) -> Result<(), Error> {
    if !readiness::is_ready(call.conf) {
        return Err(readiness::not_ready(call.conf, ErrorCode::PluginNotAvailable, None));
    }
    let ctx = call.context("", None);
    for a in plan::from_config(call)? {
        delegate::status(&a, &ctx)?;
    }
    Ok(())
}
