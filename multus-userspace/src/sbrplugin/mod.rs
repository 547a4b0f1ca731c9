//! `ebpf-sbr`: the chained CNI plugin that takes the place of `sbr`. It reads sbr's configuration
//! unchanged (see [`config`]), takes the addresses of `CNI_IFNAME` from prevResult, and hands them
//! to the eBPF source-based-routing library ([`crate::sbr`]).
//!
//! | command | what it does |
//! |---|---|
//! | ADD | needs prevResult; `sbr::add` for the interface's addresses and gateways; returns prevResult unchanged, in the requested version |
//! | DEL | `sbr::del`; exits 0 when the namespace, the link or the pins are gone, and when run twice |
//! | CHECK | needs prevResult; `sbr::check` (programs, pins, map entries, carrier, routes); prints nothing |
//! | STATUS | the bpffs directory can be used and the kernel can run the programs |
//! | GC | `sbr::gc` with `cni.dev/valid-attachments`; never removes a container whose interfaces still exist |
//! | VERSION | 0.1.0 … 1.1.0 (answered by the runner); ADD/DEL/CHECK need chaining, so they refuse < 0.3.0 |
//!
//! Nothing is changed before the whole request has been validated, and `sbr::add` rolls back its
//! own share when it fails. Every command runs in the node's mount namespace, also when the caller
//! runs in a private one (`ip netns exec`): see [`crate::netns::mountns`].

pub mod chain;
pub mod config;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::{
    cni::{result::CniResult, runner::Plugin, CniError, CniVersion, Command, ErrorCode, Request},
    config::{ConfigError, LogLevel},
    error::Error,
    logging,
    netns::mountns::{self, IfUnknown},
    sbr::{self, InterfaceSpec, SbrConfig},
};

use chain::NoAddresses;
pub use config::SbrNetConf;

/// The `ebpf-sbr` plugin.
#[derive(Debug, Default)]
pub struct SbrPlugin;

impl Plugin for SbrPlugin {
    fn name(&self) -> &'static str {
        "ebpf-sbr"
    }

    fn handle(&self, request: &Request, stdin: &[u8]) -> Result<Option<Value>, CniError> {
        // DEL and GC run whatever a key that changes nothing they remove says; the other
        // commands refuse it.
        let (conf, ignored) = match request.command {
            Command::Del | Command::Gc => SbrNetConf::parse_for_teardown(stdin),
            _ => SbrNetConf::parse(stdin).map(|conf| (conf, Vec::new())),
        }
        .map_err(Error::from)?;
        logging::init(
            if conf.sbr.debug {
                LogLevel::Debug
            } else {
                LogLevel::Error
            },
            None,
            true,
        );
        logging::report_ignored("ebpf-sbr", request.command.as_str(), &ignored);
        let started = std::time::Instant::now();
        // Every command runs where the pins and the anchors live beyond the call: the node's mount
        // namespace (ADD refuses when it cannot tell which that is; see crate::netns::mountns).
        let if_unknown = if request.command == Command::Add {
            IfUnknown::Refuse
        } else {
            IfUnknown::RunHere
        };
        let outcome = mountns::in_node_mount_ns(if_unknown, || match request.command {
            Command::Add => add(request, &conf).map(Some),
            Command::Del => del(request, &conf).map(|()| None),
            Command::Check => check(request, &conf).map(|()| None),
            Command::Status => status(&conf).map(|()| None),
            Command::Gc => gc(&conf).map(|()| None),
            Command::Version => Ok(None),
        })
        .map_err(Error::from)
        .and_then(|r| r);
        match &outcome {
            Ok(_) => {
                tracing::debug!(command = %request.command, container = %request.container_label(),
                                     ifname = ?request.iface, elapsed = ?started.elapsed(), "done")
            }
            Err(e) => {
                tracing::error!(command = %request.command, container = %request.container_label(),
                                      ifname = ?request.iface, "{e}")
            }
        }
        outcome.map_err(CniError::from)
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Config(ConfigError::Invalid(msg.into()))
}

fn incompatible(msg: String) -> Error {
    Error::Cni(CniError::new(ErrorCode::IncompatibleVersion, msg))
}

/// ADD, DEL and CHECK only make sense in a chain (0.3.0+); CHECK exists from 0.4.0, STATUS and GC
/// from 1.1.0.
fn require_version(conf: &SbrNetConf, command: Command) -> Result<(), Error> {
    let v = conf.version;
    let needed = match command {
        Command::Add | Command::Del if v < CniVersion::V0_3_0 => {
            Some(("0.3.0", "ebpf-sbr is a chained plugin and plugin chaining"))
        }
        Command::Check if !v.supports_check() => Some(("0.4.0", "CHECK")),
        Command::Status | Command::Gc if !v.supports_status_gc() => {
            Some(("1.1.0", command.as_str()))
        }
        _ => None,
    };
    match needed {
        Some((min, what)) => Err(incompatible(format!(
            "{what} needs CNI {min} or later, the configuration says cniVersion {v}; set \"cniVersion\" to {min} or later"
        ))),
        None => Ok(()),
    }
}

