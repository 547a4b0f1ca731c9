//! CNI results of every spec version, parsed into one model and rendered back into any version.
//!
//! 0.1.0/0.2.0 use `ip4`/`ip6` objects; 0.3.x and 0.4.0 use `interfaces`/`ips` (with
//! `ips[].version`); 1.0.0 drops `ips[].version`; 1.1.0 adds interface `mtu`/`socketPath`/`pciID`
//! and route `mtu`/`advmss`/`priority`/`table`/`scope`. Rendering into an older version drops what it
//! cannot express, as libcni does.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ipnet::IpNet, version::CniVersion};

/// A result in the model shared by every version (the 1.1.0 superset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniResult {
    /// Interfaces created or used.
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    pub routes: Vec<Route>,
    /// DNS settings.
    pub dns: Dns,
}

/// An interface of a result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Sandbox (netns path) when the interface is inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// vhost-user / memif socket path (1.1.0).
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    /// PCI address of the device (1.1.0).
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An address of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// Address with prefix.
    pub address: IpNet,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

/// A route of a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub dst: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Metric (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    /// A route with only a destination and gateway (what versions before 1.1.0 can express).
    fn basic(&self) -> Route {
        Route {
            dst: self.dst,
            gw: self.gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings of a result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Why a result could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// Not JSON, or not the shape of its version.
    #[error("cannot decode a CNI {version} result: {reason}")]
    Decode {
        /// The version the result claimed.
        version: String,
        /// What was wrong.
        reason: String,
    },
    /// The result claims a version this implementation does not speak.
    #[error(transparent)]
    Version(#[from] super::version::UnsupportedVersion),
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct WireCurrent {
    /// Read by `version_of`; decoding does not need it (a result without one is 0.1.0).
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireLegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

#[derive(Serialize, Deserialize)]
struct WireLegacy {
    /// Read by `version_of`; decoding does not need it (a result without one is 0.1.0).
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<WireLegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<WireLegacyIp>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// The version a raw result claims (missing means 0.1.0).
    pub fn version_of(raw: &Value) -> Result<CniVersion, ResultError> {
        Ok(CniVersion::parse_opt(
            raw.get("cniVersion").and_then(Value::as_str),
        )?)
    }

    /// Parses a result of any supported version.
    pub fn parse(raw: &Value) -> Result<CniResult, ResultError> {
        let version = Self::version_of(raw)?;
        let decode = |e: crate::explain::Explained| ResultError::Decode {
            version: version.to_string(),
            reason: e.to_string(),
        };
        if version.is_legacy() {
            let w: WireLegacy = crate::explain::from_value(raw).map_err(decode)?;
            let mut out = CniResult {
                dns: w.dns,
                ..Default::default()
            };
            for ip in [w.ip4, w.ip6].into_iter().flatten() {
                out.ips.push(IpConfig {
                    address: ip.ip,
                    gateway: ip.gateway,
                    interface: None,
                });
                out.routes.extend(ip.routes);
            }
            Ok(out)
        } else {
            let w: WireCurrent = crate::explain::from_value(raw).map_err(decode)?;
            let ips = w
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect();
            Ok(CniResult {
                interfaces: w.interfaces,
                ips,
                routes: w.routes,
                dns: w.dns,
            })
        }
    }

    /// Renders the result in `version`.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let rendered = if version.is_legacy() {
            let legacy = |v4: bool| {
                let ip = self.ips.iter().find(|ip| ip.address.is_ipv4() == v4)?;
                Some(WireLegacyIp {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| r.dst.is_ipv4() == v4)
                        .map(Route::basic)
                        .collect(),
                })
            };
            serde_json::to_value(WireLegacy {
                cni_version: version.to_string(),
                ip4: legacy(true),
                ip6: legacy(false),
                dns: self.dns.clone(),
            })
        } else {
            let v11 = version >= CniVersion::V1_1_0;
            let with_ip_version = version < CniVersion::V1_0_0;
            serde_json::to_value(WireCurrent {
                cni_version: version.to_string(),
                interfaces: self
                    .interfaces
                    .iter()
                    .map(|i| {
                        if v11 {
                            i.clone()
                        } else {
                            Interface {
                                mtu: None,
                                socket_path: None,
                                pci_id: None,
                                ..i.clone()
                            }
                        }
                    })
                    .collect(),
                ips: self
                    .ips
                    .iter()
                    .map(|ip| WireIp {
                        version: with_ip_version
                            .then(|| if ip.address.is_ipv4() { "4" } else { "6" }.to_string()),
                        address: ip.address,
                        gateway: ip.gateway,
                        interface: ip.interface,
                    })
                    .collect(),
                routes: self
                    .routes
                    .iter()
                    .map(|r| if v11 { r.clone() } else { r.basic() })
                    .collect(),
                dns: self.dns.clone(),
            })
        };
        rendered.unwrap_or(Value::Null)
    }

    /// Converts a raw result to `version`; a result already in that version is returned untouched
    /// (so fields unknown to this implementation survive).
    pub fn convert(raw: &Value, version: CniVersion) -> Result<Value, ResultError> {
        if Self::version_of(raw)? == version {
            return Ok(raw.clone());
        }
        Ok(Self::parse(raw)?.to_json(version))
    }

    /// The index of the interface called `name`: the one that lives in a sandbox, else any.
    pub fn interface_index(&self, name: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
            .or_else(|| self.interfaces.iter().position(|i| i.name == name))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v100() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
                           {"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 1},
                    {"address": "fd00::2/64", "gateway": "fd00::1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "::/0"}],
            "dns": {"nameservers": ["10.0.0.53"]}
        })
    }

    #[test]
    fn same_version_is_untouched() {
        let mut raw = v100();
        raw["unknownKey"] = json!(1);
        assert_eq!(CniResult::convert(&raw, CniVersion::V1_0_0).unwrap(), raw);
    }

    #[test]
    fn down_to_040_adds_ip_versions() {
        let out = CniResult::convert(&v100(), CniVersion::V0_4_0).unwrap();
        assert_eq!(out["cniVersion"], "0.4.0");
        assert_eq!(out["ips"][0]["version"], "4");
        assert_eq!(out["ips"][1]["version"], "6");
        assert_eq!(out["ips"][1]["interface"], 1);
    }

    #[test]
    fn down_to_020_uses_ip4_ip6() {
        let out = CniResult::convert(&v100(), CniVersion::V0_2_0).unwrap();
        assert_eq!(out["ip4"]["ip"], "10.0.0.2/24");
        assert_eq!(out["ip4"]["gateway"], "10.0.0.1");
        assert_eq!(out["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(out["ip6"]["routes"][0]["dst"], "::/0");
        assert!(out.get("interfaces").is_none());
        assert_eq!(out["dns"]["nameservers"][0], "10.0.0.53");
    }

    #[test]
    fn up_from_020() {
        let legacy = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
                            "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}});
        let out = CniResult::convert(&legacy, CniVersion::V1_1_0).unwrap();
        assert_eq!(out["ips"][0]["address"], "10.1.0.5/16");
        assert!(out["ips"][0].get("version").is_none());
        assert_eq!(out["routes"][0]["dst"], "0.0.0.0/0");
    }

    #[test]
    fn v110_fields_dropped_below() {
        let raw = json!({"cniVersion": "1.1.0", "interfaces": [{"name": "net1", "mtu": 1400, "pciID": "0000:00:01.0"}],
                         "routes": [{"dst": "10.0.0.0/8", "table": 100, "mtu": 1400}]});
        let out = CniResult::convert(&raw, CniVersion::V1_0_0).unwrap();
        assert!(out["interfaces"][0].get("mtu").is_none());
        assert!(out["routes"][0].get("table").is_none());
        let back = CniResult::parse(&raw).unwrap();
        assert_eq!(back.interfaces[0].mtu, Some(1400));
    }

    #[test]
    fn every_version_round_trips_addresses() {
        let model = CniResult::parse(&v100()).unwrap();
        for v in CniVersion::ALL {
            let out = model.to_json(v);
            let back = CniResult::parse(&out).unwrap();
            assert_eq!(
                back.ips.iter().map(|i| i.address).collect::<Vec<_>>(),
                model.ips.iter().map(|i| i.address).collect::<Vec<_>>(),
                "{v}"
            );
        }
    }

    #[test]
    fn without_a_version_is_010() {
        let raw = json!({"ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1"}});
        assert_eq!(CniResult::version_of(&raw).unwrap(), CniVersion::V0_1_0);
        let r = CniResult::parse(&raw).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/16");
        assert_eq!(r.to_json(CniVersion::V0_1_0)["cniVersion"], "0.1.0");
    }

    #[test]
    fn rejects_garbage() {
        assert!(
            CniResult::parse(&json!({"cniVersion": "1.0.0", "ips": [{"address": "nope"}]}))
                .is_err()
        );
        assert!(CniResult::parse(&json!({"cniVersion": "7.0.0"})).is_err());
    }
}
