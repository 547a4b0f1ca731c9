//! An IP address with a prefix length, as CNI results write it (`10.0.0.2/24`).

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address and prefix length. A bare address parses as a host prefix (/32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The address (host bits kept).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl IpNet {
    /// A new prefix; fails when the length is too long for the family.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, IpNetError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(IpNetError(format!("{addr}/{prefix_len}")));
        }
        Ok(Self { addr, prefix_len })
    }

    /// True for IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        mask(self.addr, self.prefix_len)
    }

    /// Whether `ip` lies inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix_len) == self.network()
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::from((bits & m).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::from((bits & m).to_be_bytes())
        }
    }
}

/// A string that is not `address[/prefix]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is not an IP address or CIDR", crate::explain::quote(.0))]
pub struct IpNetError(pub String);

impl FromStr for IpNet {
    type Err = IpNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IpNetError(s.to_string());
        match s.split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                let len: u8 = p.parse().map_err(|_| bad())?;
                IpNet::new(addr, len).map_err(|_| bad())
            }
            None => {
                let addr: IpAddr = s.parse().map_err(|_| bad())?;
                Ok(IpNet {
                    addr,
                    prefix_len: if addr.is_ipv4() { 32 } else { 128 },
                })
            }
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let n: IpNet = "10.1.0.2/24".parse().unwrap();
        assert_eq!(n.network().to_string(), "10.1.0.0");
        assert!(n.contains("10.1.0.77".parse().unwrap()));
        assert!(!n.contains("10.1.1.1".parse().unwrap()));
        let h: IpNet = "fd00::2".parse().unwrap();
        assert_eq!(h.prefix_len, 128);
        assert!("10.0.0.1/33".parse::<IpNet>().is_err());
        assert!("0.0.0.0/0"
            .parse::<IpNet>()
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
    }
}
