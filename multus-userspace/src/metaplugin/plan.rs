//! Which networks a container gets, on which interfaces, with what per-attachment configuration.

use std::collections::HashSet;

use crate::{
    config::{network::validate_requested_ifname, ConfigError},
    delegate::Attachment,
    error::Error,
};

use super::Call;

/// The attachments of the configuration's `delegates`: the master (first, or the one marked
/// `masterplugin`) gets `CNI_IFNAME`, the others `net<index>`. The runtime's runtimeConfig goes
/// to the master only (NPWG 7.5), filtered later by each plugin's capabilities.
pub fn from_delegates(call: &Call<'_>) -> Result<Vec<Attachment>, Error> {
    let nets = call.conf.delegate_networks()?;
    let masters: Vec<usize> = nets.iter().enumerate().filter(|(_, n)| n.is_master()).map(|(i, _)| i).collect();
    if masters.len() > 1 {
        return Err(ConfigError::Invalid(format!("delegates {masters:?} all set \"masterplugin\"; only one may")).into());
    }
    let master = masters.first().copied().unwrap_or(0);
    let mut out = Vec::with_capacity(nets.len());
    for (i, net) in nets.into_iter().enumerate() {
        let ifname = if i == master { call.req.ifname.clone() } else { format!("net{i}") };
        let name = net
            .name()
            .map(String::from)
            .unwrap_or_else(|| net.plugin_types().first().map(|t| t.to_string()).unwrap_or_default());
        net.cni_version(call.version)?;
        let mut a = Attachment::new(name, ifname, net, call.req.args.to_string());
        if i == master {
            a.master = true;
            a.runtime_config = call.conf.runtime_config.clone();
        }
        out.push(a);
    }
    if call.req.command.is_per_container() {
        check_ifnames(&out)?;
    }
    Ok(out)
}

/// Interface names must be valid and unique within the container.
pub fn check_ifnames(attachments: &[Attachment]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for a in attachments {
        validate_requested_ifname(&a.ifname, &format!("network {:?}", a.name))?;
        if !seen.insert(a.ifname.as_str()) {
            return Err(ConfigError::Invalid(format!("interface {:?} is requested by more than one network", a.ifname)).into());
        }
    }
    Ok(())
}