fn netns(req: &Request) -> Result<&Path, Error> {
    req.netns
        .as_deref()
        .ok_or(Error::Env(crate::cni::env::EnvError::Missing("CNI_NETNS")))
}

/// prevResult, required for ADD and CHECK.
fn prev_result<'a>(conf: &'a SbrNetConf, req: &Request) -> Result<&'a Value, Error> {
    conf.prev_result.as_ref().ok_or_else(|| {
        invalid(format!(
            "ebpf-sbr is a chained plugin and got no prevResult: put it after the plugin that creates {} \
             (bridge, macvlan, ptp, ...) in the \"plugins\" list of a conflist",
            req.iface.as_ref().map_or("the interface", |i| i.as_str())
        ))
    })
}

/// prevResult as a result model, with a missing `cniVersion` read as the configuration's.
fn parse_prev(prev: &Value, version: CniVersion) -> Result<(Value, CniResult), Error> {
    let mut prev = prev.clone();
    if let Some(obj) = prev.as_object_mut() {
        obj.entry("cniVersion")
            .or_insert_with(|| Value::from(version.as_str()));
    }
    let decode = |reason: String| {
        Error::Config(ConfigError::Decode {
            path: "prevResult".into(),
            reason,
        })
    };
    let model = CniResult::parse(&prev).map_err(|e| decode(e.to_string()))?;
    Ok((prev, model))
}

/// The interface and its addresses as prevResult gives them ([`chain::interface_addresses`]: the
/// IPs whose `interface` index names `ifname`, like sbr, or every IP of a result that lists no
/// interface), checked against the configured gateways.
pub fn interface_spec(
    result: &CniResult,
    ifname: &str,
    cfg: &SbrConfig,
) -> Result<InterfaceSpec, Error> {
    let addresses = chain::interface_addresses(result, ifname).map_err(|e| match e {
        NoAddresses::NotListed(names) => invalid(format!(
            "prevResult has no interface {ifname} (it lists {names:?}); ebpf-sbr must follow the plugin that \
             creates CNI_IFNAME in the same conflist"
        )),
        NoAddresses::NoIp(Some(index)) => invalid(format!(
            "prevResult gives interface {ifname} no IP address (no ips[] entry with \"interface\": {index}); \
             the plugin before ebpf-sbr needs IPAM"
        )),
        NoAddresses::NoIp(None) => invalid(format!(
            "prevResult gives interface {ifname} no IP address (it has no ips[]); the plugin before \
             ebpf-sbr needs IPAM"
        )),
    })?;
    for a in addresses.iter().filter(|a| a.gateway.is_none()) {
        let configured: Option<IpAddr> = match a.address {
            IpAddr::V4(_) => cfg.gateway_v4.map(IpAddr::V4),
            IpAddr::V6(_) => cfg.gateway_v6.map(IpAddr::V6),
        };
        let Some(gw) = configured else { continue };
        let net = crate::cni::IpNet {
            addr: a.address,
            prefix_len: a.prefix_len,
        };
        let link_local = matches!(gw, IpAddr::V6(g) if g.is_unicast_link_local());
        if gw == a.address || (!link_local && !net.contains(gw)) {
            return Err(invalid(format!(
                "gateway {gw} is not a next hop on {ifname}'s subnet {}/{} (address {}); give a gateway inside it",
                net.network(),
                a.prefix_len,
                a.address
            )));
        }
    }
    Ok(InterfaceSpec {
        ifname: ifname.to_string(),
        addresses,
    })
}

/// The bpffs directory must be a directory or creatable as one (its first existing ancestor is a
/// directory). Checked before anything is changed.
fn check_bpffs_dir(dir: &Path) -> Result<(), Error> {
    let mut p: PathBuf = dir.to_path_buf();
    loop {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(invalid(format!(
                    "bpffsDir {}: {} is not a directory; give a directory on bpffs (e.g. under /sys/fs/bpf) or one where bpffs can be mounted",
                    dir.display(),
                    p.display()
                )))
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {}
            Err(e) => return Err(invalid(format!("bpffsDir {}: cannot inspect {}: {e}", dir.display(), p.display()))),
        }
        if !p.pop() {
            return Err(invalid(format!(
                "bpffsDir {}: no existing parent directory",
                dir.display()
            )));
        }
    }
}

