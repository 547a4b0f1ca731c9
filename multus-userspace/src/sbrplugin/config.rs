//! The `ebpf-sbr` network configuration: Debian sbr's keys, unchanged, plus this plugin's own.
//!
//! | key | from | meaning here |
//! |---|---|---|
//! | `cniVersion`, `name`, `type` | CNI | as usual |
//! | `table` | sbr ≥ 1.6 | accepted and ignored: no routing table or policy rule is used |
//! | `prevResult` | CNI | the addresses and gateways of `CNI_IFNAME` |
//! | `bpffsDir` | ours | where the per-container pins live |
//! | `gateway` | ours | IPv4 and/or IPv6 gateway for addresses whose IPAM result has none |
//! | `debug` | ours | aya-log debug output of the programs, debug logging of the plugin |
//! | `attachMode` | ours | `auto` (netlink tc filters), `tcx`, `netlink` |
//!
//! Every other key (`args`, `runtimeConfig`, `capabilities`, anything unknown) is ignored.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use serde::Deserialize;
use serde_json::Value;

use crate::{
    cni::CniVersion,
    config::{netconf::ValidAttachment, ConfigError},
    explain::quote,
    sbr::{SbrConfig, DEFAULT_BPFFS_DIR},
};

/// `gateway`: one address or a list (at most one per family).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "expected an IP address, or a list of at most one IPv4 and one IPv6 address"
)]
enum Gateways {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Wire {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
    #[serde(default)]
    table: Option<i64>,
    #[serde(rename = "bpffsDir", default)]
    bpffs_dir: Option<PathBuf>,
    #[serde(default)]
    gateway: Option<Gateways>,
    #[serde(default)]
    debug: bool,
    #[serde(rename = "attachMode", default)]
    attach_mode: Option<String>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<ValidAttachment>>,
}

/// A parsed `ebpf-sbr` configuration.
#[derive(Clone, Debug)]
pub struct SbrNetConf {
    /// The version the runtime speaks (the result is returned in it).
    pub version: CniVersion,
    /// sbr's `table`: accepted for compatibility; it changes nothing here.
    pub table: Option<i64>,
    /// The library settings: bpffs directory, gateways, debug.
    pub sbr: SbrConfig,
    /// The previous plugin's result (ADD, CHECK; DEL when the runtime passes it).
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

/// The keys that change nothing DEL or GC of `ebpf-sbr` removes: an invalid one is reported and
/// replaced by its default for DEL and GC ([`SbrNetConf::parse_for_teardown`]).
pub const TEARDOWN_NEUTRAL_KEYS: &[&str] = &["table", "gateway", "debug", "attachMode"];

impl SbrNetConf {
    /// Parses and validates the configuration from stdin. Decoding problems are CNI code 6, invalid
    /// values code 7, an unsupported `cniVersion` code 1.
    pub fn parse(bytes: &[u8]) -> Result<SbrNetConf, ConfigError> {
        let wire: Wire = crate::explain::from_bytes(bytes)?;
        Self::from_wire(wire, None)
    }

    /// Parses the configuration for a teardown (DEL, GC): an invalid value of one of the
    /// [`TEARDOWN_NEUTRAL_KEYS`] is dropped (its default applies) and described in the returned
    /// notes instead of failing the call.
    pub fn parse_for_teardown(bytes: &[u8]) -> Result<(SbrNetConf, Vec<String>), ConfigError> {
        let (wire, mut notes): (Wire, _) =
            crate::config::decode_tolerant(bytes, TEARDOWN_NEUTRAL_KEYS)?;
        let conf = Self::from_wire(wire, Some(&mut notes))?;
        Ok((conf, notes))
    }

