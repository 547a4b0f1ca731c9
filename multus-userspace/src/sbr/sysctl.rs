//! Per-interface sysctls, read and written through /proc/sys in the calling thread's network
//! namespace (call from inside [`crate::netns::NetNs::run`]).

use std::path::PathBuf;

use super::error::SbrError;

/// `/proc/sys/net/<family>/conf/<ifname>/<key>`.
pub fn conf_path(family: &str, ifname: &str, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/{family}/conf/{ifname}/{key}"))
}

/// Reads an integer sysctl.
pub fn read(path: &PathBuf) -> Result<u32, SbrError> {
    let text = std::fs::read_to_string(path).map_err(|source| SbrError::Sysctl {
        path: path.clone(),
        source,
    })?;
    text.trim().parse().map_err(|_| SbrError::Sysctl {
        path: path.clone(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a number: {text:?}"),
        ),
    })
}

/// Writes an integer sysctl.
pub fn write(path: &PathBuf, value: u32) -> Result<(), SbrError> {
    std::fs::write(path, value.to_string()).map_err(|source| SbrError::Sysctl {
        path: path.clone(),
        source,
    })
}

/// The rp_filter value of an interface, and the effective one (the kernel uses the larger of the
/// interface's and `all`'s).
pub fn rp_filter(ifname: &str) -> Result<(u32, u32), SbrError> {
    let own = read(&conf_path("ipv4", ifname, "rp_filter"))?;
    let all = read(&conf_path("ipv4", "all", "rp_filter"))?;
    Ok((own, own.max(all)))
}
