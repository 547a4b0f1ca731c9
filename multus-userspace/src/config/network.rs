//! A delegate network configuration (a single plugin conf or a conflist), kept as the JSON it
//! came from so keys this implementation does not know survive every re-serialisation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ConfigError;
use crate::cni::{CniVersion, IfName};

/// A network: either a plugin conf (`type` at top level) or a conflist (`plugins`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NetworkConfig {
    raw: Map<String, Value>,
}

impl NetworkConfig {
    /// Validates a delegate's JSON; `what` names it in error messages.
    pub fn from_value(value: Value, what: &str) -> Result<Self, ConfigError> {
        let raw = match value {
            Value::Object(m) => m,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "{what} must be a JSON object, not {}",
                    kind(&other)
                )))
            }
        };
        let net = Self { raw };
        if let Some(plugins) = net.raw.get("plugins") {
            let list = plugins.as_array().ok_or_else(|| {
                ConfigError::Invalid(format!("{what}: \"plugins\" must be an array"))
            })?;
            if list.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{what}: \"plugins\" is empty"
                )));
            }
            for (i, p) in list.iter().enumerate() {
                let t = p.get("type").and_then(Value::as_str).unwrap_or_default();
                if t.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "{what}: plugins[{i}] has no \"type\""
                    )));
                }
                validate_plugin_type(t)
                    .map_err(|e| ConfigError::Invalid(format!("{what}: plugins[{i}]: {e}")))?;
            }
        } else {
            let t = net
                .raw
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if t.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{what} has neither \"type\" nor \"plugins\""
                )));
            }
            validate_plugin_type(t).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
        }
        if let Some(v) = net.raw.get("cniVersion") {
            if !v.is_string() {
                return Err(ConfigError::Invalid(format!(
                    "{what}: \"cniVersion\" must be a string"
                )));
            }
        }
        Ok(net)
    }

    /// Parses a delegate from bytes (a NAD's `spec.config`, a file in confDir).
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, ConfigError> {
        let value: Value = crate::explain::from_bytes(bytes)?;
        Self::from_value(value, what)
    }

    /// Whether this is a conflist.
    pub fn is_list(&self) -> bool {
        self.raw.contains_key("plugins")
    }

    /// The network name (may be absent on a bare conf).
    pub fn name(&self) -> Option<&str> {
        self.raw.get("name").and_then(Value::as_str)
    }

    /// Sets the network name (NAD name injection).
    pub fn set_name(&mut self, name: &str) {
        self.raw.insert("name".into(), Value::from(name));
    }

    /// The version this network speaks: the newest supported entry of `cniVersions` (1.1.0), else
    /// `cniVersion`, else `default`.
    pub fn cni_version(&self, default: CniVersion) -> Result<CniVersion, ConfigError> {
        if let Some(list) = self.raw.get("cniVersions").and_then(Value::as_array) {
            let candidates: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            if let Some(v) = CniVersion::negotiate(candidates.iter().copied()) {
                return Ok(v);
            }
            if self.raw.get("cniVersion").is_none() {
                return Err(ConfigError::Version(
                    crate::cni::version::UnsupportedVersion(candidates.join(",")),
                ));
            }
        }
        match self.raw.get("cniVersion").and_then(Value::as_str) {
            None | Some("") => Ok(default),
            Some(v) => Ok(v.parse()?),
        }
    }

    /// The plugins in execution order (a conf is a list of one: itself).
    pub fn plugins(&self) -> Vec<&Map<String, Value>> {
        match self.raw.get("plugins").and_then(Value::as_array) {
            Some(list) => list.iter().filter_map(Value::as_object).collect(),
            None => vec![&self.raw],
        }
    }

    /// The plugin types in execution order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins()
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }

    /// Replaces the plugin type `from` with `to` in every plugin (sbr → ebpf-sbr migration).
    pub fn replace_plugin_type(&mut self, from: &str, to: &str) -> usize {
        let mut n = 0;
        let mut swap = |p: &mut Map<String, Value>| {
            if p.get("type").and_then(Value::as_str) == Some(from) {
                p.insert("type".into(), Value::from(to));
                n += 1;
            }
        };
        match self.raw.get_mut("plugins").and_then(Value::as_array_mut) {
            Some(list) => list
                .iter_mut()
                .filter_map(Value::as_object_mut)
                .for_each(&mut swap),
            None => swap(&mut self.raw),
        }
        n
    }

    /// Appends a plugin, turning a conf into a conflist if needed.
    pub fn append_plugin(&mut self, plugin: Map<String, Value>) {
        if !self.is_list() {
            let mut conf = std::mem::take(&mut self.raw);
            let mut list = Map::new();
            for key in [
                "cniVersion",
                "cniVersions",
                "name",
                "disableCheck",
                "disableGC",
            ] {
                if let Some(v) = conf.remove(key) {
                    list.insert(key.into(), v);
                }
            }
            list.insert("plugins".into(), Value::Array(vec![Value::Object(conf)]));
            self.raw = list;
        }
        if let Some(list) = self.raw.get_mut("plugins").and_then(Value::as_array_mut) {
            list.push(Value::Object(plugin));
        }
    }

    /// `"masterplugin": true` (the old multus way of naming the master delegate).
    pub fn is_master(&self) -> bool {
        self.raw
            .get("masterplugin")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `disableCheck` of a conflist.
    pub fn disable_check(&self) -> bool {
        flag(&self.raw, "disableCheck")
    }

    /// `disableGC` of a conflist.
    pub fn disable_gc(&self) -> bool {
        flag(&self.raw, "disableGC")
    }

    /// The JSON object, mutable.
    pub fn raw_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.raw
    }
}