fn add(req: &Request, conf: &SbrNetConf) -> Result<Value, Error> {
    require_version(conf, Command::Add)?;
    let ns = netns(req)?;
    let (prev, model) = parse_prev(prev_result(conf, req)?, conf.version)?;
    let out = CniResult::convert(&prev, conf.version).map_err(|e| {
        Error::Config(ConfigError::Decode {
            path: "prevResult".into(),
            reason: e.to_string(),
        })
    })?;
    let spec = interface_spec(&model, req.ifname()?, &conf.sbr)?;
    check_bpffs_dir(&conf.sbr.bpffs_dir)?;
    if let Some(t) = conf.table {
        tracing::debug!(
            "table {t} is accepted for compatibility with sbr; no routing table or rule is used"
        );
    }
    let report = sbr::add(&conf.sbr, req.container_id()?, ns, &spec)?;
    tracing::debug!(?report, "added");
    Ok(out)
}

fn del(req: &Request, conf: &SbrNetConf) -> Result<(), Error> {
    require_version(conf, Command::Del)?;
    Ok(sbr::del(
        &conf.sbr,
        req.container_id()?,
        req.netns.as_deref(),
        req.ifname()?,
    )?)
}

fn check(req: &Request, conf: &SbrNetConf) -> Result<(), Error> {
    require_version(conf, Command::Check)?;
    let ns = netns(req)?;
    let (_, model) = parse_prev(prev_result(conf, req)?, conf.version)?;
    let spec = interface_spec(&model, req.ifname()?, &conf.sbr)?;
    Ok(sbr::check(&conf.sbr, req.container_id()?, ns, &spec)?)
}

fn not_available(msg: String) -> Error {
    Error::Cni(CniError::new(ErrorCode::PluginNotAvailable, msg))
}

/// STATUS: ADD could be served (bpffs directory usable, kernel new enough, BPF programs loadable).
fn status(conf: &SbrNetConf) -> Result<(), Error> {
    require_version(conf, Command::Status)?;
    check_bpffs_dir(&conf.sbr.bpffs_dir).map_err(|e| not_available(e.to_string()))?;
    let kernel = aya::util::KernelVersion::current()
        .map_err(|e| not_available(format!("cannot read the kernel version: {e}")))?;
    if let Some(why) = kernel_problem(conf.sbr.attach_mode, kernel) {
        return Err(not_available(why));
    }
    match sbr::tc_programs_supported() {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_available(
            "the kernel cannot load tc (sched_cls) BPF programs".into(),
        )),
        Err(e) => Err(not_available(format!(
            "cannot load a BPF program ({e}); ebpf-sbr needs CAP_BPF and CAP_NET_ADMIN (or root)"
        ))),
    }
}

/// Why `kernel` cannot serve ADD in `mode`, if it cannot: every mode needs [`sbr::MIN_KERNEL`],
/// TCX [`sbr::TCX_MIN_KERNEL`].
fn kernel_problem(mode: sbr::AttachMode, kernel: aya::util::KernelVersion) -> Option<String> {
    let (major, minor) = sbr::MIN_KERNEL;
    if kernel < aya::util::KernelVersion::new(major, minor, 0) {
        return Some(format!(
            "kernel {kernel} is too old for ebpf-sbr: it needs Linux {major}.{minor} or later"
        ));
    }
    if mode == sbr::AttachMode::Tcx && !sbr::kernel_has_tcx(kernel) {
        let (major, minor) = sbr::TCX_MIN_KERNEL;
        return Some(format!(
            "kernel {kernel} has no TCX (Linux {major}.{minor} or later); use \"attachMode\": \"netlink\""
        ));
    }
    None
}

