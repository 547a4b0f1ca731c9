//! Pure decisions of auto-configuration: which file is the primary network, what the generated
//! configuration says (thick: a `multus-shim` pointing at the primary; thin: `multus` with the
//! primary embedded as `delegates[0]`), under which name (`00-multus.conf` below CNI 1.0.0,
//! `00-multus.conflist` from 1.0.0 on) and whether the file on disk needs rewriting.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// The single-plugin form, for CNI versions below 1.0.0.
pub const CONF: &str = "00-multus.conf";
/// The list form, for CNI 1.0.0 and later.
pub const CONFLIST: &str = "00-multus.conflist";
/// Prefix of the names auto-configuration owns (never a primary candidate).
pub const OWN_PREFIX: &str = "00-multus";
/// The network name of the generated configuration (the reference's).
pub const NETWORK_NAME: &str = "multus-cni-network";
/// The thin kubeconfig, relative to the configuration directory.
pub const KUBECONFIG: &str = "multus.d/multus.kubeconfig";
/// The plugin types a generated configuration runs.
pub const OWN_TYPES: [&str; 2] = ["multus-shim", "multus"];

/// Why a primary network's file cannot be used (the previous generated file is then kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrimaryError {
    /// Not JSON (an empty file, a file being written by a primary that does not rename).
    #[error("not valid JSON: {0}")]
    Json(String),
    /// JSON, but not a network configuration.
    #[error("not a CNI network configuration: {0}")]
    Shape(&'static str),
}

/// The primary network among `names` (files of the directory): `master` when given (and then
/// only if present), else the first `.conf`/`.conflist` in byte order that is not ours.
pub fn pick_primary(names: &[String], master: Option<&str>) -> Option<String> {
    if let Some(m) = master.filter(|m| !m.is_empty()) {
        return names.iter().find(|n| n.as_str() == m).cloned();
    }
    names
        .iter()
        .filter(|n| !n.starts_with(OWN_PREFIX) && !n.starts_with('.'))
        .filter(|n| n.ends_with(".conf") || n.ends_with(".conflist"))
        .min()
        .cloned()
}

/// Parses a primary network's file: a JSON object with a `cniVersion` string and either a
/// `type` (a single plugin) or a non-empty `plugins` list whose entries each have a `type`.
pub fn parse_primary(bytes: &[u8]) -> Result<Value, PrimaryError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| PrimaryError::Json(e.to_string()))?;
    let o = v
        .as_object()
        .ok_or(PrimaryError::Shape("not a JSON object"))?;
    if !o.get("cniVersion").is_some_and(Value::is_string) {
        return Err(PrimaryError::Shape("no cniVersion string"));
    }
    match o.get("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => {
            if list
                .iter()
                .any(|p| !p.get("type").is_some_and(Value::is_string))
            {
                return Err(PrimaryError::Shape("a plugin of the list has no type"));
            }
        }
        Some(_) => return Err(PrimaryError::Shape("plugins is not a non-empty list")),
        None if o.get("type").is_some_and(Value::is_string) => {}
        None => return Err(PrimaryError::Shape("neither type nor plugins")),
    }
    Ok(v)
}

/// The union of the capabilities the primary's plugins enable (`true` ones only).
pub fn capabilities(primary: &Value) -> Map<String, Value> {
    let plugins: Vec<&Value> = match primary.get("plugins").and_then(Value::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![primary],
    };
    let mut union = Map::new();
    for caps in plugins
        .iter()
        .filter_map(|p| p.get("capabilities").and_then(Value::as_object))
    {
        for (k, v) in caps {
            if v.as_bool() == Some(true) {
                union.insert(k.clone(), Value::Bool(true));
            }
        }
    }
    union
}

/// Whether `version` calls for the list form (1.0.0 and later; an unparsable version is taken
/// as a pre-1.0 one, the single-plugin form every runtime reads).
pub fn uses_conflist(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.trim().parse::<u64>().ok())
        .is_some_and(|major| major >= 1)
}