    /// Validates the decoded keys. With `tolerated`, an invalid neutral key is described there and
    /// its default used instead of failing.
    fn from_wire(
        wire: Wire,
        mut tolerated: Option<&mut Vec<String>>,
    ) -> Result<SbrNetConf, ConfigError> {
        let mut tolerate = |e: ConfigError| match tolerated.as_deref_mut() {
            Some(notes) => {
                notes.push(match e {
                    ConfigError::Invalid(m) => format!("{m}; the default is used"),
                    other => other.to_string(),
                });
                Ok(())
            }
            None => Err(e),
        };
        let version = CniVersion::parse_opt(wire.cni_version.as_deref())?;
        let bpffs_dir = wire
            .bpffs_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BPFFS_DIR));
        if !bpffs_dir.is_absolute() {
            return Err(ConfigError::Invalid(format!(
                "bpffsDir {} must be an absolute path (a directory on bpffs, or one where bpffs can be mounted)",
                quote(&bpffs_dir.display().to_string())
            )));
        }
        let mut sbr = SbrConfig::new(bpffs_dir);
        match gateways(wire.gateway) {
            Ok((v4, v6)) => (sbr.gateway_v4, sbr.gateway_v6) = (v4, v6),
            Err(e) => tolerate(e)?,
        }
        sbr.debug = wire.debug;
        match wire.attach_mode.as_deref() {
            None | Some("auto") => sbr.attach_mode = crate::sbr::AttachMode::Auto,
            Some("tcx") => sbr.attach_mode = crate::sbr::AttachMode::Tcx,
            Some("netlink") => sbr.attach_mode = crate::sbr::AttachMode::Netlink,
            Some(other) => tolerate(ConfigError::Invalid(format!(
                "attachMode {} is not one of auto, tcx, netlink",
                quote(other)
            )))?,
        };
        Ok(SbrNetConf {
            version,
            table: wire.table,
            sbr,
            prev_result: wire.prev_result.filter(|v| !v.is_null()),
            valid_attachments: wire.valid_attachments,
        })
    }
}