/// GC: removes the pins of containers not in `cni.dev/valid-attachments`, and of containers whose
/// namespace is gone. The bpffs directory may be shared by several networks, and valid-attachments
/// only lists this network's: a container whose interfaces still exist is never removed here (its
/// own DEL removes it).
fn gc(conf: &SbrNetConf) -> Result<(), Error> {
    require_version(conf, Command::Gc)?;
    let valid = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| invalid("GC needs \"cni.dev/valid-attachments\" in the configuration (the container runtime sets it)"))?;
    if !conf.sbr.bpffs_dir.is_dir() {
        return Ok(());
    }
    let mut keep: Vec<String> = valid.iter().map(|a| a.container_id.clone()).collect();
    for id in sbr::pods(&conf.sbr)? {
        if keep.iter().any(|k| *k == id.as_str()) {
            continue;
        }
        let alive = sbr::inspect(&conf.sbr, &id)
            .map(|info| {
                info.attachments
                    .iter()
                    .any(|a| a.target.as_ref().is_ok_and(|t| t.ifindex != 0))
            })
            .unwrap_or(false);
        if alive {
            tracing::info!(container = %id, "GC: not listed for this network but its interfaces still exist; kept");
            keep.push(id.to_string());
        }
    }
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    let report = sbr::gc(&conf.sbr, &keep)?;
    tracing::debug!(?report, "gc");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kernel_minimum_per_attach_mode() {
        let k = aya::util::KernelVersion::new;
        for mode in [
            sbr::AttachMode::Netlink,
            sbr::AttachMode::Auto,
            sbr::AttachMode::Tcx,
        ] {
            assert!(kernel_problem(mode, k(5, 15, 0)).is_some_and(|m| m.contains("5.16")));
            assert_eq!(kernel_problem(mode, k(6, 6, 0)), None);
        }
        assert_eq!(kernel_problem(sbr::AttachMode::Netlink, k(6, 1, 0)), None);
        assert_eq!(kernel_problem(sbr::AttachMode::Auto, k(5, 16, 0)), None);
        assert!(kernel_problem(sbr::AttachMode::Tcx, k(6, 5, 0)).is_some_and(|m| m.contains("6.6")));
    }

    fn model(v: Value) -> CniResult {
        CniResult::parse(&v).unwrap()
    }

    fn prev() -> CniResult {
        model(json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "br1"}, {"name": "veth1"}, {"name": "net1", "sandbox": "/run/netns/p"}],
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 2},
                    {"address": "fd01::2/64", "interface": 2},
                    {"address": "10.9.0.2/24", "interface": 0}]}))
    }

    #[test]
    fn takes_the_ips_of_the_interface() {
        let s = interface_spec(&prev(), "net1", &SbrConfig::default()).unwrap();
        assert_eq!(s.addresses.len(), 2);
        assert_eq!(s.addresses[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(s.addresses[1].prefix_len, 64);
    }

    #[test]
    fn missing_interface_or_addresses() {
        assert!(interface_spec(&prev(), "net2", &SbrConfig::default()).is_err());
        let r = model(
            json!({"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": "/x"}]}),
        );
        let e = interface_spec(&r, "net1", &SbrConfig::default()).unwrap_err();
        assert_eq!(e.to_cni().code, ErrorCode::InvalidNetworkConfig);
    }

    /// The rule multusctl always used for cached results, now the plugin's too (one function:
    /// `chain::interface_addresses`): a prevResult that lists no interface describes CNI_IFNAME.
    #[test]
    fn a_prev_result_without_interfaces_gives_every_ip_to_the_interface() {
        let r = model(json!({"cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1"}, {"address": "fd01::2/64"}]}));
        let s = interface_spec(&r, "net1", &SbrConfig::default()).unwrap();
        assert_eq!(s.addresses.len(), 2);
        assert_eq!(s.addresses[0].gateway, Some("10.1.0.1".parse().unwrap()));
        let none = model(json!({"cniVersion": "1.0.0"}));
        let e = interface_spec(&none, "net1", &SbrConfig::default()).unwrap_err();
        assert!(e.to_string().contains("no IP address"), "{e}");
    }

    #[test]
    fn configured_gateway_must_be_on_link() {
        let mut cfg = SbrConfig {
            gateway_v6: Some("fd09::1".parse().unwrap()),
            ..SbrConfig::default()
        };
        assert!(interface_spec(&prev(), "net1", &cfg).is_err());
        cfg.gateway_v6 = Some("fe80::1".parse().unwrap());
        assert!(interface_spec(&prev(), "net1", &cfg).is_ok());
        cfg.gateway_v6 = Some("fd01::1".parse().unwrap());
        assert!(interface_spec(&prev(), "net1", &cfg).is_ok());
        // An address that has a gateway ignores the configured one.
        cfg.gateway_v4 = Some("192.0.2.1".parse().unwrap());
        assert!(interface_spec(&prev(), "net1", &cfg).is_ok());
    }

    #[test]
    fn versions() {
        let conf =
            |v: &str| SbrNetConf::parse(json!({"cniVersion": v}).to_string().as_bytes()).unwrap();
        assert_eq!(
            require_version(&conf("0.2.0"), Command::Add)
                .unwrap_err()
                .to_cni()
                .code,
            ErrorCode::IncompatibleVersion
        );
        assert!(require_version(&conf("0.3.1"), Command::Add).is_ok());
        assert!(require_version(&conf("0.3.1"), Command::Check).is_err());
        assert!(require_version(&conf("1.0.0"), Command::Gc).is_err());
        assert!(require_version(&conf("1.1.0"), Command::Status).is_ok());
    }
}