fn flag(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A plugin type becomes a file name in the plugin search path: it must be a plain name.
pub fn validate_plugin_type(t: &str) -> Result<(), String> {
    if t.is_empty() || t == "." || t == ".." || t.contains('/') || t.contains('\0') || t.len() > 255
    {
        return Err(format!(
            "plugin type {} is not a valid plugin name",
            crate::explain::quote(t)
        ));
    }
    Ok(())
}

/// Checks an interface name requested by a configuration or annotation.
pub fn validate_requested_ifname(name: &str, what: &str) -> Result<(), ConfigError> {
    IfName::parse(name)
        .map(|_| ())
        .map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_unknown_keys() {
        let v = json!({"cniVersion": "0.3.1", "name": "a", "type": "bridge", "vendorThing": {"x": [1, 2]}});
        let n = NetworkConfig::from_value(v.clone(), "delegates[0]").unwrap();
        assert_eq!(serde_json::to_value(&n).unwrap(), v);
    }

    #[test]
    fn rejects_shapes() {
        assert!(NetworkConfig::from_value(json!([]), "d").is_err());
        assert!(NetworkConfig::from_value(json!({"name": "x"}), "d").is_err());
        assert!(NetworkConfig::from_value(json!({"plugins": []}), "d").is_err());
        assert!(NetworkConfig::from_value(json!({"type": "../../bin/sh"}), "d").is_err());
    }

    #[test]
    fn negotiates_cni_versions() {
        let n = NetworkConfig::from_value(
            json!({"cniVersions": ["0.4.0", "1.0.0", "2.0.0"], "plugins": [{"type": "x"}]}),
            "d",
        )
        .unwrap();
        assert_eq!(
            n.cni_version(CniVersion::V0_1_0).unwrap(),
            CniVersion::V1_0_0
        );
        let c = NetworkConfig::from_value(json!({"type": "x"}), "d").unwrap();
        assert_eq!(
            c.cni_version(CniVersion::V0_4_0).unwrap(),
            CniVersion::V0_4_0
        );
    }

    #[test]
    fn appends_and_replaces_plugins() {
        let mut n = NetworkConfig::from_value(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "k": 1}),
            "d",
        )
        .unwrap();
        n.append_plugin(json!({"type": "sbr"}).as_object().unwrap().clone());
        assert_eq!(n.plugin_types(), vec!["bridge", "sbr"]);
        assert_eq!(n.name(), Some("n"));
        assert_eq!(n.replace_plugin_type("sbr", "ebpf-sbr"), 1);
        assert_eq!(n.plugin_types(), vec!["bridge", "ebpf-sbr"]);
        assert_eq!(n.plugins()[0]["k"], 1);
    }
}