/// Validates `gateway`: IP addresses usable as a next hop, at most one per family.
fn gateways(g: Option<Gateways>) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), ConfigError> {
    let list = match g {
        None => Vec::new(),
        Some(Gateways::One(s)) => vec![s],
        Some(Gateways::Many(v)) => v,
    };
    let (mut v4, mut v6) = (None, None);
    for s in list {
        let ip: IpAddr = s.trim().parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "gateway {} is not an IP address (give an IPv4 and/or an IPv6 address)",
                quote(&s)
            ))
        })?;
        let unusable = match ip {
            IpAddr::V4(a) => {
                a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast()
            }
            IpAddr::V6(a) => a.is_unspecified() || a.is_loopback() || a.is_multicast(),
        };
        if unusable {
            return Err(ConfigError::Invalid(format!(
                "gateway {ip} cannot be a next hop"
            )));
        }
        let dup = match ip {
            IpAddr::V4(a) => v4.replace(a).is_some(),
            IpAddr::V6(a) => v6.replace(a).is_some(),
        };
        if dup {
            return Err(ConfigError::Invalid(format!(
                "gateway lists more than one IPv{} address; give at most one per family",
                if ip.is_ipv4() { 4 } else { 6 }
            )));
        }
    }
    Ok((v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<SbrNetConf, ConfigError> {
        SbrNetConf::parse(&serde_json::to_vec(&v).unwrap())
    }

    /// Found by the `sbr_conf` fuzz target: invalid UTF-8 in a string the plugin ignores was
    /// accepted by ADD (serde skips an ignored string unchecked) and refused by DEL (which reads
    /// the whole document first), so DEL failed where ADD had succeeded.
    #[test]
    fn del_accepts_what_add_accepts_even_with_invalid_utf8() {
        let input = b"{\"type\": \"\xff\xff\xffsbr\"}";
        let add = SbrNetConf::parse(input);
        let del = SbrNetConf::parse_for_teardown(input);
        assert_eq!(add.is_ok(), del.is_ok(), "ADD: {add:?}, DEL: {del:?}");
        assert!(
            add.is_ok(),
            "invalid UTF-8 is read as Go reads it (U+FFFD): {add:?}"
        );
    }

    /// Found by the sbr_conf fuzz target: a number beyond f64's range under a key the plugin
    /// ignores was skipped by ADD's decode and refused by DEL's ("a number out of range").
    #[test]
    fn del_accepts_what_add_accepts_even_with_a_number_out_of_range() {
        let input = br#"{"type": "ebpf-sbr", "unread": 888.8E8888888888, "x": -1e400}"#;
        let add = SbrNetConf::parse(input);
        let del = SbrNetConf::parse_for_teardown(input);
        assert!(add.is_ok(), "{add:?}");
        assert!(del.is_ok(), "DEL refused what ADD took: {del:?}");
    }

    #[test]
    fn accepts_sbr_config_unchanged() {
        let c = parse(serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "sbr", "table": 5000,
                                         "somethingElse": {"x": 1}, "prevResult": {"cniVersion": "1.0.0"}}))
        .unwrap();
        assert_eq!(c.version, CniVersion::V1_0_0);
        assert_eq!(c.table, Some(5000));
        assert_eq!(c.sbr.bpffs_dir, PathBuf::from(DEFAULT_BPFFS_DIR));
        assert!(c.prev_result.is_some());
        assert_eq!(
            parse(serde_json::json!({})).unwrap().version,
            CniVersion::V0_1_0
        );
    }

    #[test]
    fn a_teardown_ignores_invalid_neutral_keys_only() {
        let bad = serde_json::json!({"cniVersion": "1.0.0", "attachMode": "tc", "gateway": "x", "debug": "yes"});
        assert!(parse(bad.clone()).is_err());
        let (c, notes) =
            SbrNetConf::parse_for_teardown(&serde_json::to_vec(&bad).unwrap()).unwrap();
        assert_eq!(c.sbr, SbrConfig::new(DEFAULT_BPFFS_DIR));
        assert_eq!(notes.len(), 3, "{notes:?}");
        let strict =
            serde_json::json!({"cniVersion": "1.0.0", "bpffsDir": "relative", "attachMode": "tc"});
        assert!(SbrNetConf::parse_for_teardown(&serde_json::to_vec(&strict).unwrap()).is_err());
    }

    #[test]
    fn gateways_one_or_a_list() {
        let c = parse(serde_json::json!({"gateway": "10.1.0.1"})).unwrap();
        assert_eq!(c.sbr.gateway_v4, Some(Ipv4Addr::new(10, 1, 0, 1)));
        let c =
            parse(serde_json::json!({"gateway": ["fd01::1", "10.1.0.1"], "debug": true})).unwrap();
        assert_eq!(c.sbr.gateway_v6, Some("fd01::1".parse().unwrap()));
        assert!(c.sbr.debug);
        for bad in [
            serde_json::json!("10.1.0.300"),
            serde_json::json!(["10.0.0.1", "10.0.0.2"]),
            serde_json::json!("0.0.0.0"),
            serde_json::json!("ff02::1"),
        ] {
            assert!(
                matches!(
                    parse(serde_json::json!({"gateway": bad})),
                    Err(ConfigError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse(serde_json::json!({"gateway": 5})),
            Err(ConfigError::Decode { .. })
        ));
    }

    /// `auto` (the default) means netlink tc filters, on every kernel; `tcx` stays available.
    #[test]
    fn attach_mode_auto_means_netlink() {
        let auto = parse(serde_json::json!({})).unwrap().sbr.attach_mode;
        assert_eq!(auto, crate::sbr::AttachMode::Auto);
        assert_eq!(auto.resolve().unwrap(), crate::sbr::AttachMode::Netlink);
        let tcx = parse(serde_json::json!({"attachMode": "tcx"}))
            .unwrap()
            .sbr
            .attach_mode;
        assert_eq!(tcx, crate::sbr::AttachMode::Tcx);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(matches!(
            parse(serde_json::json!({"bpffsDir": "relative/dir"})),
            Err(ConfigError::Invalid(_))
        ));
        assert_eq!(
            parse(serde_json::json!({"attachMode": "netlink"}))
                .unwrap()
                .sbr
                .attach_mode,
            crate::sbr::AttachMode::Netlink
        );
        assert!(matches!(
            parse(serde_json::json!({"attachMode": "fast"})),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            parse(serde_json::json!({"cniVersion": "9.9.9"})),
            Err(ConfigError::Version(_))
        ));
        assert!(matches!(
            parse(serde_json::json!({"table": "x"})),
            Err(ConfigError::Decode { .. })
        ));
        assert!(matches!(
            SbrNetConf::parse(b"{"),
            Err(ConfigError::Decode { .. })
        ));
    }
}
