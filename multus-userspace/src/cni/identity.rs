//! The identities a CNI call names, validated once, here, into types: the container id and the
//! interface name (both become file and pin names, the interface name a kernel device name) and
//! the pod. Everything that turns one into a path or a device takes the type, never a string.

use std::{fmt, ops::Deref};

use serde::{Deserialize, Serialize};

use crate::explain::quote;

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a container id as the CNI spec defines it.
    #[error("container id {0} must be 1 to 255 bytes, start with a letter or digit and contain only letters, digits, '_', '.' and '-'")]
    ContainerId(String),
    /// Not a name the kernel accepts for a network device.
    #[error("{0}")]
    IfName(String),
}

/// A container id: the CNI spec's pattern (alphanumeric first, then alphanumerics, `_`, `.`
/// and `-`), at most 255 bytes, so it is also a safe file name (no `/`, never `.` or `..`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates `id`.
    pub fn parse(id: &str) -> Result<Self, IdentityError> {
        let mut chars = id.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if first_ok && rest_ok && id.len() <= 255 {
            Ok(Self(id.to_string()))
        } else {
            Err(IdentityError::ContainerId(quote(id)))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A network interface name as the kernel's `dev_valid_name` accepts it: 1 to 15 bytes, not `.`
/// or `..`, no `/`, `:`, white space or control character. Safe as part of a file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<Self, IdentityError> {
        let why = if name.is_empty() {
            "the interface name is empty".to_string()
        } else if name.len() > 15 {
            format!("interface name {} is longer than 15 bytes", quote(name))
        } else if name == "." || name == ".." {
            format!("interface name {} is not allowed", quote(name))
        } else if let Some(c) = name
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
        {
            format!(
                "interface name {} contains the forbidden character {}",
                quote(name),
                quote(&c.to_string())
            )
        } else {
            return Ok(Self(name.to_string()));
        };
        Err(IdentityError::IfName(why))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_type {
    ($t:ty) => {
        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<std::path::Path> for $t {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl TryFrom<String> for $t {
            type Error = IdentityError;
            fn try_from(s: String) -> Result<Self, IdentityError> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = IdentityError;
            fn from_str(s: &str) -> Result<Self, IdentityError> {
                Self::parse(s)
            }
        }
    };
}
string_type!(ContainerId);
string_type!(IfName);

/// The pod a CNI call is for, from CNI_ARGS (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
/// `K8S_POD_UID`), as the API, the kubelet, the cache and the CLI know it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID`; empty when the runtime did not pass one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl fmt::Display for PodIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.uid.is_empty() {
            write!(f, " (uid {})", self.uid)?;
        }
        Ok(())
    }
}

/// The CNI_ARGS keys of the pod's identity with the longest value each may have: a namespace is
/// a DNS-1123 label (63), a pod name a DNS-1123 subdomain (253), a uid a UUID (kept generous).
const POD_ARGS: [(&str, usize); 3] = [
    ("K8S_POD_NAMESPACE", 63),
    ("K8S_POD_NAME", 253),
    ("K8S_POD_UID", 128),
];

impl PodIdentity {
    /// Checks the pod's identity in CNI_ARGS before it becomes part of an API path, a file name
    /// or a log line: each of `K8S_POD_NAMESPACE`, `K8S_POD_NAME` and `K8S_POD_UID` that is set
    /// must start with a letter or digit and hold only letters, digits, `-`, `.` and `_` (what
    /// Kubernetes names, UUIDs and podman's container names use), so `..`, `/`, `%`, `?`, control
    /// characters and over-long values are refused. Returns the key and why.
    pub fn check_args(args: &super::CniArgs) -> Result<(), (&'static str, String)> {
        for (key, max) in POD_ARGS {
            let Some(value) = args.get(key).filter(|v| !v.is_empty()) else {
                continue;
            };
            let mut chars = value.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
            let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if value.len() > max {
                return Err((key, format!("{} is longer than {max} bytes", quote(value))));
            }
            if !(first_ok && rest_ok) {
                return Err((
                    key,
                    format!(
                        "{} must start with a letter or digit and contain only letters, digits, '-', '.' and '_'",
                        quote(value)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The identity, when the runtime passed namespace and name.
    pub fn from_args(args: &super::CniArgs) -> Option<PodIdentity> {
        let namespace = args.get("K8S_POD_NAMESPACE").filter(|s| !s.is_empty())?;
        let name = args.get("K8S_POD_NAME").filter(|s| !s.is_empty())?;
        Some(PodIdentity {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: args.get("K8S_POD_UID").unwrap_or_default().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["a", "0", "abc-123.x_y", &"a".repeat(255)] {
            assert_eq!(ContainerId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "-a",
            ".",
            "..",
            "_x",
            "a/b",
            "a b",
            "a\0",
            &"a".repeat(256),
            "é",
        ] {
            assert!(ContainerId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "net1", "a", "x-y.z_1", &"a".repeat(15), "é"] {
            assert_eq!(IfName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\0b",
            &"a".repeat(16),
        ] {
            assert!(IfName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_validates() {
        let id: ContainerId = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"abc\"");
        assert!(serde_json::from_str::<ContainerId>("\"../x\"").is_err());
        assert!(serde_json::from_str::<IfName>("\"a/b\"").is_err());
    }

    #[test]
    fn pod_identity_args_that_would_become_paths_are_refused() {
        let check =
            |args: &str| PodIdentity::check_args(&super::super::CniArgs::parse(args).unwrap());
        for ok in [
            "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-abcde;K8S_POD_UID=0f6e-11",
            "K8S_POD_NAME=my_container.1;K8S_POD_NAMESPACE=My_Container",
            "K8S_POD_NAME=;K8S_POD_NAMESPACE=",
            "IgnoreUnknown=1;OTHER=../x",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let long_ns = format!("K8S_POD_NAMESPACE={}", "n".repeat(64));
        let long_name = format!("K8S_POD_NAME={}", "p".repeat(254));
        for (bad, key) in [
            ("K8S_POD_NAME=../../secrets/x", "K8S_POD_NAME"),
            ("K8S_POD_NAME=..", "K8S_POD_NAME"),
            ("K8S_POD_NAME=.", "K8S_POD_NAME"),
            ("K8S_POD_NAME=a/b", "K8S_POD_NAME"),
            ("K8S_POD_NAME=p?watch=1", "K8S_POD_NAME"),
            ("K8S_POD_NAME=p#x", "K8S_POD_NAME"),
            ("K8S_POD_NAME=p\nq", "K8S_POD_NAME"),
            ("K8S_POD_NAME=p\u{0}", "K8S_POD_NAME"),
            ("K8S_POD_NAME=p q", "K8S_POD_NAME"),
            ("K8S_POD_NAMESPACE=a%2Fb", "K8S_POD_NAMESPACE"),
            ("K8S_POD_NAMESPACE=-a", "K8S_POD_NAMESPACE"),
            ("K8S_POD_UID=../u", "K8S_POD_UID"),
            (long_ns.as_str(), "K8S_POD_NAMESPACE"),
            (long_name.as_str(), "K8S_POD_NAME"),
        ] {
            assert_eq!(check(bad).map_err(|(k, _)| k), Err(key), "{bad:?}");
        }
    }

    #[test]
    fn pod_identity_from_args() {
        let args = super::super::CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u",
        )
        .unwrap();
        let pod = PodIdentity::from_args(&args).unwrap();
        assert_eq!(pod.to_string(), "ns/p (uid u)");
        let json = serde_json::to_value(PodIdentity {
            uid: String::new(),
            ..pod
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"namespace": "ns", "name": "p"}));
    }
}