/// What the generated configuration runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Flavor {
    /// Thick mode: `multus-shim`, the primary by path (`clusterNetwork`), `extra` keys (log
    /// keys, `cniDir`, `binDir`, `daemonReadyTimeoutSeconds`, `daemonSocketDir`) copied in; `version` overrides the primary's.
    Thick {
        /// The daemon configuration's `cniVersion`.
        version: Option<String>,
        /// Keys added to the plugin.
        extra: Map<String, Value>,
    },
    /// Thin mode: `multus`, the primary embedded as `delegates[0]`, and the kubeconfig's path as
    /// the node sees it.
    Thin {
        /// `kubeconfig` in the generated file.
        kubeconfig: PathBuf,
    },
}

/// A generated configuration: the file to write and the other form to remove.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// `00-multus.conf` or `00-multus.conflist`.
    pub name: &'static str,
    /// The other of the two, removed when present.
    pub other: &'static str,
    /// The file's content (pretty JSON, never empty).
    pub bytes: Vec<u8>,
    /// The CNI version written.
    pub version: String,
}

/// The generated configuration for the primary `primary` (parsed with [`parse_primary`]) whose
/// path, as the generated file must name it, is `primary_path`.
pub fn render(flavor: &Flavor, primary_path: &Path, primary: &Value) -> Rendered {
    let primary_version = primary
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.3.1");
    let mut plugin = Map::new();
    let version = match flavor {
        Flavor::Thick { version, extra } => {
            plugin.insert("type".into(), json!("multus-shim"));
            plugin.insert("clusterNetwork".into(), json!(primary_path));
            for (k, v) in extra {
                plugin.insert(k.clone(), v.clone());
            }
            version.clone().unwrap_or_else(|| primary_version.into())
        }
        Flavor::Thin { kubeconfig } => {
            plugin.insert("type".into(), json!("multus"));
            plugin.insert("kubeconfig".into(), json!(kubeconfig));
            plugin.insert("delegates".into(), json!([primary]));
            primary_version.to_string()
        }
    };
    let caps = capabilities(primary);
    if !caps.is_empty() {
        plugin.insert("capabilities".into(), Value::Object(caps));
    }
    let (name, other, doc) = if uses_conflist(&version) {
        let doc = json!({"cniVersion": version, "name": NETWORK_NAME, "plugins": [plugin]});
        (CONFLIST, CONF, doc)
    } else {
        let mut doc = Map::new();
        doc.insert("cniVersion".into(), json!(version));
        doc.insert("name".into(), json!(NETWORK_NAME));
        doc.extend(plugin);
        (CONF, CONFLIST, Value::Object(doc))
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    Rendered {
        name,
        other,
        bytes,
        version,
    }
}

/// Whether `bytes`, the content of a `00-multus*` file, is a configuration this module generates
/// (or the reference's generators do): the network `multus-cni-network` with a single plugin of
/// type `multus-shim` or `multus`. What else sits under that name is the operator's and is
/// left alone.
pub fn is_generated(bytes: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    if v.get("name").and_then(Value::as_str) != Some(NETWORK_NAME) {
        return false;
    }
    let plugin = match v.get("plugins").and_then(Value::as_array) {
        Some(list) if list.len() == 1 => &list[0],
        Some(_) => return false,
        None => &v,
    };
    plugin
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| OWN_TYPES.contains(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn thick(version: Option<&str>) -> Flavor {
        Flavor::Thick {
            version: version.map(String::from),
            extra: Map::new(),
        }
    }

    #[test]
    fn the_primary_is_the_first_foreign_conf_or_the_pinned_one() {
        let n = names(&[
            "99-z.conf",
            "00-multus.conf",
            "00-multus.conflist",
            "10-calico.conflist",
            "README",
            "05-x.json",
            ".tmp.1.conf",
        ]);
        assert_eq!(
            pick_primary(&n, None).as_deref(),
            Some("10-calico.conflist")
        );
        assert_eq!(
            pick_primary(&n, Some("99-z.conf")).as_deref(),
            Some("99-z.conf")
        );
        assert_eq!(pick_primary(&n, Some("missing.conf")), None);
        assert_eq!(pick_primary(&names(&["00-multus.conf"]), None), None);
        // An empty master means "auto".
        assert_eq!(
            pick_primary(&names(&["20-b.conf", "10-a.conf"]), Some("")).as_deref(),
            Some("10-a.conf")
        );
    }

    #[test]
    fn a_primary_that_is_empty_half_written_or_not_a_network_is_refused() {
        assert!(matches!(parse_primary(b""), Err(PrimaryError::Json(_))));
        assert!(matches!(
            parse_primary(br#"{"cniVersion":"1.0.0","name":"x","plug"#),
            Err(PrimaryError::Json(_))
        ));
        assert!(parse_primary(b"[]").is_err());
        assert!(parse_primary(br#"{"name":"x","type":"bridge"}"#).is_err());
        assert!(parse_primary(br#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#).is_err());
        assert!(parse_primary(br#"{"cniVersion":"1.0.0","name":"x","plugins":[{}]}"#).is_err());
        assert!(parse_primary(br#"{"cniVersion":"0.3.1","name":"x"}"#).is_err());
        assert!(parse_primary(br#"{"cniVersion":"0.3.1","name":"x","type":"bridge"}"#).is_ok());
    }

    #[test]
    fn versions_from_1_0_0_on_take_the_list_form() {
        assert!(!uses_conflist("0.3.1"));
        assert!(!uses_conflist("0.4.0"));
        assert!(uses_conflist("1.0.0"));
        assert!(uses_conflist("1.1.0"));
        assert!(!uses_conflist("garbage"));
    }

    #[test]
    fn thick_below_1_0_is_a_single_shim_conf_with_the_union_of_capabilities() {
        let mut extra = Map::new();
        extra.insert("logLevel".into(), json!("verbose"));
        extra.insert("daemonSocketDir".into(), json!("/run/m"));
        let flavor = Flavor::Thick {
            version: None,
            extra,
        };
        let primary = json!({"cniVersion": "0.3.1", "name": "k8s", "plugins": [
            {"type": "calico"}, {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true, "x": false}}]});
        let r = render(
            &flavor,
            Path::new("/etc/cni/net.d/10-calico.conflist"),
            &primary,
        );
        assert_eq!((r.name, r.other), (CONF, CONFLIST));
        let v: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus-shim",
                "clusterNetwork": "/etc/cni/net.d/10-calico.conflist", "logLevel": "verbose",
                "daemonSocketDir": "/run/m",
                "capabilities": {"portMappings": true, "bandwidth": true}})
        );
        assert!(is_generated(&r.bytes));
    }

    #[test]
    fn thick_from_1_0_is_a_conflist_of_one_shim() {
        let primary = json!({"cniVersion": "1.0.0", "name": "k8s", "type": "bridge",
            "capabilities": {"ips": true}});
        let r = render(&thick(None), Path::new("/n/10-b.conf"), &primary);
        assert_eq!((r.name, r.other), (CONFLIST, CONF));
        let v: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": "1.0.0", "name": "multus-cni-network", "plugins": [
                {"type": "multus-shim", "clusterNetwork": "/n/10-b.conf",
                 "capabilities": {"ips": true}}]})
        );
        assert!(is_generated(&r.bytes));
        // The daemon configuration's cniVersion wins over the primary's.
        let r = render(&thick(Some("0.4.0")), Path::new("/n/10-b.conf"), &primary);
        assert_eq!(r.name, CONF);
        assert_eq!(r.version, "0.4.0");
    }

    #[test]
    fn thin_embeds_the_primary_as_the_first_delegate_with_the_kubeconfig() {
        let primary = json!({"cniVersion": "1.0.0", "name": "k8s", "plugins": [
            {"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}]});
        let flavor = Flavor::Thin {
            kubeconfig: "/etc/cni/net.d/multus.d/multus.kubeconfig".into(),
        };
        let r = render(&flavor, Path::new("/host/x/10-b.conflist"), &primary);
        assert_eq!(r.name, CONFLIST);
        let v: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion": "1.0.0", "name": "multus-cni-network", "plugins": [
                {"type": "multus", "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
                 "delegates": [primary], "capabilities": {"portMappings": true}}]})
        );
        assert!(is_generated(&r.bytes));
    }

    #[test]
    fn only_our_own_configurations_are_recognised_as_generated() {
        assert!(!is_generated(b""));
        assert!(!is_generated(
            br#"{"name":"multus-cni-network","type":"bridge"}"#
        ));
        assert!(!is_generated(br#"{"name":"mine","type":"multus"}"#));
        assert!(!is_generated(
            br#"{"name":"multus-cni-network","plugins":[{"type":"multus"},{"type":"tuning"}]}"#
        ));
        assert!(is_generated(
            br#"{"name":"multus-cni-network","type":"multus"}"#
        ));
    }
}
