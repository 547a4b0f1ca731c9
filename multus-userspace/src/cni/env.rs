//! The CNI environment contract: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS` and `CNI_PATH`, parsed and validated before anything else happens.

use std::{fmt, path::PathBuf};

use super::identity::{ContainerId, IfName};
use crate::explain::quote;

/// A CNI operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach.
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Report readiness (1.1.0).
    Status,
    /// Garbage-collect stale resources (1.1.0).
    Gc,
}

impl Command {
    /// The `CNI_COMMAND` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// Parses the `CNI_COMMAND` spelling.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// Whether this command is about one container attachment (needs id and ifname).
    pub fn is_per_container(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `CNI_ARGS`: `K=V` pairs separated by `;`, order kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses `K=V;K=V`; a pair without `=` is an error (the Go reference rejects it too).
    pub fn parse(s: &str) -> Result<Self, EnvError> {
        let mut pairs = Vec::new();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                EnvError::Invalid(
                    "CNI_ARGS",
                    format!("{} is not a KEY=VALUE pair", quote(part)),
                )
            })?;
            if k.is_empty() {
                return Err(EnvError::Invalid(
                    "CNI_ARGS",
                    format!("{} has an empty key", quote(part)),
                ));
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(Self { pairs })
    }

    /// The value of `key` (the last one wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (replacing earlier values).
    pub fn set(&mut self, key: &str, value: &str) {
        self.pairs.retain(|(k, _)| k != key);
        self.pairs.push((key.to_string(), value.to_string()));
    }
}

impl fmt::Display for CniArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&joined.join(";"))
    }
}

/// An invalid or missing environment variable (CNI error code 4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A variable the command needs is not set.
    #[error("{0} is not set; the container runtime must provide it for this command")]
    Missing(&'static str),
    /// A variable is set to something invalid.
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, String),
}

impl EnvError {
    /// The variable the error is about.
    pub fn variable(&self) -> &'static str {
        match self {
            EnvError::Missing(v) | EnvError::Invalid(v, _) => v,
        }
    }
}

/// A parsed CNI invocation.
#[derive(Clone, Debug)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// The container id (set for ADD, DEL and CHECK: [`Request::container_id`]).
    pub container: Option<ContainerId>,
    /// The network namespace path (ADD, CHECK; optional for DEL).
    pub netns: Option<PathBuf>,
    /// The interface name to create inside the container (set for ADD, DEL and CHECK:
    /// [`Request::ifname`]).
    pub iface: Option<IfName>,
    /// Extra arguments.
    pub args: CniArgs,
    /// Plugin search path.
    pub path: Vec<PathBuf>,
}

impl Request {
    /// The container id of a per-container command (ADD, DEL, CHECK).
    pub fn container_id(&self) -> Result<&ContainerId, EnvError> {
        self.container
            .as_ref()
            .ok_or(EnvError::Missing("CNI_CONTAINERID"))
    }

    /// The interface name of a per-container command (ADD, DEL, CHECK).
    pub fn ifname(&self) -> Result<&IfName, EnvError> {
        self.iface.as_ref().ok_or(EnvError::Missing("CNI_IFNAME"))
    }

    /// The container id for a log line (`-` when the command names none).
    pub fn container_label(&self) -> &str {
        self.container.as_ref().map_or("-", |c| c.as_str())
    }

    /// Parses the process environment.
    pub fn from_env() -> Result<Request, EnvError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Parses an environment given as a lookup function (tests and the runner use this).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Request, EnvError> {
        let command = match get("CNI_COMMAND") {
            None => return Err(EnvError::Missing("CNI_COMMAND")),
            Some(c) => Command::parse(&c).ok_or_else(|| {
                EnvError::Invalid(
                    "CNI_COMMAND",
                    format!(
                        "{} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC",
                        quote(&c)
                    ),
                )
            })?,
        };
        let mut req = Request {
            command,
            container: None,
            netns: None,
            iface: None,
            args: CniArgs::default(),
            path: Vec::new(),
        };
        if command == Command::Version {
            return Ok(req);
        }
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        if command.is_per_container() {
            let id = nonempty("CNI_CONTAINERID").ok_or(EnvError::Missing("CNI_CONTAINERID"))?;
            let id = ContainerId::parse(&id)
                .map_err(|e| EnvError::Invalid("CNI_CONTAINERID", e.to_string()))?;
            req.container = Some(id);
            let ifname = nonempty("CNI_IFNAME").ok_or(EnvError::Missing("CNI_IFNAME"))?;
            let ifname = IfName::parse(&ifname)
                .map_err(|e| EnvError::Invalid("CNI_IFNAME", e.to_string()))?;
            req.iface = Some(ifname);
            req.netns = nonempty("CNI_NETNS").map(PathBuf::from);
            if req.netns.is_none() && command != Command::Del {
                return Err(EnvError::Missing("CNI_NETNS"));
            }
        }
        if let Some(args) = get("CNI_ARGS") {
            req.args = CniArgs::parse(&args)?;
            super::PodIdentity::check_args(&req.args)
                .map_err(|(key, why)| EnvError::Invalid("CNI_ARGS", format!("{key} {why}")))?;
        }
        let path = nonempty("CNI_PATH").ok_or(EnvError::Missing("CNI_PATH"))?;
        req.path = std::env::split_paths(&path)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(kk, _)| *kk == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const OK: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc-123.x_y"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    #[test]
    fn parses_a_complete_env() {
        let r = Request::from_lookup(env(OK)).unwrap();
        assert_eq!(r.command, Command::Add);
        assert_eq!(r.args.get("K8S_POD_NAME"), Some("p"));
        assert_eq!(r.path.len(), 2);
    }

    #[test]
    fn rejects_bad_values() {
        let with = |k: &str, v: &'static str| {
            let mut e: Vec<(&str, &str)> = OK.iter().filter(|(kk, _)| *kk != k).cloned().collect();
            e.push((Box::leak(k.to_string().into_boxed_str()), v));
            Request::from_lookup(env(Box::leak(e.into_boxed_slice()))).unwrap_err()
        };
        assert_eq!(
            with("CNI_CONTAINERID", "../x").variable(),
            "CNI_CONTAINERID"
        );
        assert_eq!(
            with("CNI_IFNAME", "abcdefghijklmnop").variable(),
            "CNI_IFNAME"
        );
        assert_eq!(with("CNI_IFNAME", "a/b").variable(), "CNI_IFNAME");
        assert_eq!(with("CNI_COMMAND", "FOO").variable(), "CNI_COMMAND");
        assert_eq!(with("CNI_ARGS", "novalue").variable(), "CNI_ARGS");
        assert_eq!(with("CNI_NETNS", "").variable(), "CNI_NETNS");
    }

    #[test]
    fn del_needs_no_netns_and_version_needs_nothing() {
        let e: Vec<(&str, &str)> = OK
            .iter()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .map(|(k, v)| {
                if *k == "CNI_COMMAND" {
                    (*k, "DEL")
                } else {
                    (*k, *v)
                }
            })
            .collect();
        assert!(Request::from_lookup(env(&e)).is_ok());
        assert!(Request::from_lookup(env(&[("CNI_COMMAND", "VERSION")])).is_ok());
    }
}
