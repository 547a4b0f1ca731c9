//! CNI specification versions and negotiation.

use std::{fmt, str::FromStr};

/// A CNI specification version this implementation speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.1.0 (ip4/ip6 result).
    V0_1_0,
    /// 0.2.0 (ip4/ip6 result).
    V0_2_0,
    /// 0.3.0 (interfaces/ips result).
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0 (adds CHECK).
    V0_4_0,
    /// 1.0.0 (drops ips[].version).
    V1_0_0,
    /// 1.1.0 (adds STATUS, GC, cniVersions, interface mtu/socketPath/pciID, route metadata).
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const ALL: [CniVersion; 7] = [
        CniVersion::V0_1_0,
        CniVersion::V0_2_0,
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    /// The newest supported version.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether results of this version use the legacy `ip4`/`ip6` shape.
    pub fn is_legacy(self) -> bool {
        self <= CniVersion::V0_2_0
    }

    /// Whether the CHECK command exists in this version.
    pub fn supports_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// Whether STATUS and GC exist in this version.
    pub fn supports_status_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Parses a version; a missing version is 0.1.0 as the spec says.
    pub fn parse_opt(v: Option<&str>) -> Result<CniVersion, UnsupportedVersion> {
        match v {
            None | Some("") => Ok(CniVersion::V0_1_0),
            Some(s) => s.parse(),
        }
    }

    /// Picks the newest supported version from a `cniVersions` array; `None` when none is supported.
    pub fn negotiate<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Option<CniVersion> {
        candidates.into_iter().filter_map(|s| s.parse().ok()).max()
    }

    /// The supported version strings, for VERSION and error messages.
    pub fn supported_strings() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string this implementation does not speak.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CNI version {0:?} is not supported (supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)")]
pub struct UnsupportedVersion(pub String);

impl FromStr for CniVersion {
    type Err = UnsupportedVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnsupportedVersion(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!("0.3.1".parse::<CniVersion>().unwrap(), CniVersion::V0_3_1);
        assert!(CniVersion::V0_2_0 < CniVersion::V1_0_0);
        assert!("0.5.0".parse::<CniVersion>().is_err());
        assert_eq!(CniVersion::parse_opt(None).unwrap(), CniVersion::V0_1_0);
    }

    #[test]
    fn negotiates_newest_known() {
        assert_eq!(
            CniVersion::negotiate(["0.4.0", "1.0.0", "9.0.0"]),
            Some(CniVersion::V1_0_0)
        );
        assert_eq!(CniVersion::negotiate(["9.0.0"]), None);
    }
}
